import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import SQLKit

/// One call a rule makes to another system: what, where, and how it went.
public struct WebhookDelivery: Codable, Sendable, Equatable {
    /// `refused`: the target may not be reached (`WebhookAddresses`), so it was not tried;
    /// `cancelled`: its rule was deleted or disabled, or no longer calls that URL, before it went.
    public enum Status: String, Codable, Sendable { case pending, delivered, failed, refused, cancelled }

    /// What the rule's owner is told: how it went and, for a refused one, why. Not the target's
    /// status code nor the connection's error: those would make rules a scanner of the networks
    /// the server can reach (they stay in the server's log).
    public var reason: String? {
        switch status {
        case .refused: lastError
        case .failed: "the receiver did not take it after \(attempts) attempts"
        case .pending where attempts > 0: "the receiver did not take it yet; tried \(attempts) times"
        default: nil
        }
    }
    public var id: ID
    public var communityId: ID
    public var ruleId: ID
    public var url: String
    /// The signing secret, encrypted; never shown.
    public var secretCipher: String
    public var payload: String
    public var status: Status
    public var attempts: Int
    public var nextAt: Millis
    public var lastStatus: Int?
    public var lastError: String?
    public var createdAt: Millis
    public var deliveredAt: Millis?
}

extension WebhookDelivery: Record { public static let table = "webhook_deliveries" }

extension Store {
    /// Waits between attempts: quick at first, then up to an hour; after the last, it has failed.
    public static let webhookBackoff: [Millis] = [1, 5, 30, 120, 600, 1_800, 3_600, 3_600].map { $0 * 1000 }

    public func enqueueDelivery(communityId: ID, ruleId: ID, url: String, secretCipher: String, payload: String)
        async throws -> WebhookDelivery
    {
        let now = nowMillis()
        let delivery = WebhookDelivery(
            id: newID(), communityId: communityId, ruleId: ruleId, url: url, secretCipher: secretCipher,
            payload: payload,
            status: .pending, attempts: 0, nextAt: now, createdAt: now)
        try await write { db in try await db.insert(delivery) }
        return delivery
    }

    /// Takes up to `limit` deliveries that are due, leasing each for `lease` so that another node
    /// (or a slow attempt) does not send it twice meanwhile.
    public func claimDueDeliveries(now: Millis, limit: Int, lease: Millis = 60_000) async throws -> [WebhookDelivery] {
        try await claimDue(
            WebhookDelivery.self, dueColumn: "next_at", due: { $0.nextAt }, now: now, limit: limit, lease: lease)
    }

    /// When the next pending delivery is due, if any.
    public func nextDeliveryDue() async throws -> Millis? {
        try await read { db in
            try await db.raw("SELECT MIN(next_at) AS n FROM webhook_deliveries WHERE status = 'pending'").first()?
                .decode(column: "n", as: Millis?.self)
        }
    }

    /// Records an attempt: taken (2xx), or to be tried again after the back-off, or given up (at
    /// once when `final`: a target that may not be reached is not tried again).
    public func recordAttempt(
        _ delivery: WebhookDelivery, status: Int?, error: String?, final: Bool = false, now: Millis = nowMillis()
    ) async throws -> WebhookDelivery {
        var d = delivery
        d.attempts += 1
        d.lastStatus = status
        d.lastError = error.map { String($0.prefix(500)) }
        if let status, (200..<300).contains(status) {
            d.status = .delivered
            d.deliveredAt = now
        } else if final {
            d.status = .refused
        } else if let next = Self.retryAt(afterFailure: d.attempts, backoff: Self.webhookBackoff, now: now) {
            d.nextAt = next
        } else {
            d.status = .failed
        }
        let updated = d
        // `status = 'pending'`: a delivery cancelled while this attempt was under way stays cancelled.
        try await write { db in
            try await db.raw(
                """
                UPDATE webhook_deliveries SET status = \(bind: updated.status.rawValue), attempts = \(bind: updated.attempts), next_at = \(bind: updated.nextAt),
                last_status = \(bind: updated.lastStatus), last_error = \(bind: updated.lastError), delivered_at = \(bind: updated.deliveredAt)
                WHERE id = \(bind: updated.id) AND status = 'pending'
                """
            ).run()
        }
        return updated
    }

    /// Cancels a rule's deliveries still waiting, but those to `keeping` (the URLs the rule still
    /// calls), in the caller's transaction; how many.
    @discardableResult
    package static func cancelDeliveries(_ db: any SQLDatabase, ruleId: ID, keeping: Set<String> = []) async throws
        -> Int
    {
        let keep: SQLQueryString =
            keeping.isEmpty
            ? "1 = 1"
            : "url NOT IN (" + keeping.sorted().map { "\(bind: $0)" as SQLQueryString }.joined(separator: ", ") + ")"
        let waiting = try await db.count(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE rule_id = \(bind: ruleId) AND status = 'pending' AND \(keep)"
        )
        if waiting > 0 {
            try await db.raw(
                "UPDATE webhook_deliveries SET status = 'cancelled' WHERE rule_id = \(bind: ruleId) AND status = 'pending' AND \(keep)"
            ).run()
        }
        return waiting
    }

    public func deliveries(ruleId: ID, page: PageRequest) async throws -> Page<WebhookDelivery> {
        try await read { db in
            let items = try await db.all(
                WebhookDelivery.self,
                "SELECT * FROM webhook_deliveries WHERE rule_id = \(bind: ruleId) ORDER BY created_at DESC, id LIMIT \(literal: page.limit) OFFSET \(literal: page.offset)"
            )
            let total = try await db.count(
                "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE rule_id = \(bind: ruleId)")
            return Page(items: items, total: total, limit: page.limit, offset: page.offset)
        }
    }
}
