import Foundation
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage
import Logging
import ServiceLifecycle

/// The channels this server can send on, from its configuration: an SMS (or messaging) gateway
/// reached by a signed webhook, and an SMTP relay for e-mail. Either may be absent.
public struct OutboundSettings: Sendable, Equatable {
    /// The gateway's URL; it receives `{"id", "to", "text", "severity"}` as JSON, signed like rule
    /// webhooks (`X-Linli-Signature: sha256=…` under `smsSecret`), and answers 2xx once it has it.
    public var smsWebhook: URL?
    public var smsSecret: String?
    public var smtp: SMTPSettings?
    /// Where rules' webhooks may go beyond the public internet (`webhook-allow`). The SMS gateway,
    /// named by the administrator, is not held to it.
    public var webhookAddresses: WebhookAddresses

    public init(
        smsWebhook: URL? = nil, smsSecret: String? = nil, smtp: SMTPSettings? = nil,
        webhookAddresses: WebhookAddresses = WebhookAddresses()
    ) {
        self.smsWebhook = smsWebhook
        self.smsSecret = smsSecret
        self.smtp = smtp
        self.webhookAddresses = webhookAddresses
    }

    public var channels: Set<OutboundChannel> {
        var c = Set<OutboundChannel>()
        if smsWebhook != nil, smsSecret != nil { c.insert(.sms) }
        if smtp != nil { c.insert(.email) }
        return c
    }
}

/// Sends the SMS and e-mail copies of inbox messages: stored first (with the inbox message), then
/// sent when due (at once, or when the person's quiet hours end), tried again with back-off, and
/// each one that leaves recorded on the event log.
public final class OutboundService: Service, Sendable {
    package let store: Store
    package let settings: OutboundSettings
    package let logger: Logger

    public init(store: Store, settings: OutboundSettings, logger: Logger) {
        self.store = store
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            // Scheduled notices are looked for at start (one due while the server was down goes out
            // now) and every half minute after: a send time is to the minute, not the second.
            var lastScheduledCheck: Millis = 0
            while !Task.isCancelled {
                if nowMillis() - lastScheduledCheck >= 30_000 {
                    lastScheduledCheck = nowMillis()
                    await self.sendScheduledNotices()
                }
                await self.sendDue()
                let next = (try? await self.store.nextOutboundDue()) ?? nil
                // Messages are queued in the transactions of rules and notices: look every second.
                let wait = min(max((next ?? .max) - nowMillis(), 50), 1_000)
                try? await Task.sleep(for: .milliseconds(wait))
            }
        }
    }

    private func sendScheduledNotices() async {
        do {
            for notice in try await store.sendDueNotices() {
                logger.info(
                    "scheduled notice sent",
                    metadata: ["notice": "\(notice.id)", "households": "\(notice.households)"])
            }
        } catch {
            logger.error("scheduled notices not sent", metadata: ["error": "\(error)"])
        }
    }

    private func sendDue() async {
        do {
            for message in try await store.claimDueOutbound(now: nowMillis(), limit: 20) {
                let error = await send(message)
                let recorded = try await store.recordOutbound(message, error: error)
                let metadata: Logger.Metadata = [
                    "message": "\(message.id)", "channel": "\(message.channel.rawValue)",
                    "to": "\(message.addressMasked)", "attempt": "\(recorded.attempts)",
                ]
                switch recorded.status {
                case .sent: logger.info("message sent", metadata: metadata)
                case .failed:
                    logger.warning(
                        "message given up", metadata: metadata.merging(["error": "\(error ?? "-")"]) { a, _ in a })
                case .pending:
                    logger.notice(
                        "message will be tried again",
                        metadata: metadata.merging(["error": "\(error ?? "-")"]) { a, _ in a })
                }
            }
        } catch {
            logger.error("outbound messages not read", metadata: ["error": "\(error)"])
        }
    }

    /// Sends one message; nil when it left, else why not.
    package func send(_ message: OutboundMessage) async -> String? {
        let address: String
        do { address = try store.cipher.decrypt(message.addressCipher) } catch {
            return "the address cannot be read: \(error)"
        }
        switch message.channel {
        case .sms:
            guard let url = settings.smsWebhook, let secret = settings.smsSecret else {
                return "no SMS gateway is configured"
            }
            return await postSMS(url: url, secret: secret, message: message, to: address)
        case .email:
            guard let smtp = settings.smtp else { return "no SMTP relay is configured" }
            do {
                try await SMTP.send(
                    smtp, to: address, subject: "[Linli] \(message.subject)", body: Self.emailBody(message),
                    messageId: message.id)
                return nil
            } catch {
                return "\(error)"
            }
        }
    }

    /// Short, as SMS wants: the title and the start of the body.
    package static func smsText(subject: String, body: String) -> String {
        let text = body.isEmpty ? subject : "\(subject): \(body)"
        return "【Linli】" + (text.count > 300 ? String(text.prefix(299)) + "…" : text)
    }

    package static func emailBody(_ m: OutboundMessage) -> String {
        "\(m.subject)\n\n\(m.body)\n\n—\nLinli. Change how you are told under Settings in the portal or the console."
    }

    private func postSMS(url: URL, secret: String, message: OutboundMessage, to: String) async -> String? {
        struct Payload: Encodable {
            package var id: ID
            package var to: String
            package var text: String
            package var severity: String?
        }
        guard
            let body = try? JSONEncoder().encode(
                Payload(
                    id: message.id, to: to, text: Self.smsText(subject: message.subject, body: message.body),
                    severity: message.severity))
        else { return "not encoded" }
        return await WebhookService.signedPost(
            url, body: body, secret: secret, deliveryId: message.id, agent: "Linli outbound", addresses: nil
        ).error
    }
}
