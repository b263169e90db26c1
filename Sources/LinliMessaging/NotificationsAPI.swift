import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage
import Synchronization

/// How people are told: their preferences (SMS, e-mail, quiet hours), what went out, and the
/// inbox live in the portal.
extension API {
    func registerInbox(_ api: RouterGroup<AppContext>) {
        api.get("me/notification-preferences", use: myPreferences)
        api.put("me/notification-preferences", use: replaceMyPreferences)
        api.get("communities/:cid/outbound-messages", use: outboundMessages)
    }

    struct PreferencesInput: Decodable {
        var sms: Bool?
        var email: Bool?
        /// Given: replaces the stored one ("" removes it); absent: the stored one stays. The same
        /// for the address and for the quiet hours (both ends together).
        var phone: String?
        var address: String?
        var quietFrom: String?
        var quietTo: String?
    }

    struct PreferencesView: Encodable {
        var sms: Bool
        var email: Bool
        var phone: String?
        var address: String?
        var quietFrom: String?
        var quietTo: String?
        /// The channels this server can send on; the others cannot be turned on.
        var available: [String]
    }

    func preferencesView(_ p: NotificationPreferences) -> PreferencesView {
        PreferencesView(
            sms: p.sms, email: p.email,
            phone: (try? p.phoneCipher.map { try store.cipher.decrypt($0) }).flatMap { $0 }.map(PhoneNumber.masked),
            address: (try? p.emailCipher.map { try store.cipher.decrypt($0) }).flatMap { $0 }.map(EmailAddress.masked),
            quietFrom: p.quietFrom, quietTo: p.quietTo,
            available: OutboundChannel.allCases.filter { services.outbound.channels.contains($0) }.map(
                \.rawValue))
    }

    @Sendable func myPreferences(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        return try JSON.response(preferencesView(try await store.notificationPreferences(accountId: caller.accountId)))
    }

    @Sendable func replaceMyPreferences(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let input = try await request.decodeJSON(PreferencesInput.self, context: context)
        return try JSON.response(preferencesView(try await savePreferences(input, context: context)))
    }

    /// Checks and stores a person's own preferences: a channel needs the server to have it and an
    /// address to send to; quiet hours are both ends or neither.
    func savePreferences(_ input: PreferencesInput, context: AppContext) async throws -> NotificationPreferences {
        let caller = try context.requireCaller()
        let stored = try await store.notificationPreferences(accountId: caller.accountId)
        let available = services.outbound.channels
        var issues: [FieldIssue] = []
        let phone = input.phone.map { $0.filter { !" -".contains($0) } }
        let address = input.address?.trimmingCharacters(in: .whitespaces)
        if let phone, !phone.isEmpty,
            !(6...20).contains(phone.count)
                || !phone.enumerated().allSatisfy({ $1.isASCII && ($1.isNumber || ($0 == 0 && $1 == "+")) })
        {
            issues.append(FieldIssue("phone", "must be a phone number: digits, optionally starting with +"))
        }
        if let address, !address.isEmpty, !EmailAddress.isValid(address) {
            issues.append(FieldIssue("address", "must be an e-mail address"))
        }
        let storedPhone = try stored.phoneCipher.map { try store.cipher.decrypt($0) }
        let storedAddress = try stored.emailCipher.map { try store.cipher.decrypt($0) }
        let keptPhone = phone.map { $0.isEmpty ? nil : $0 } ?? storedPhone
        let keptAddress = address.map { $0.isEmpty ? nil : $0 } ?? storedAddress
        let sms = input.sms ?? stored.sms
        let email = input.email ?? stored.email
        if sms, !available.contains(.sms) {
            issues.append(FieldIssue("sms", "cannot be turned on: this server has no SMS gateway configured"))
        }
        if sms, keptPhone == nil { issues.append(FieldIssue("phone", "is required for SMS")) }
        if email, !available.contains(.email) {
            issues.append(FieldIssue("email", "cannot be turned on: this server has no SMTP relay configured"))
        }
        if email, keptAddress == nil { issues.append(FieldIssue("address", "is required for e-mail")) }
        // Like the phone and address: absent keeps what is stored, empty removes it.
        let keepQuiet = input.quietFrom == nil && input.quietTo == nil
        let quietFrom = keepQuiet ? stored.quietFrom : input.quietFrom.flatMap { $0.isEmpty ? nil : $0 }
        let quietTo = keepQuiet ? stored.quietTo : input.quietTo.flatMap { $0.isEmpty ? nil : $0 }
        if (quietFrom == nil) != (quietTo == nil) {
            issues.append(
                FieldIssue(quietFrom == nil ? "quietFrom" : "quietTo", "give both ends of the quiet hours, or neither"))
        } else if let quietFrom, let quietTo {
            if TimeOfDay.minutes(quietFrom) == nil { issues.append(FieldIssue("quietFrom", "must be a time HH:mm")) }
            if TimeOfDay.minutes(quietTo) == nil { issues.append(FieldIssue("quietTo", "must be a time HH:mm")) }
            if quietFrom == quietTo { issues.append(FieldIssue("quietTo", "must differ from quietFrom")) }
        }
        if !issues.isEmpty { throw Problem.invalid(issues) }
        return try await store.setNotificationPreferences(
            accountId: caller.accountId, sms: sms, email: email, phone: keptPhone, address: keptAddress,
            quietFrom: quietFrom, quietTo: quietTo, actor: context.principal)
    }

    /// What the community sent by SMS and e-mail, for those who publish notices: addresses masked.
    @Sendable func outboundMessages(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .publishNotices)
        var q = QueryReader(request)
        let status = q.oneOf("status", OutboundMessage.Status.self)
        let page = q.page()
        try q.check()
        struct Row: Encodable, Sendable {
            var id: ID
            var accountId: ID?
            var notificationId: ID?
            var personId: ID?
            var noticeId: ID?
            var channel: OutboundChannel
            var to: String
            var subject: String
            var severity: String?
            var status: OutboundMessage.Status
            var dueAt: Millis
            var attempts: Int
            var lastError: String?
            var sentAt: Millis?
            var createdAt: Millis
        }
        let found = try await store.outboundMessages(communityId: community.id, status: status, page: page)
        let rows = found.items.map {
            Row(
                id: $0.id, accountId: $0.accountId, notificationId: $0.notificationId, personId: $0.personId,
                noticeId: $0.noticeId, channel: $0.channel, to: $0.addressMasked, subject: $0.subject,
                severity: $0.severity, status: $0.status, dueAt: $0.dueAt, attempts: $0.attempts,
                lastError: $0.lastError, sentAt: $0.sentAt, createdAt: $0.createdAt)
        }
        return try JSON.response(Page(items: rows, total: found.total, limit: found.limit, offset: found.offset))
    }
}

/// A person's inbox as it fills: every new message for them as an SSE `notification` event,
/// woken by the event log (every notification is written with an event).
enum InboxStream {
    static func response(store: Store, accountId: ID) async throws -> Response {
        let newest =
            try await store.notifications(accountId: accountId, unreadOnly: false, page: PageRequest(limit: 1)).items
            .first?.createdAt ?? 0
        // What is already there is on the page; only what comes after goes down the stream. Messages
        // made in the millisecond of the last one sent may still come, so those sent are remembered.
        let alreadyThere = Set(try await store.notifications(accountId: accountId, since: newest).map(\.id))
        let cursor = Mutex((since: newest, sent: alreadyThere))
        return EventStream.live(store: store) {
            let (since, sent) = cursor.withLock { $0 }
            let found = try await store.notifications(accountId: accountId, since: since)
            let fresh = found.filter { !sent.contains($0.id) }
            if let last = fresh.map(\.createdAt).max() {
                cursor.withLock { c in
                    c.sent =
                        last == c.since
                        ? c.sent.union(fresh.map(\.id)) : Set(fresh.filter { $0.createdAt == last }.map(\.id))
                    c.since = last
                }
            }
            return (
                fresh.map { "id: \($0.id)\nevent: notification\ndata: \(EventLog.json($0) ?? "{}")\n\n" },
                !fresh.isEmpty && found.count == Store.inboxStreamBatch
            )
        }
    }
}
