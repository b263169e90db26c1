import Foundation
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage
import Logging
import SQLKit
import ServiceLifecycle

/// Tells people what happened to the work orders that concern them, from the event log: whoever a
/// work order is given to (in their inbox, and by SMS to a member of staff with no account), and
/// the resident who reported it when it is accepted, handled, sent back or finished.
///
/// It reads the log as a durable consumer, so a message is never lost to a restart (at least once);
/// a new consumer starts at the log's end, so switching it on does not replay the past.
public final class WorkOrderRelay: Service, Sendable {
    static let consumer = "work-order relay"
    let store: Store
    let catalogue: Catalogue
    let logger: Logger

    public init(store: Store, logger: Logger) throws {
        self.store = store
        self.logger = logger
        catalogue = try Catalogue(folders: [try Bundle.module.folder("Templates")])
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let seen = await self.store.signal.generation
                do {
                    if try await self.relayPending() == 0 {
                        await self.store.signal.wait(since: seen, timeout: .seconds(1))
                    }
                } catch is CancellationError {
                    break  // the server is stopping; the checkpoint says where to go on
                } catch {
                    self.logger.error("work-order relay failed", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Handles the events since the checkpoint, in order; the number of events read.
    @discardableResult
    public func relayPending(limit: Int = 200) async throws -> Int {
        let start = try await store.write { db -> Int64 in
            let saved = try await db.raw(
                "SELECT seq FROM event_checkpoints WHERE consumer = \(bind: Self.consumer)"
            ).first()
            if let saved { return try saved.decode(column: "seq", as: Int64.self) }
            let end = try await EventLog.latestSeq(db)
            try await EventLog.saveCheckpoint(db, consumer: Self.consumer, seq: end)
            return end
        }
        let events = try await store.read { db in
            try await EventLog.read(db, after: start, limit: limit, scope: .everything)
        }
        for event in events where event.type.hasPrefix("workorder.") {
            try await relay(event)
        }
        if let last = events.last { try await store.acknowledge(consumer: Self.consumer, through: last.seq) }
        return events.count
    }

    /// The steps a reporter hears of, with the text key of what they are told.
    static let reporterSteps: [String: String] = [
        "workorder.accept": "relay.reporter.accepted", "workorder.assign": "relay.reporter.assigned",
        "workorder.start": "relay.reporter.started", "workorder.resolve": "relay.reporter.resolved",
        "workorder.return": "relay.reporter.returned", "workorder.reject": "relay.reporter.rejected",
        "workorder.transfer": "relay.reporter.transferred", "workorder.close": "relay.reporter.closed",
        "workorder.visit": "relay.reporter.visited",
    ]

    func relay(_ event: DomainEvent) async throws {
        guard let communityId = event.communityId,
            let payload = try? JSONDecoder().decode([String: String].self, from: Data(event.payload.utf8))
        else { return }
        let number = payload["number"] ?? ""
        let title = payload["title"] ?? ""
        let note = payload["note"] ?? ""
        let actor = Principal(accountId: nil, name: "system")
        // The one it is given to: on a dispatch, and on a submission the round robin gave at once.
        if event.type == "workorder.assign"
            || (event.type == "workorder.submitted" && payload["status"] == "assigned")
        {
            var account = payload["assigneeAccountId"]
            var phone: String? = nil
            if let staffId = payload["assigneeStaffId"] {
                let member = try await store.read { db in
                    try await db.all(StaffMember.self, "SELECT * FROM staff WHERE id = \(bind: staffId)").first
                }
                account = account ?? member?.accountId
                if member?.accountId == nil { phone = member?.phone }
            }
            if let account, account != event.actorId,
                let recipient = try await store.account(id: account), recipient.status == .active
            {
                let language = recipient.language ?? .standard
                try await store.notify(
                    [Recipient(accountId: recipient.id, name: recipient.displayName)], communityId: communityId,
                    title: catalogue.text("relay.assignee.title", language, ["number": number]),
                    body: catalogue.text("relay.assignee.body", language, ["title": title, "note": note]),
                    severity: nil,
                    link: payload["assigneeAccountId"] == nil ? nil : "/console/work-orders/\(event.subjectId)",
                    subjectType: "workorder", subjectId: event.subjectId, actor: actor)
            } else if let phone, !phone.isEmpty {
                try await store.textStaff(
                    phone: phone, communityId: communityId, workOrderId: event.subjectId,
                    subject: catalogue.text("relay.assignee.title", .standard, ["number": number]),
                    body: catalogue.text("relay.assignee.sms", .standard, ["number": number, "title": title]))
            }
        }
        // The resident who reported it, for what others did (not their own steps).
        if let key = Self.reporterSteps[event.type], let reporter = payload["reporterAccountId"],
            reporter != event.actorId, let recipient = try await store.account(id: reporter),
            recipient.status == .active
        {
            let language = recipient.language ?? .standard
            try await store.notify(
                [Recipient(accountId: recipient.id, name: recipient.displayName)], communityId: communityId,
                title: catalogue.text(key, language, ["number": number]),
                body: note.isEmpty
                    ? title : catalogue.text("relay.reporter.withNote", language, ["title": title, "note": note]),
                severity: nil, link: "/app/reports/\(event.subjectId)", subjectType: "workorder",
                subjectId: event.subjectId, actor: actor)
        }
    }
}

extension Store {
    /// An SMS to a member of staff who has no account (the engineer on the roster), queued for the
    /// outbound worker like every other message, the phone encrypted.
    func textStaff(phone: String, communityId: ID, workOrderId: ID, subject: String, body: String) async throws {
        let sealed = try cipher.encrypt(phone)
        let now = nowMillis()
        try await write { db in
            try await db.insert(
                OutboundMessage(
                    id: newID(), communityId: communityId, accountId: nil, notificationId: nil, personId: nil,
                    noticeId: nil, channel: .sms, addressCipher: sealed, addressMasked: PhoneNumber.masked(phone),
                    subject: subject, body: body, severity: nil, status: .pending, dueAt: now, attempts: 0,
                    createdAt: now))
            try await Change.record(
                db, actor: .system, communityId: communityId, type: "notification.sent", subjectType: "workorder",
                subjectId: workOrderId, after: ["title": subject, "to": PhoneNumber.masked(phone)])
        }
    }
}
