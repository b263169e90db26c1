import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import SQLKit

/// Ways to reach a person outside Linli, when the server is configured for them.
public enum OutboundChannel: String, Codable, Sendable, CaseIterable {
    /// Through the SMS (or messaging) gateway's webhook.
    case sms
    /// By SMTP.
    case email
}

/// How a person wants to be told: the inbox always; SMS and e-mail when they ask for them; and
/// hours in which those wait (critical alarms do not). Their phone and address are kept encrypted.
public struct NotificationPreferences: Codable, Sendable, Equatable {
    public var accountId: ID
    public var sms: Bool
    public var email: Bool
    public var phoneCipher: String?
    public var emailCipher: String?
    public var quietFrom: String?
    public var quietTo: String?
    public var updatedAt: Millis

    public init(
        accountId: ID, sms: Bool = false, email: Bool = false, phoneCipher: String? = nil, emailCipher: String? = nil,
        quietFrom: String? = nil, quietTo: String? = nil, updatedAt: Millis = nowMillis()
    ) {
        self.accountId = accountId
        self.sms = sms
        self.email = email
        self.phoneCipher = phoneCipher
        self.emailCipher = emailCipher
        self.quietFrom = quietFrom
        self.quietTo = quietTo
        self.updatedAt = updatedAt
    }

    public var quietHours: QuietHours? { QuietHours(from: quietFrom, to: quietTo) }
}

/// One message to send on one channel, stored with the inbox message it copies (or, for a notice
/// sent to residents' registered phones, with the notice), then sent by the outbound worker and
/// tried again with back-off.
public struct OutboundMessage: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable, CaseIterable { case pending, sent, failed }
    public var id: ID
    public var communityId: ID
    /// Whose inbox message this copies; nil for a resident reached by their registered phone.
    public var accountId: ID?
    public var notificationId: ID?
    /// The resident, for a notice sent to a registered phone.
    public var personId: ID?
    /// The notice this sends, whether as a copy of its inbox message or to a registered phone.
    public var noticeId: ID?
    public var channel: OutboundChannel
    /// The phone or address, encrypted; `addressMasked` is what people see.
    public var addressCipher: String
    public var addressMasked: String
    public var subject: String
    public var body: String
    public var severity: String?
    public var status: Status
    /// Not before: the end of quiet hours, or the next try.
    public var dueAt: Millis
    public var attempts: Int
    public var lastError: String?
    public var sentAt: Millis?
    public var createdAt: Millis
}

extension OutboundMessage: Record { public static let table = "outbound_messages" }

public enum EmailAddress {
    /// A plain address, one `@`, a dot in the domain, nothing that could break a mail header.
    public static func isValid(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard text.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."),
            !parts[1].hasSuffix(".")
        else { return false }
        return !text.contains { $0.isWhitespace || "<>()[],;:\"\\".contains($0) || $0.asciiValue == nil }
    }

    public static func masked(_ text: String) -> String {
        guard let at = text.firstIndex(of: "@") else { return "***" }
        return String(text[..<at].prefix(1)) + "***" + String(text[at...])
    }
}

extension Store {
    /// Tries after a failed send: 30 s, 2 min, 10 min, 30 min, 1 h; then it is given up.
    public static let outboundBackoff: [Millis] = [30_000, 120_000, 600_000, 1_800_000, 3_600_000]

    public func notificationPreferences(accountId: ID) async throws -> NotificationPreferences {
        try await read { db in
            try await db.raw("SELECT * FROM notification_preferences WHERE account_id = \(bind: accountId)")
                .first(decoding: NotificationPreferences.self, keyDecodingStrategy: .snakeCase)
        } ?? NotificationPreferences(accountId: accountId, updatedAt: 0)
    }

    /// Replaces a person's preferences (phone and e-mail given in clear, kept encrypted); audited
    /// without the phone or address themselves.
    public func setNotificationPreferences(
        accountId: ID, sms: Bool, email: Bool, phone: String?, address: String?,
        quietFrom: String?, quietTo: String?, actor: Principal
    ) async throws -> NotificationPreferences {
        let prefs = NotificationPreferences(
            accountId: accountId, sms: sms, email: email,
            phoneCipher: try phone.map { try cipher.encrypt($0) },
            emailCipher: try address.map { try cipher.encrypt($0) },
            quietFrom: quietFrom, quietTo: quietTo)
        try await write { db in
            try await db.raw("DELETE FROM notification_preferences WHERE account_id = \(bind: accountId)").run()
            try await db.insert(into: "notification_preferences").model(
                prefs, keyEncodingStrategy: .convertToSnakeCase, nilEncodingStrategy: .asNil
            ).run()
            try await AuditLog.record(
                db, actor: actor, action: "notification.preferences", subjectType: "account", subjectId: accountId,
                communityId: nil,
                after: [
                    "sms": "\(sms)", "email": "\(email)", "phone": phone.map(PhoneNumber.masked) ?? "-",
                    "address": address.map(EmailAddress.masked) ?? "-",
                    "quiet": quietFrom.map { "\($0)–\(quietTo ?? "")" } ?? "-",
                ])
        }
        return prefs
    }

    /// Copies inbox messages to the channels their people asked for, in the transaction that
    /// made them: due at once, or at the end of the person's quiet hours unless it is critical.
    package func enqueueOutbound(_ db: any SQLDatabase, _ messages: [InboxMessage], now: Millis) async throws {
        guard !messages.isEmpty else { return }
        let byAccount = try await db.raw(
            """
            SELECT * FROM notification_preferences WHERE (sms OR email) AND \(SQLQueryString.isIn("account_id", Set(messages.map(\.accountId))))
            """
        ).all(decoding: NotificationPreferences.self, keyDecodingStrategy: .snakeCase)
        guard !byAccount.isEmpty else { return }
        let prefs = Dictionary(byAccount.map { ($0.accountId, $0) }, uniquingKeysWith: { a, _ in a })
        for message in messages {
            guard let p = prefs[message.accountId] else { continue }
            var due = now
            if message.severity != "critical", let quiet = p.quietHours {
                due = Millis(
                    quiet.release(after: Date(timeIntervalSince1970: Double(now) / 1000)).timeIntervalSince1970 * 1000)
            }
            var targets: [(OutboundChannel, String)] = []
            if p.sms, let c = p.phoneCipher { targets.append((.sms, c)) }
            if p.email, let c = p.emailCipher { targets.append((.email, c)) }
            for (channel, addressCipher) in targets {
                let address = try cipher.decrypt(addressCipher)
                let out = OutboundMessage(
                    id: newID(), communityId: message.communityId, accountId: message.accountId,
                    notificationId: message.id,
                    personId: nil, noticeId: message.subjectType == "notice" ? message.subjectId : nil,
                    channel: channel,
                    addressCipher: addressCipher,
                    addressMasked: channel == .sms ? PhoneNumber.masked(address) : EmailAddress.masked(address),
                    subject: message.title, body: message.body, severity: message.severity, status: .pending,
                    dueAt: due, attempts: 0,
                    createdAt: now)
                try await db.insert(out)
            }
        }
    }

    /// Due messages, each leased for `lease` so that a second look does not send it twice.
    public func claimDueOutbound(now: Millis, limit: Int, lease: Millis = 120_000) async throws -> [OutboundMessage] {
        try await claimDue(
            OutboundMessage.self, dueColumn: "due_at", due: { $0.dueAt }, now: now, limit: limit, lease: lease)
    }

    public func nextOutboundDue() async throws -> Millis? {
        try await read { db in
            try await db.raw("SELECT MIN(due_at) AS n FROM outbound_messages WHERE status = 'pending'").first()?.decode(
                column: "n", as: Millis?.self)
        }
    }

    /// Records a send: sent, to be tried again, or given up. A message that left (or was given up)
    /// goes on the event log and the audit trail, with the address masked.
    @discardableResult
    public func recordOutbound(_ message: OutboundMessage, error: String?, now: Millis = nowMillis()) async throws
        -> OutboundMessage
    {
        var m = message
        m.attempts += 1
        m.lastError = error.map { String($0.prefix(500)) }
        if error == nil {
            m.status = .sent
            m.sentAt = now
        } else if let next = Self.retryAt(afterFailure: m.attempts, backoff: Self.outboundBackoff, now: now) {
            m.dueAt = next
        } else {
            m.status = .failed
        }
        let updated = m
        try await write { db in
            try await db.raw(
                """
                UPDATE outbound_messages SET status = \(bind: updated.status.rawValue), attempts = \(bind: updated.attempts), due_at = \(bind: updated.dueAt),
                last_error = \(bind: updated.lastError), sent_at = \(bind: updated.sentAt) WHERE id = \(bind: updated.id)
                """
            ).run()
            guard updated.status != .pending else { return }
            try await Change.record(
                db, actor: Principal(accountId: nil, name: "outbound \(updated.channel.rawValue)"),
                communityId: updated.communityId,
                type: updated.status == .sent ? "notification.delivered" : "notification.undelivered",
                subjectType: updated.notificationId == nil ? "notice" : "notification",
                subjectId: updated.notificationId ?? updated.noticeId ?? updated.id,
                after: [
                    "channel": updated.channel.rawValue, "to": updated.addressMasked, "attempts": "\(updated.attempts)",
                    "error": updated.lastError ?? "",
                ])
        }
        return updated
    }

    /// What went out of a community (or to be sent), newest first; addresses masked.
    public func outboundMessages(communityId: ID, status: OutboundMessage.Status?, page: PageRequest) async throws
        -> Page<OutboundMessage>
    {
        var condition: SQLQueryString = "community_id = \(bind: communityId)"
        if let status { condition += " AND status = \(bind: status.rawValue)" }
        let whereClause = condition
        return try await read { db in
            let items = try await db.all(
                OutboundMessage.self,
                "SELECT * FROM outbound_messages WHERE \(whereClause) ORDER BY created_at DESC, id LIMIT \(literal: page.limit) OFFSET \(literal: page.offset)"
            )
            let total = try await db.count("SELECT COUNT(*) AS n FROM outbound_messages WHERE \(whereClause)")
            return Page(items: items, total: total, limit: page.limit, offset: page.offset)
        }
    }

    /// Quiet hours for residents reached by their registered phone, who chose none: a notice
    /// published at night reaches them in the morning.
    public static let residentsQuietHours = QuietHours(from: "22:00", to: "07:00")!

    /// Queues a notice as SMS to the registered phones of the current residents of `households`,
    /// once per phone, in the notice's transaction; returns how many.
    package func enqueueNoticeSMS(_ db: any SQLDatabase, notice: Notice, households: [ID], now: Millis) async throws
        -> Int
    {
        guard !households.isEmpty else { return 0 }
        struct Row: Decodable {
            package var personId: ID
            package var phone: String
            package var phoneCipher: String?
            package var phoneIndex: String?
        }
        let rows = try await db.raw(
            """
            SELECT p.id AS "personId", p.phone AS phone, p.phone_cipher AS "phoneCipher", p.phone_index AS "phoneIndex"
            FROM residencies r JOIN people p ON p.id = r.person_id
            WHERE r.moved_out IS NULL AND p.phone <> '' AND \(SQLQueryString.isIn("r.household_id", Set(households))) ORDER BY p.id
            """
        ).all(decoding: Row.self)
        let due = Millis(
            Self.residentsQuietHours.release(after: Date(timeIntervalSince1970: Double(now) / 1000))
                .timeIntervalSince1970 * 1000)
        // Once per phone: the keyed hash tells two people who share one apart from two who do not.
        var phones = Set<String>()
        for row in rows where phones.insert(row.phoneIndex ?? row.phone).inserted {
            // The phone stays encrypted all the way to the gateway (sealed before, a plain one now).
            let sealed = try row.phoneCipher ?? cipher.encrypt(row.phone)
            try await db.insert(
                OutboundMessage(
                    id: newID(), communityId: notice.communityId, accountId: nil, notificationId: nil,
                    personId: row.personId,
                    noticeId: notice.id, channel: .sms, addressCipher: sealed,
                    addressMasked: PhoneNumber.masked(row.phone), subject: notice.title, body: notice.body,
                    severity: nil,
                    status: .pending, dueAt: due, attempts: 0, createdAt: now))
        }
        return phones.count
    }
}
