import Crypto
import Foundation
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage
import Logging
import ServiceLifecycle

/// Sends what rules hand to other systems: each delivery is stored first, then POSTed, signed,
/// and tried again with back-off until the receiver answers 2xx (or the back-off runs out).
public final class WebhookService: Service, Sendable {
    package let store: Store
    package let logger: Logger
    /// Where deliveries may go (see `WebhookAddresses`).
    public let addresses: WebhookAddresses
    /// Rung when a delivery is stored, so it goes now rather than at the next look.
    private let doorbell = EventSignal()

    public init(store: Store, addresses: WebhookAddresses = WebhookAddresses(), logger: Logger) {
        self.store = store
        self.addresses = addresses
        self.logger = logger
    }

    package func wake() { Task { await doorbell.notify() } }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let rung = await self.doorbell.generation
                await self.sendDue()
                let next = (try? await self.store.nextDeliveryDue()) ?? nil
                let wait = min(max((next ?? .max) - nowMillis(), 50), 5_000)
                await self.doorbell.wait(since: rung, timeout: .milliseconds(wait))
            }
        }
    }

    private func sendDue() async {
        do {
            for delivery in try await store.claimDueDeliveries(now: nowMillis(), limit: 20) {
                let (status, error, refused) = await post(delivery)
                let recorded = try await store.recordAttempt(delivery, status: status, error: error, final: refused)
                let metadata: Logger.Metadata = [
                    "delivery": "\(delivery.id)", "url": "\(delivery.url)",
                    "status": "\(status.map(String.init) ?? "-")", "attempt": "\(recorded.attempts)",
                ]
                switch recorded.status {
                case .delivered: logger.info("webhook delivered", metadata: metadata)
                case .refused, .cancelled:
                    logger.warning(
                        "webhook refused: its target may not be reached",
                        metadata: metadata.merging(["error": "\(error ?? "-")"]) { a, _ in a })
                case .failed:
                    logger.warning(
                        "webhook given up", metadata: metadata.merging(["error": "\(error ?? "-")"]) { a, _ in a })
                case .pending:
                    logger.notice(
                        "webhook will be tried again",
                        metadata: metadata.merging(["error": "\(error ?? "-")"]) { a, _ in a })
                }
            }
        } catch {
            logger.error("webhook deliveries not read", metadata: ["error": "\(error)"])
        }
    }

    /// The signature a receiver checks: HMAC-SHA256 of the exact body under the rule's secret.
    package static func signature(_ body: Data, secret: String) -> String {
        "sha256="
            + HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8))).map {
                String(format: "%02x", $0)
            }.joined()
    }

    private func post(_ delivery: WebhookDelivery) async -> (Int?, String?, refused: Bool) {
        guard let url = URL(string: delivery.url) else { return (nil, "not a URL", true) }
        let secret: String
        do { secret = try store.cipher.decrypt(delivery.secretCipher) } catch {
            return (nil, "the secret cannot be read: \(error)", false)
        }
        let outcome = await Self.signedPost(
            url, body: Data(delivery.payload.utf8), secret: secret, deliveryId: delivery.id, agent: "Linli webhooks",
            addresses: addresses)
        return (outcome.status, outcome.error, outcome.refused)
    }

    /// POSTs JSON signed under `secret` (`X-Linli-Signature`), with an id the receiver can use to
    /// drop a repeat (`X-Linli-Delivery`); the HTTP status, and why it did not count as taken.
    /// `addresses` says where it may go; nil for the administrator's own SMS gateway.
    package static func signedPost(
        _ url: URL, body: Data, secret: String, deliveryId: String, agent: String, addresses: WebhookAddresses?
    ) async -> OutboundHTTP.Outcome {
        await OutboundHTTP.post(
            url, body: body,
            headers: [
                ("Content-Type", "application/json"), ("X-Linli-Signature", signature(body, secret: secret)),
                ("X-Linli-Delivery", deliveryId), ("User-Agent", agent),
            ], addresses: addresses)
    }
}
