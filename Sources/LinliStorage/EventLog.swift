import Foundation
import LinliCore
import SQLKit

/// A state change in the community, appended in the same transaction as the change itself.
public struct DomainEvent: Codable, Sendable, Equatable {
    /// Position in the log, assigned at commit order; consumers checkpoint on it.
    public var seq: Int64
    public var id: ID
    public var communityId: ID?
    public var type: String
    public var subjectType: String
    public var subjectId: ID
    public var actorId: ID?
    public var at: Millis
    /// JSON text of what changed (never identity numbers or secrets).
    public var payload: String
}

/// Who made a change: an account (or the system) and where the request came from.
public struct Principal: Sendable {
    public var accountId: ID?
    public var name: String
    public var remote: String?
    public init(accountId: ID?, name: String, remote: String? = nil) {
        self.accountId = accountId
        self.name = name
        self.remote = remote
    }
    public static let system = Principal(accountId: nil, name: "system")
}

public enum EventLog {
    package static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    public static func json(_ value: (any Encodable)?) -> String? {
        guard let value, let data = try? encoder.encode(value) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// Appends one event. On PostgreSQL a transaction-scoped advisory lock makes sequence numbers
    /// commit in order, so a consumer that has read up to N never later finds an event below N.
    @discardableResult
    public static func append(
        _ db: any SQLDatabase, communityId: ID?, type: String, subjectType: String, subjectId: ID, actor: Principal,
        payload: (any Encodable)?
    ) async throws -> ID {
        if db.isPostgres {
            try await db.raw("SELECT pg_advisory_xact_lock(7405)").run()
        }
        let id = newID()
        try await db.raw(
            """
            INSERT INTO events (id, community_id, type, subject_type, subject_id, actor_id, at, payload)
            VALUES (\(bind: id), \(bind: communityId), \(bind: type), \(bind: subjectType), \(bind: subjectId), \(bind: actor.accountId), \(bind: nowMillis()), \(bind: json(payload) ?? "{}"))
            """
        ).run()
        return id
    }

    /// Events after `seq`, oldest first, limited to the communities in `scope`.
    public static func read(_ db: any SQLDatabase, after seq: Int64, limit: Int, scope: Scope) async throws
        -> [DomainEvent]
    {
        let filter: SQLQueryString = scope.everything ? "1 = 1" : .isIn("community_id", scope.communities)
        return try await db.raw(
            "SELECT * FROM events WHERE seq > \(bind: seq) AND \(filter) ORDER BY seq LIMIT \(literal: limit)"
        )
        .all(decoding: DomainEvent.self, keyDecodingStrategy: .snakeCase)
    }

    /// The newest events about one subject (a device's sign-ins, events, commands), newest first.
    public static func about(_ db: any SQLDatabase, subjectId: ID, limit: Int) async throws -> [DomainEvent] {
        try await db.raw(
            "SELECT * FROM events WHERE subject_id = \(bind: subjectId) ORDER BY seq DESC LIMIT \(literal: limit)"
        )
        .all(decoding: DomainEvent.self, keyDecodingStrategy: .snakeCase)
    }

    public static func latestSeq(_ db: any SQLDatabase) async throws -> Int64 {
        let row = try await db.raw("SELECT MAX(seq) AS n FROM events").first()
        return try row?.decode(column: "n", as: Int64?.self) ?? 0
    }

    public static func checkpoint(_ db: any SQLDatabase, consumer: String) async throws -> Int64 {
        let row = try await db.raw("SELECT seq FROM event_checkpoints WHERE consumer = \(bind: consumer)").first()
        return try row?.decode(column: "seq", as: Int64.self) ?? 0
    }

    public static func saveCheckpoint(_ db: any SQLDatabase, consumer: String, seq: Int64) async throws {
        try await db.raw(
            """
            INSERT INTO event_checkpoints (consumer, seq, updated_at) VALUES (\(bind: consumer), \(bind: seq), \(bind: nowMillis()))
            ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at
            """
        ).run()
    }
}

/// Wakes in-process readers of the event log when a write commits, so live views and consumers
/// need not poll hard. Readers still poll slowly, to see what other nodes append.
///
/// A reader notes `generation` before it reads the log and then waits `since` that generation: a
/// commit that lands between its read and its wait is not missed.
public actor EventSignal {
    public private(set) var generation: UInt64 = 0
    private var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]

    public init() {}

    public func notify() {
        generation &+= 1
        let current = waiters
        waiters.removeAll()
        for (_, waiter) in current { waiter.resume() }
    }

    /// Returns at once if a write committed since `generation`; otherwise when one does, or after
    /// `timeout`, whichever is first.
    public func wait(since generation: UInt64, timeout: Duration) async {
        if self.generation != generation { return }
        let key = UUID()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.park(key, since: generation) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                await self.release(key)
            }
            await group.next()
            group.cancelAll()
            await self.release(key)
        }
    }

    private func park(_ key: UUID, since generation: UInt64) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            if Task.isCancelled || self.generation != generation {
                c.resume()
                return
            }
            waiters[key] = c
        }
    }

    private func release(_ key: UUID) {
        waiters.removeValue(forKey: key)?.resume()
    }
}

public struct AuditEntry: Codable, Sendable, Equatable {
    public var id: ID
    public var at: Millis
    public var actorId: ID?
    public var actorName: String
    public var action: String
    public var subjectType: String
    public var subjectId: ID
    public var communityId: ID?
    public var beforeJson: String?
    public var afterJson: String?
    public var remote: String?
}

public enum AuditLog {
    public static func record(
        _ db: any SQLDatabase, actor: Principal, action: String, subjectType: String, subjectId: ID, communityId: ID?,
        before: (any Encodable)? = nil, after: (any Encodable)? = nil
    ) async throws {
        let entry = AuditEntry(
            id: newID(), at: nowMillis(), actorId: actor.accountId, actorName: actor.name, action: action,
            subjectType: subjectType, subjectId: subjectId, communityId: communityId,
            beforeJson: EventLog.json(before), afterJson: EventLog.json(after), remote: actor.remote)
        try await db.insert(into: "audit_log").model(
            entry, keyEncodingStrategy: .convertToSnakeCase, nilEncodingStrategy: .asNil
        ).run()
    }

    public static func list(_ db: any SQLDatabase, scope: Scope, action: String?, subjectId: ID?, page: PageRequest)
        async throws -> Page<AuditEntry>
    {
        var filter: SQLQueryString = scope.everything ? "1 = 1" : .isIn("community_id", scope.communities)
        if let action, !action.isEmpty { filter += " AND action = \(bind: action)" }
        if let subjectId, !subjectId.isEmpty { filter += " AND subject_id = \(bind: subjectId)" }
        let total = try await db.count("SELECT COUNT(*) AS n FROM audit_log WHERE \(filter)")
        let items = try await db.raw(
            "SELECT * FROM audit_log WHERE \(filter) ORDER BY at DESC, id LIMIT \(literal: page.limit) OFFSET \(literal: page.offset)"
        )
        .all(decoding: AuditEntry.self, keyDecodingStrategy: .snakeCase)
        return Page(items: items, total: total, limit: page.limit, offset: page.offset)
    }
}

/// Every write goes through here: the change's event and its audit line, in the change's transaction.
public enum Change {
    public static func record(
        _ db: any SQLDatabase, actor: Principal, communityId: ID?, type: String, subjectType: String, subjectId: ID,
        before: (any Encodable)? = nil, after: (any Encodable)? = nil
    ) async throws {
        try await EventLog.append(
            db, communityId: communityId, type: type, subjectType: subjectType, subjectId: subjectId, actor: actor,
            payload: after ?? before)
        try await AuditLog.record(
            db, actor: actor, action: type, subjectType: subjectType, subjectId: subjectId, communityId: communityId,
            before: before, after: after)
    }
}
