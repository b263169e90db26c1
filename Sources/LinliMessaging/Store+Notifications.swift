import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import SQLKit

/// Something a person is told in their inbox: by a rule, an escalating alarm, later a notice.
public struct InboxMessage: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var accountId: ID
    public var title: String
    public var body: String
    public var severity: String?
    /// Where to look in the console ("/console/alarms/…").
    public var link: String?
    public var subjectType: String?
    public var subjectId: ID?
    public var createdAt: Millis
    public var readAt: Millis?
}

extension InboxMessage: Record { public static let table = "notifications" }

/// A person a rule tells something.
public struct Recipient: Sendable, Equatable, Hashable {
    public var accountId: ID
    public var name: String
}

extension Store {
    /// Resolves who is meant: accounts with one of `roles` in the community, accounts by username
    /// (only those who belong to the community), and the grid workers of `buildingId`'s grid.
    public func recipients(communityId: ID, roles: [String], usernames: [String], gridWorkerOf buildingId: ID?)
        async throws -> [Recipient]
    {
        struct Row: Decodable {
            package var id: ID
            package var displayName: String
        }
        return try await read { db in
            var found: [Row] = []
            if !roles.isEmpty {
                found += try await db.raw(
                    """
                    SELECT DISTINCT a.id, a.display_name FROM accounts a JOIN role_bindings rb ON rb.account_id = a.id
                    WHERE rb.community_id = \(bind: communityId) AND \(SQLQueryString.isIn("rb.role", Set(roles))) AND a.status = 'active'
                    """
                ).all(decoding: Row.self, keyDecodingStrategy: .snakeCase)
            }
            if !usernames.isEmpty {
                found += try await db.raw(
                    """
                    SELECT DISTINCT a.id, a.display_name FROM accounts a JOIN role_bindings rb ON rb.account_id = a.id
                    WHERE rb.community_id = \(bind: communityId) AND \(SQLQueryString.isIn("a.username", Set(usernames.map { $0.lowercased() }))) AND a.status = 'active'
                    """
                ).all(decoding: Row.self, keyDecodingStrategy: .snakeCase)
            }
            if let buildingId {
                found += try await db.raw(
                    """
                    SELECT DISTINCT a.id, a.display_name FROM accounts a
                    JOIN role_bindings rb ON rb.account_id = a.id AND rb.role = 'grid_worker'
                    JOIN grid_buildings gb ON gb.grid_id = rb.grid_id
                    WHERE gb.building_id = \(bind: buildingId) AND a.status = 'active'
                    """
                ).all(decoding: Row.self, keyDecodingStrategy: .snakeCase)
            }
            var seen = Set<ID>()
            return found.filter { seen.insert($0.id).inserted }.map {
                Recipient(accountId: $0.id, name: $0.displayName)
            }
        }
    }

    /// Puts one notification in each recipient's inbox, in one transaction, with one event saying
    /// who was told what (the audit of everything sent).
    @discardableResult
    public func notify(
        _ recipients: [Recipient], communityId: ID, title: String, body: String, severity: String?, link: String?,
        subjectType: String?, subjectId: ID?, actor: Principal
    ) async throws -> [InboxMessage] {
        guard !recipients.isEmpty else { return [] }
        let now = nowMillis()
        let made = recipients.map {
            InboxMessage(
                id: newID(), communityId: communityId, accountId: $0.accountId, title: title, body: body,
                severity: severity, link: link,
                subjectType: subjectType, subjectId: subjectId, createdAt: now)
        }
        try await write { db in
            for n in made { try await db.insert(n) }
            try await self.enqueueOutbound(db, made, now: now)
            try await Change.record(
                db, actor: actor, communityId: communityId, type: "notification.sent",
                subjectType: subjectType ?? "notification",
                subjectId: subjectId ?? made[0].id,
                after: ["title": title, "to": recipients.map(\.name).joined(separator: ", ")])
        }
        return made
    }

    public func notifications(accountId: ID, unreadOnly: Bool, page: PageRequest) async throws -> Page<InboxMessage> {
        var condition: SQLQueryString = "account_id = \(bind: accountId)"
        if unreadOnly { condition += " AND read_at IS NULL" }
        let whereClause = condition
        return try await read { db in
            let items = try await db.all(
                InboxMessage.self,
                "SELECT * FROM notifications WHERE \(whereClause) ORDER BY created_at DESC, id LIMIT \(literal: page.limit) OFFSET \(literal: page.offset)"
            )
            let total = try await db.count("SELECT COUNT(*) AS n FROM notifications WHERE \(whereClause)")
            return Page(items: items, total: total, limit: page.limit, offset: page.offset)
        }
    }

    public static let inboxStreamBatch = 100

    /// A person's notifications made at or after `since`, oldest first (for the live inbox).
    public func notifications(accountId: ID, since: Millis) async throws -> [InboxMessage] {
        try await read { db in
            try await db.all(
                InboxMessage.self,
                """
                SELECT * FROM notifications WHERE account_id = \(bind: accountId) AND created_at >= \(bind: since)
                ORDER BY created_at, id LIMIT \(literal: Self.inboxStreamBatch)
                """)
        }
    }

    public func unreadNotifications(accountId: ID) async throws -> Int {
        try await read { db in
            try await db.count(
                "SELECT COUNT(*) AS n FROM notifications WHERE account_id = \(bind: accountId) AND read_at IS NULL")
        }
    }

    /// Marks one (or, with nil, all) of a person's notifications read; only their own.
    /// Marks one notification read (again: reading twice is no error; 0 when it is not the
    /// account's), or all the unread ones; returns how many it found.
    public func markNotificationsRead(accountId: ID, id: ID?) async throws -> Int {
        try await write { db in
            if let id {
                return try await db.raw(
                    """
                    UPDATE notifications SET read_at = COALESCE(read_at, \(bind: nowMillis()))
                    WHERE account_id = \(bind: accountId) AND id = \(bind: id) RETURNING id
                    """
                ).all().count
            }
            return try await db.raw(
                """
                UPDATE notifications SET read_at = \(bind: nowMillis())
                WHERE account_id = \(bind: accountId) AND read_at IS NULL RETURNING id
                """
            ).all().count
        }
    }
}
