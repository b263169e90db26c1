import Foundation
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliMessaging
import LinliStorage
import LinliThings
import LinliWorkOrders
import SQLKit

/// Something that needs a person: raised by a rule (or a person), one per source and type, with a
/// count of how often it recurred rather than a flood of copies.
public struct Alarm: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var type: String
    public var severity: AlarmSeverity
    /// What it is about: "device" for now.
    public var sourceType: String
    public var sourceId: ID
    /// The source as people know it ("3号楼烟感 a1xx/smoke-1").
    public var sourceName: String
    public var buildingId: ID?
    public var householdId: ID?
    public var ruleId: ID?
    public var message: String
    /// The latest occurrence in words ("SmokeConcentration = 412 (> 300)").
    public var detail: String
    public var occurrences: Int
    public var firstAt: Millis
    public var lastAt: Millis
    public var acknowledgedAt: Millis?
    public var acknowledgedBy: String?
    public var clearedAt: Millis?
    public var clearedBy: String?
    public var workOrderId: ID?
    /// Escalation tiers told so far, and when the next is due (nil once acknowledged, cleared or done).
    public var escalationLevel: Int = 0
    public var nextEscalationAt: Millis?

    public enum Status: String, Codable, Sendable, CaseIterable {
        case activeUnacknowledged = "active_unacknowledged", activeAcknowledged = "active_acknowledged"
        case clearedUnacknowledged = "cleared_unacknowledged", clearedAcknowledged = "cleared_acknowledged"
    }

    public var status: Status {
        switch (clearedAt == nil, acknowledgedAt == nil) {
        case (true, true): .activeUnacknowledged
        case (true, false): .activeAcknowledged
        case (false, true): .clearedUnacknowledged
        case (false, false): .clearedAcknowledged
        }
    }
}

extension Alarm: Record { public static let table = "alarms" }

public struct AlarmComment: Codable, Sendable, Equatable {
    public var id: ID
    public var alarmId: ID
    public var authorId: ID?
    public var authorName: String
    public var at: Millis
    public var text: String
}

extension AlarmComment: Record { public static let table = "alarm_comments" }

/// An alarm to raise: where it comes from and what it says.
public struct AlarmRaise: Sendable {
    public var communityId: ID
    public var type: String
    public var severity: AlarmSeverity
    public var sourceType: String
    public var sourceId: ID
    public var sourceName: String
    public var buildingId: ID?
    public var householdId: ID?
    public var ruleId: ID?
    public var message: String
    public var detail: String
    public var at: Millis
    /// When a new alarm first escalates, if its rule says so.
    public var firstEscalationAt: Millis?

    public init(
        communityId: ID, type: String, severity: AlarmSeverity, sourceType: String, sourceId: ID, sourceName: String,
        buildingId: ID?, householdId: ID?,
        ruleId: ID?, message: String, detail: String, at: Millis, firstEscalationAt: Millis? = nil
    ) {
        self.communityId = communityId
        self.type = type
        self.severity = severity
        self.sourceType = sourceType
        self.sourceId = sourceId
        self.sourceName = sourceName
        self.buildingId = buildingId
        self.householdId = householdId
        self.ruleId = ruleId
        self.message = message
        self.detail = detail
        self.at = at
        self.firstEscalationAt = firstEscalationAt
    }
}

public struct AlarmFilter: Sendable {
    /// "active" (either acknowledgement), "unacknowledged" (active or cleared), or one exact status.
    public var status: String?
    public var severity: AlarmSeverity?
    public var type: String?
    public var sourceId: ID?
    public init() {}
}

extension Store {
    /// Raises an alarm, or counts one more occurrence of the open alarm of the same source and type
    /// (its severity rises to the higher of the two). Only a new alarm goes on the event log.
    @discardableResult
    public func raiseAlarm(_ raise: AlarmRaise, actor: Principal = .system) async throws -> (alarm: Alarm, isNew: Bool)
    {
        try await write { db in
            if var open = try await db.all(
                Alarm.self,
                "SELECT * FROM alarms WHERE source_id = \(bind: raise.sourceId) AND type = \(bind: raise.type) AND cleared_at IS NULL"
            ).first {
                open.occurrences += 1
                open.lastAt = raise.at
                open.detail = raise.detail
                open.severity = max(open.severity, raise.severity)
                try await db.raw(
                    """
                    UPDATE alarms SET occurrences = \(bind: open.occurrences), last_at = \(bind: open.lastAt), detail = \(bind: open.detail),
                    severity = \(bind: open.severity.rawValue) WHERE id = \(bind: open.id)
                    """
                ).run()
                return (open, false)
            }
            let alarm = Alarm(
                id: newID(), communityId: raise.communityId, type: raise.type, severity: raise.severity,
                sourceType: raise.sourceType,
                sourceId: raise.sourceId, sourceName: raise.sourceName, buildingId: raise.buildingId,
                householdId: raise.householdId,
                ruleId: raise.ruleId, message: raise.message, detail: raise.detail, occurrences: 1, firstAt: raise.at,
                lastAt: raise.at,
                nextEscalationAt: raise.firstEscalationAt)
            try await db.insert(alarm)
            try await EventLog.append(
                db, communityId: alarm.communityId, type: "alarm.raised", subjectType: "alarm", subjectId: alarm.id,
                actor: actor,
                payload: Self.alarmPayload(alarm))
            return (alarm, true)
        }
    }

    package static func alarmPayload(_ a: Alarm) -> [String: String] {
        [
            "type": a.type, "severity": a.severity.rawValue, "sourceId": a.sourceId, "sourceName": a.sourceName,
            "message": a.message, "detail": a.detail,
        ]
    }

    /// Clears the open alarm of a source and type (its rule's trigger ended); nil when none is open.
    @discardableResult
    public func clearAlarm(sourceId: ID, type: String, detail: String, actor: Principal = .system) async throws
        -> Alarm?
    {
        try await write { db in
            guard
                let open = try await db.all(
                    Alarm.self,
                    "SELECT * FROM alarms WHERE source_id = \(bind: sourceId) AND type = \(bind: type) AND cleared_at IS NULL"
                ).first
            else { return nil }
            return try await Self.clear(db, open, detail: detail, actor: actor)
        }
    }

    static func clear(_ db: any SQLDatabase, _ open: Alarm, detail: String, actor: Principal) async throws -> Alarm {
        var cleared = open
        cleared.clearedAt = nowMillis()
        cleared.clearedBy = actor.name
        cleared.nextEscalationAt = nil
        try await db.raw(
            "UPDATE alarms SET cleared_at = \(bind: cleared.clearedAt), cleared_by = \(bind: actor.name), next_escalation_at = NULL WHERE id = \(bind: open.id)"
        ).run()
        var payload = alarmPayload(cleared)
        payload["detail"] = detail
        try await EventLog.append(
            db, communityId: open.communityId, type: "alarm.cleared", subjectType: "alarm", subjectId: open.id,
            actor: actor, payload: payload)
        return cleared
    }

    package static func alarmScope(_ scope: Scope, alias a: String) -> SQLQueryString { deviceScope(scope, alias: a) }

    public func alarm(id: ID, scope: Scope) async throws -> Alarm? {
        try await read { db in
            try await db.all(
                Alarm.self, "SELECT * FROM alarms a WHERE a.id = \(bind: id) AND \(Self.alarmScope(scope, alias: "a"))"
            ).first
        }
    }

    /// Critical alarms no one has acknowledged yet, per community within `scope`: the header's badge.
    public func unacknowledgedCriticalAlarms(scope: Scope) async throws -> [(communityId: ID, count: Int)] {
        struct Row: Decodable {
            var communityId: ID
            var n: Int
        }
        return try await read { db in
            try await db.raw(
                """
                SELECT a.community_id AS "communityId", COUNT(*) AS n FROM alarms a
                WHERE a.acknowledged_at IS NULL AND a.severity = 'critical' AND \(Self.alarmScope(scope, alias: "a"))
                GROUP BY a.community_id ORDER BY n DESC, a.community_id
                """
            ).all(decoding: Row.self).map { ($0.communityId, $0.n) }
        }
    }

    public func alarms(communityId: ID, filter: AlarmFilter, page: PageRequest, scope: Scope) async throws -> Page<
        Alarm
    > {
        var condition: SQLQueryString =
            "a.community_id = \(bind: communityId) AND \(Self.alarmScope(scope, alias: "a"))"
        switch filter.status {
        case "active"?: condition += " AND a.cleared_at IS NULL"
        case "cleared"?: condition += " AND a.cleared_at IS NOT NULL"
        case "unacknowledged"?: condition += " AND a.acknowledged_at IS NULL"
        case "active_unacknowledged"?: condition += " AND a.cleared_at IS NULL AND a.acknowledged_at IS NULL"
        case "active_acknowledged"?: condition += " AND a.cleared_at IS NULL AND a.acknowledged_at IS NOT NULL"
        case "cleared_unacknowledged"?: condition += " AND a.cleared_at IS NOT NULL AND a.acknowledged_at IS NULL"
        case "cleared_acknowledged"?: condition += " AND a.cleared_at IS NOT NULL AND a.acknowledged_at IS NOT NULL"
        default: break
        }
        if let s = filter.severity { condition += " AND a.severity = \(bind: s.rawValue)" }
        if let t = filter.type { condition += " AND a.type = \(bind: t)" }
        if let s = filter.sourceId { condition += " AND a.source_id = \(bind: s)" }
        let whereClause = condition
        return try await read { db in
            // Open alarms first, the most severe first, then the most recent.
            let items = try await db.all(
                Alarm.self,
                """
                SELECT a.* FROM alarms a WHERE \(whereClause)
                ORDER BY CASE WHEN a.cleared_at IS NULL THEN 0 ELSE 1 END,
                         CASE a.severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'minor' THEN 2 ELSE 3 END,
                         a.last_at DESC, a.id
                LIMIT \(literal: page.limit) OFFSET \(literal: page.offset)
                """)
            let total = try await db.count("SELECT COUNT(*) AS n FROM alarms a WHERE \(whereClause)")
            return Page(items: items, total: total, limit: page.limit, offset: page.offset)
        }
    }

    public enum AlarmChange: Sendable { case acknowledge, clear }

    /// A person acknowledges or clears an alarm. Acknowledging twice, or clearing a cleared alarm,
    /// is a conflict (someone else was first).
    public func changeAlarm(_ alarm: Alarm, _ change: AlarmChange, actor: Principal) async throws -> Alarm {
        try await write { db in
            guard let current = try await db.all(Alarm.self, "SELECT * FROM alarms WHERE id = \(bind: alarm.id)").first
            else { throw StoreError.notFound("alarm") }
            switch change {
            case .acknowledge:
                if current.acknowledgedAt != nil {
                    throw StoreError.conflict(
                        field: "status", reason: "already acknowledged by \(current.acknowledgedBy ?? "someone")")
                }
                var acked = current
                acked.acknowledgedAt = nowMillis()
                acked.acknowledgedBy = actor.name
                acked.nextEscalationAt = nil
                try await db.raw(
                    "UPDATE alarms SET acknowledged_at = \(bind: acked.acknowledgedAt), acknowledged_by = \(bind: actor.name), next_escalation_at = NULL WHERE id = \(bind: current.id)"
                ).run()
                try await Change.record(
                    db, actor: actor, communityId: current.communityId, type: "alarm.acknowledged",
                    subjectType: "alarm", subjectId: current.id,
                    after: ["status": acked.status.rawValue])
                return acked
            case .clear:
                if current.clearedAt != nil {
                    throw StoreError.conflict(
                        field: "status", reason: "already cleared by \(current.clearedBy ?? "someone")")
                }
                let cleared = try await Self.clear(db, current, detail: "cleared by \(actor.name)", actor: actor)
                try await AuditLog.record(
                    db, actor: actor, action: "alarm.cleared", subjectType: "alarm", subjectId: current.id,
                    communityId: current.communityId,
                    after: ["status": cleared.status.rawValue])
                return cleared
            }
        }
    }

    public func commentAlarm(_ alarm: Alarm, text: String, actor: Principal) async throws -> AlarmComment {
        let comment = AlarmComment(
            id: newID(), alarmId: alarm.id, authorId: actor.accountId, authorName: actor.name, at: nowMillis(),
            text: text)
        try await write { db in
            try await db.insert(comment)
            try await Change.record(
                db, actor: actor, communityId: alarm.communityId, type: "alarm.commented", subjectType: "alarm",
                subjectId: alarm.id,
                after: ["text": String(text.prefix(200))])
        }
        return comment
    }

    public func alarmComments(_ alarm: Alarm) async throws -> [AlarmComment] {
        try await read { db in
            try await db.all(
                AlarmComment.self, "SELECT * FROM alarm_comments WHERE alarm_id = \(bind: alarm.id) ORDER BY at, id")
        }
    }

    /// Alarms whose next escalation is due: open, unacknowledged.
    public func alarmsToEscalate(now: Millis, limit: Int = 100) async throws -> [Alarm] {
        try await read { db in
            try await db.all(
                Alarm.self,
                """
                SELECT * FROM alarms WHERE next_escalation_at <= \(bind: now) AND cleared_at IS NULL AND acknowledged_at IS NULL
                ORDER BY next_escalation_at LIMIT \(literal: limit)
                """)
        }
    }

    /// Records that a tier was told and when the next is due; false when someone acknowledged or
    /// cleared the alarm meanwhile (or another node escalated it first), so nobody is told twice.
    public func recordEscalation(_ alarm: Alarm, level: Int, next: Millis?) async throws -> Bool {
        try await write { db in
            let rows = try await db.raw(
                """
                UPDATE alarms SET escalation_level = \(bind: level), next_escalation_at = \(bind: next)
                WHERE id = \(bind: alarm.id) AND escalation_level = \(bind: alarm.escalationLevel) AND cleared_at IS NULL AND acknowledged_at IS NULL
                RETURNING id
                """
            ).all()
            if rows.isEmpty { return false }
            try await EventLog.append(
                db, communityId: alarm.communityId, type: "alarm.escalated", subjectType: "alarm", subjectId: alarm.id,
                actor: .system,
                payload: ["level": "\(level)", "type": alarm.type, "sourceName": alarm.sourceName])
            return true
        }
    }
}

extension Store {
    /// Links an alarm to the work order a person opened for it, inside the transaction that opens
    /// it, unless another got there first: then the whole opening is undone (a conflict).
    package static func linkOnce(_ alarmId: ID, toWorkOrder workOrderId: ID, _ db: any SQLDatabase) async throws {
        let lock: SQLQueryString = db.isPostgres ? " FOR UPDATE" : ""
        let row = try await db.raw("SELECT work_order_id FROM alarms WHERE id = \(bind: alarmId)\(lock)").first()
        if try row?.decode(column: "work_order_id", as: String?.self) != nil {
            throw StoreError.conflict(field: "alarm", reason: "has a work order already")
        }
        try await link(alarmId, toWorkOrder: workOrderId, db)
    }

    /// Where each alarm is, as people say it: the device's place or the alarm's household or
    /// building ("1号楼 1单元 402", "2号楼"), with the device's own location text ("地下车库");
    /// and the device that raised it. A few queries for the whole list, not one per alarm.
    package func alarmPlaces(_ alarms: [Alarm]) async throws -> [ID: (device: Device?, place: String)] {
        guard !alarms.isEmpty else { return [:] }
        let deviceIds = Set(alarms.filter { $0.sourceType == "device" }.map(\.sourceId))
        return try await read { db in
            let devices =
                deviceIds.isEmpty
                ? []
                : try await db.all(Device.self, "SELECT * FROM devices WHERE \(SQLQueryString.isIn("id", deviceIds))")
            let byId = Dictionary(devices.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            var households = Set<ID>()
            var units = Set<ID>()
            var buildings = Set<ID>()
            for a in alarms {
                let d = byId[a.sourceId]
                if let h = d?.householdId ?? a.householdId { households.insert(h) }
                if let u = d?.unitId { units.insert(u) }
                if let b = d?.buildingId ?? a.buildingId { buildings.insert(b) }
            }
            struct Named: Decodable {
                var id: ID
                var name: String
            }
            func names(_ sql: SQLQueryString) async throws -> [ID: String] {
                let rows = try await db.raw(sql).all(decoding: Named.self)
                return Dictionary(rows.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
            }
            let homeNames =
                households.isEmpty
                ? [:]
                : try await names(
                    """
                    SELECT h.id AS id, b.name || ' ' || u.name || ' ' || h.room AS name FROM households h
                    JOIN buildings b ON b.id = h.building_id JOIN units u ON u.id = h.unit_id
                    WHERE \(SQLQueryString.isIn("h.id", households))
                    """)
            let unitNames =
                units.isEmpty
                ? [:]
                : try await names(
                    """
                    SELECT u.id AS id, b.name || ' ' || u.name AS name FROM units u JOIN buildings b ON b.id = u.building_id
                    WHERE \(SQLQueryString.isIn("u.id", units))
                    """)
            let buildingNames =
                buildings.isEmpty
                ? [:] : try await names("SELECT id, name FROM buildings WHERE \(SQLQueryString.isIn("id", buildings))")
            var places: [ID: (device: Device?, place: String)] = [:]
            for a in alarms {
                let d = byId[a.sourceId]
                let home = (d?.householdId ?? a.householdId).flatMap { homeNames[$0] }
                let unit = d?.unitId.flatMap { unitNames[$0] }
                let building = (d?.buildingId ?? a.buildingId).flatMap { buildingNames[$0] }
                let area = home ?? unit ?? building
                let spot = d?.location ?? ""
                places[a.id] = (d, [area, spot.isEmpty ? nil : spot].compactMap { $0 }.joined(separator: " · "))
            }
            return places
        }
    }

    /// Marks an alarm with the work order opened for it, inside the transaction that opens it.
    package static func link(_ alarmId: ID, toWorkOrder workOrderId: ID, _ db: any SQLDatabase) async throws {
        try await db.raw("UPDATE alarms SET work_order_id = \(bind: workOrderId) WHERE id = \(bind: alarmId)").run()
    }
}
