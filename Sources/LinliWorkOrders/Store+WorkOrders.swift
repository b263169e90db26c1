import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import SQLKit

public struct WorkOrder: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    /// What people say on the phone: "GD20261130-0007".
    public var number: String
    public var category: WorkOrderCategory
    public var title: String
    public var description: String
    public var source: WorkOrderSource
    public var status: WorkOrderStatus
    public var reporterAccountId: ID?
    public var reporterName: String
    public var reporterPhone: String
    public var householdId: ID?
    public var buildingId: ID?
    public var location: String
    /// The organisation handling it now (a transfer changes it; that organisation then sees it).
    public var organisationId: ID?
    public var assigneeAccountId: ID?
    public var assigneeName: String?
    /// The member of staff it was given to, from the roster (they may have no account).
    public var assigneeStaffId: ID? = nil
    public var alarmId: ID?
    public var dueAt: Millis
    public var overdueAt: Millis?
    public var createdAt: Millis
    public var updatedAt: Millis
    public var resolvedAt: Millis?
    public var closedAt: Millis?
    public var rating: Int?
    public var ratingComment: String?
    public var reopenCount: Int
    /// Where, for reports that came with coordinates (Open311), and a photo's address.
    public var lat: Double?
    public var lon: Double?
    public var mediaUrl: String?
    public var reporterEmail: String = ""
    /// The Open311 key it came in with, if it did.
    public var open311KeyId: ID?
    /// When the reporter would like a visit: a window on one day.
    public var preferredFrom: Millis? = nil
    public var preferredTo: Millis? = nil
}

extension WorkOrder: Record { public static let table = "work_orders" }

public struct WorkOrderStepRecord: Codable, Sendable, Equatable {
    public var id: ID
    public var workOrderId: ID
    public var communityId: ID
    public var at: Millis
    public var actorId: ID?
    public var actorName: String
    public var step: String
    public var fromStatus: WorkOrderStatus?
    public var toStatus: WorkOrderStatus
    public var note: String
}

extension WorkOrderStepRecord: Record { public static let table = "work_order_steps" }

/// A community's choices for one category.
public struct WorkOrderSetting: Codable, Sendable, Equatable {
    public var communityId: ID
    public var category: WorkOrderCategory
    public var organisationId: ID?
    public var deadlineHours: Int
    public var dispatch: DispatchMode
    /// Accounts taking turns (round robin), as a JSON list of account ids.
    public var team: String
    public var nextInTurn: Int

    public var teamIds: [ID] { (try? JSONDecoder().decode([ID].self, from: Data(team.utf8))) ?? [] }

    public init(
        communityId: ID, category: WorkOrderCategory, organisationId: ID?, deadlineHours: Int, dispatch: DispatchMode,
        team: String, nextInTurn: Int
    ) {
        self.communityId = communityId
        self.category = category
        self.organisationId = organisationId
        self.deadlineHours = deadlineHours
        self.dispatch = dispatch
        self.team = team
        self.nextInTurn = nextInTurn
    }

    public static func defaults(_ communityId: ID, _ category: WorkOrderCategory) -> WorkOrderSetting {
        WorkOrderSetting(
            communityId: communityId, category: category, organisationId: nil,
            deadlineHours: category.defaultDeadlineHours,
            dispatch: .assign, team: "[]", nextInTurn: 0)
    }
}

/// A new work order as reported.
public struct WorkOrderReport: Sendable {
    public var communityId: ID
    public var category: WorkOrderCategory
    public var title: String
    public var description: String
    public var source: WorkOrderSource
    public var reporterAccountId: ID?
    public var reporterName: String
    public var reporterPhone: String
    public var householdId: ID?
    public var buildingId: ID?
    public var location: String
    public var alarmId: ID?
    public var lat: Double? = nil
    public var lon: Double? = nil
    public var mediaUrl: String? = nil
    public var reporterEmail = ""
    public var open311KeyId: ID? = nil
    public var preferredFrom: Millis? = nil
    public var preferredTo: Millis? = nil

    public init(
        communityId: ID, category: WorkOrderCategory, title: String, description: String, source: WorkOrderSource,
        reporterAccountId: ID?,
        reporterName: String, reporterPhone: String = "", householdId: ID? = nil, buildingId: ID? = nil,
        location: String = "", alarmId: ID? = nil,
        lat: Double? = nil, lon: Double? = nil, mediaUrl: String? = nil, reporterEmail: String = "",
        open311KeyId: ID? = nil
    ) {
        self.communityId = communityId
        self.category = category
        self.title = title
        self.description = description
        self.source = source
        self.reporterAccountId = reporterAccountId
        self.reporterName = reporterName
        self.reporterPhone = reporterPhone
        self.householdId = householdId
        self.buildingId = buildingId
        self.location = location
        self.alarmId = alarmId
        self.lat = lat
        self.lon = lon
        self.mediaUrl = mediaUrl
        self.reporterEmail = reporterEmail
        self.open311KeyId = open311KeyId
    }
}

public struct WorkOrderFilter: Sendable {
    /// "open" (still to do), or one status.
    public var status: String?
    public var category: WorkOrderCategory?
    public var assigneeAccountId: ID?
    public var overdueOnly = false
    public init() {}
}

extension Store {
    package static func workOrderScope(_ scope: Scope, alias a: String) -> SQLQueryString {
        if scope.everything { return "1 = 1" }
        var parts: [SQLQueryString] = []
        if !scope.communities.isEmpty { parts.append(.isIn("\(a).community_id", scope.communities)) }
        if !scope.buildings.isEmpty { parts.append(.isIn("\(a).building_id", scope.buildings)) }
        if !scope.households.isEmpty { parts.append(.isIn("\(a).household_id", scope.households)) }
        if !scope.organisations.isEmpty { parts.append(.isIn("\(a).organisation_id", scope.organisations)) }
        return .any(parts)
    }

    public func workOrderSetting(communityId: ID, category: WorkOrderCategory) async throws -> WorkOrderSetting {
        try await read { db in
            try await db.raw(
                "SELECT * FROM work_order_settings WHERE community_id = \(bind: communityId) AND category = \(bind: category.rawValue)"
            )
            .first(decoding: WorkOrderSetting.self, keyDecodingStrategy: .snakeCase)
        } ?? .defaults(communityId, category)
    }

    public func workOrderSettings(communityId: ID) async throws -> [WorkOrderSetting] {
        var stored: [WorkOrderCategory: WorkOrderSetting] = [:]
        for s in try await read({ db in
            try await db.raw("SELECT * FROM work_order_settings WHERE community_id = \(bind: communityId)").all(
                decoding: WorkOrderSetting.self, keyDecodingStrategy: .snakeCase)
        }) { stored[s.category] = s }
        return WorkOrderCategory.allCases.map { stored[$0] ?? .defaults(communityId, $0) }
    }

    public func saveWorkOrderSetting(_ setting: WorkOrderSetting, actor: Principal) async throws {
        try await write { db in
            try await db.raw(
                """
                INSERT INTO work_order_settings (community_id, category, organisation_id, deadline_hours, dispatch, team, next_in_turn)
                VALUES (\(bind: setting.communityId), \(bind: setting.category.rawValue), \(bind: setting.organisationId), \(bind: setting.deadlineHours),
                        \(bind: setting.dispatch.rawValue), \(bind: setting.team), 0)
                ON CONFLICT (community_id, category) DO UPDATE SET organisation_id = excluded.organisation_id, deadline_hours = excluded.deadline_hours,
                    dispatch = excluded.dispatch, team = excluded.team, next_in_turn = 0
                """
            ).run()
            try await AuditLog.record(
                db, actor: actor, action: "workorder.settings", subjectType: "community",
                subjectId: setting.communityId, communityId: setting.communityId,
                after: [
                    "category": setting.category.rawValue, "deadlineHours": "\(setting.deadlineHours)",
                    "dispatch": setting.dispatch.rawValue,
                ])
        }
    }

    /// Files a work order: numbered, given its category's organisation and deadline, and in turn
    /// to the next of the team when the category is dispatched round robin.
    /// `alongside` runs in the same transaction once the order is stored: the module that opened it
    /// records its side there (linkage links the alarm it came from), so both commit or neither.
    public func submitWorkOrder(
        _ report: WorkOrderReport, actor: Principal, now: Millis = nowMillis(),
        alongside: (@Sendable (any SQLDatabase, WorkOrder) async throws -> Void)? = nil
    ) async throws -> WorkOrder {
        let setting = try await workOrderSetting(communityId: report.communityId, category: report.category)
        return try await write { db in
            let day = Self.dayStamp(now)
            let sameDay = try await db.count(
                "SELECT COUNT(*) AS n FROM work_orders WHERE community_id = \(bind: report.communityId) AND number LIKE \(bind: "GD\(day)-%")"
            )
            var order = WorkOrder(
                id: newID(), communityId: report.communityId, number: "GD\(day)-" + String(format: "%04d", sameDay + 1),
                category: report.category,
                title: report.title, description: report.description, source: report.source, status: .submitted,
                reporterAccountId: report.reporterAccountId, reporterName: report.reporterName,
                reporterPhone: report.reporterPhone,
                householdId: report.householdId, buildingId: report.buildingId, location: report.location,
                organisationId: setting.organisationId,
                alarmId: report.alarmId, dueAt: now + Millis(setting.deadlineHours) * 3_600_000, createdAt: now,
                updatedAt: now, reopenCount: 0,
                lat: report.lat, lon: report.lon, mediaUrl: report.mediaUrl, reporterEmail: report.reporterEmail,
                open311KeyId: report.open311KeyId, preferredFrom: report.preferredFrom, preferredTo: report.preferredTo)
            var steps = [
                WorkOrderStepRecord(
                    id: newID(), workOrderId: order.id, communityId: order.communityId, at: now,
                    actorId: actor.accountId, actorName: actor.name,
                    step: "submit", fromStatus: nil, toStatus: .submitted, note: "")
            ]
            if setting.dispatch == .roundRobin, !setting.teamIds.isEmpty {
                let turn = setting.nextInTurn % setting.teamIds.count
                let assignee = setting.teamIds[turn]
                let name =
                    try await db.raw("SELECT display_name FROM accounts WHERE id = \(bind: assignee)").first()?.decode(
                        column: "display_name", as: String.self) ?? "?"
                order.status = .assigned
                order.assigneeAccountId = assignee
                order.assigneeName = name
                steps.append(
                    WorkOrderStepRecord(
                        id: newID(), workOrderId: order.id, communityId: order.communityId, at: now, actorId: nil,
                        actorName: "round robin",
                        step: "assign", fromStatus: .submitted, toStatus: .assigned, note: name))
                try await db.raw(
                    "UPDATE work_order_settings SET next_in_turn = \(bind: turn + 1) WHERE community_id = \(bind: order.communityId) AND category = \(bind: order.category.rawValue)"
                ).run()
            }
            try await db.insert(order)
            for step in steps { try await db.insert(step) }
            try await alongside?(db, order)
            try await Change.record(
                db, actor: actor, communityId: order.communityId, type: "workorder.submitted", subjectType: "workorder",
                subjectId: order.id,
                after: Self.stepPayload(order, note: "").merging(
                    ["category": order.category.rawValue, "source": order.source.rawValue],
                    uniquingKeysWith: { a, _ in a }
                ))
            return order
        }
    }

    package static func dayStamp(_ millis: Millis) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd"
        f.timeZone = TimeZone(identifier: "Asia/Shanghai")
        return f.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    public func workOrder(id: ID) async throws -> WorkOrder? {
        try await read { db in
            try await db.all(WorkOrder.self, "SELECT * FROM work_orders WHERE id = \(bind: id)").first
        }
    }

    /// A work order the caller may see: within the scope, or reported by the caller.
    public func workOrder(id: ID, scope: Scope, accountId: ID) async throws -> WorkOrder? {
        try await read { db in
            try await db.all(
                WorkOrder.self,
                "SELECT * FROM work_orders w WHERE w.id = \(bind: id) AND (\(Self.workOrderScope(scope, alias: "w")) OR w.reporter_account_id = \(bind: accountId))"
            ).first
        }
    }

    public func workOrders(
        communityId: ID?, filter: WorkOrderFilter, page: PageRequest, scope: Scope, reporter: ID? = nil,
        now: Millis = nowMillis()
    ) async throws -> Page<WorkOrder> {
        var condition: SQLQueryString =
            reporter.map { "w.reporter_account_id = \(bind: $0)" } ?? Self.workOrderScope(scope, alias: "w")
        if let communityId { condition += " AND w.community_id = \(bind: communityId)" }
        switch filter.status {
        case "open"?: condition += " AND w.status NOT IN ('resolved', 'closed', 'rejected', 'returned')"
        case let s?: condition += " AND w.status = \(bind: s)"
        case nil: break
        }
        if let c = filter.category { condition += " AND w.category = \(bind: c.rawValue)" }
        if let a = filter.assigneeAccountId { condition += " AND w.assignee_account_id = \(bind: a)" }
        if filter.overdueOnly {
            condition +=
                " AND w.overdue_at IS NOT NULL AND w.status NOT IN ('resolved', 'closed', 'rejected', 'returned')"
        }
        let whereClause = condition
        return try await read { db in
            let items = try await db.all(
                WorkOrder.self,
                "SELECT w.* FROM work_orders w WHERE \(whereClause) ORDER BY w.created_at DESC, w.id LIMIT \(literal: page.limit) OFFSET \(literal: page.offset)"
            )
            let total = try await db.count("SELECT COUNT(*) AS n FROM work_orders w WHERE \(whereClause)")
            return Page(items: items, total: total, limit: page.limit, offset: page.offset)
        }
    }

    public func workOrderSteps(_ order: WorkOrder) async throws -> [WorkOrderStepRecord] {
        try await read { db in
            try await db.all(
                WorkOrderStepRecord.self,
                "SELECT * FROM work_order_steps WHERE work_order_id = \(bind: order.id) ORDER BY at, id")
        }
    }

    /// What a step changes besides the status.
    public struct StepDetails: Sendable {
        public var note = ""
        /// Who gets it: an account (`id`), or a member of staff from the roster (`staffId`, with
        /// their account as `id` when they have one).
        public var assignee: (id: ID?, name: String)? = nil
        public var assigneeStaffId: ID? = nil
        public var organisationId: ID? = nil
        public var rating: Int? = nil
        public init() {}
    }

    /// Takes one step, if it applies to the work order as it is now (checked inside the write, so
    /// two people acting at once cannot both move it): the new state, the timeline entry, the event.
    public func takeStep(
        _ step: WorkOrderStep, on orderId: ID, details: StepDetails, actor: Principal, now: Millis = nowMillis()
    ) async throws -> WorkOrder {
        try await write { db in
            guard
                var order = try await db.all(WorkOrder.self, "SELECT * FROM work_orders WHERE id = \(bind: orderId)")
                    .first
            else { throw StoreError.notFound("work order") }
            guard let next = step.next(from: order.status) else {
                throw StoreError.conflict(
                    field: "status", reason: "is \(order.status.rawValue): cannot \(step.rawValue)")
            }
            if step == .reopen, let since = order.resolvedAt, now - since > WorkOrderStep.reopenWindow {
                throw StoreError.conflict(
                    field: "status", reason: "resolved more than 7 days ago: report it again instead")
            }
            let from = order.status
            order.status = next
            order.updatedAt = now
            var note = details.note
            switch step {
            case .assign, .grab:
                if let a = details.assignee {
                    order.assigneeAccountId = a.id
                    order.assigneeName = a.name
                    order.assigneeStaffId = details.assigneeStaffId
                    note = note.isEmpty ? a.name : "\(a.name): \(note)"
                }
            case .transfer:
                order.organisationId = details.organisationId
                order.assigneeAccountId = nil
                order.assigneeName = nil
                order.assigneeStaffId = nil
            case .resolve:
                order.resolvedAt = now
            case .close:
                order.closedAt = now
            case .rate:
                order.rating = details.rating
                order.ratingComment = details.note.isEmpty ? nil : details.note
                order.closedAt = now
            case .reopen:
                order.reopenCount += 1
                order.resolvedAt = nil
                order.closedAt = nil
                order.rating = nil
                order.ratingComment = nil
                order.overdueAt = nil
                order.assigneeAccountId = nil
                order.assigneeName = nil
                order.assigneeStaffId = nil
                let setting =
                    try await db.raw(
                        "SELECT deadline_hours FROM work_order_settings WHERE community_id = \(bind: order.communityId) AND category = \(bind: order.category.rawValue)"
                    )
                    .first()?.decode(column: "deadline_hours", as: Int.self) ?? order.category.defaultDeadlineHours
                order.dueAt = now + Millis(setting) * 3_600_000
            case .resubmit:
                order.dueAt = max(order.dueAt, now + 3_600_000)
            default: break
            }
            try await db.update(order)
            try await db.insert(
                WorkOrderStepRecord(
                    id: newID(), workOrderId: order.id, communityId: order.communityId, at: now,
                    actorId: actor.accountId,
                    actorName: actor.name, step: step.rawValue, fromStatus: from, toStatus: next, note: note))
            try await Change.record(
                db, actor: actor, communityId: order.communityId, type: "workorder.\(step.rawValue)",
                subjectType: "workorder", subjectId: order.id,
                before: ["status": from.rawValue], after: Self.stepPayload(order, note: note))
            return order
        }
    }

    /// What a step's event says: enough for whoever tells the people concerned (the assignee, the
    /// reporter) without reading the work order again.
    static func stepPayload(_ order: WorkOrder, note: String) -> [String: String] {
        var payload = [
            "status": order.status.rawValue, "number": order.number, "note": String(note.prefix(200)),
            "title": String(order.title.prefix(200)),
        ]
        payload["assigneeAccountId"] = order.assigneeAccountId
        payload["assigneeStaffId"] = order.assigneeStaffId
        payload["reporterAccountId"] = order.reporterAccountId
        return payload
    }

    /// Marks open work orders past their deadline, once each, with a `workorder.overdue` event
    /// (rules and escalations watch for it). Returns those marked.
    public func markOverdueWorkOrders(now: Millis = nowMillis()) async throws -> [WorkOrder] {
        // Looked for every second: read first, so an idle second costs no write.
        let anyDue = try await read { db in
            try await db.count(
                """
                SELECT COUNT(*) AS n FROM work_orders WHERE due_at < \(bind: now) AND overdue_at IS NULL
                AND status NOT IN ('resolved', 'closed', 'rejected', 'returned')
                """)
        }
        guard anyDue > 0 else { return [] }
        return try await write { db in
            let due = try await db.all(
                WorkOrder.self,
                """
                SELECT * FROM work_orders WHERE due_at < \(bind: now) AND overdue_at IS NULL
                AND status NOT IN ('resolved', 'closed', 'rejected', 'returned') ORDER BY due_at LIMIT 200
                """)
            for order in due {
                try await db.raw("UPDATE work_orders SET overdue_at = \(bind: now) WHERE id = \(bind: order.id)").run()
                try await EventLog.append(
                    db, communityId: order.communityId, type: "workorder.overdue", subjectType: "workorder",
                    subjectId: order.id, actor: .system,
                    payload: [
                        "number": order.number, "category": order.category.rawValue, "status": order.status.rawValue,
                        "assignee": order.assigneeName ?? "",
                    ])
            }
            return due
        }
    }

    // MARK: Open311

    /// Creates a key for a third-party reporter; returns it in clear, the only time it is shown.
    public func createOpen311Key(communityId: ID, name: String, actor: Principal) async throws -> (id: ID, key: String)
    {
        let key = Digest.randomToken(bytes: 24)
        let id = newID()
        try await write { db in
            try await db.raw(
                """
                INSERT INTO open311_keys (id, community_id, name, key_hash, created_at) VALUES (\(bind: id), \(bind: communityId), \(bind: name), \(bind: Digest.sha256Hex(key)), \(bind: nowMillis()))
                """
            ).run()
            try await AuditLog.record(
                db, actor: actor, action: "open311.key.created", subjectType: "open311_key", subjectId: id,
                communityId: communityId, after: ["name": name])
        }
        return (id, key)
    }

    /// The community and key id an Open311 key belongs to, if it is valid.
    public func open311Key(_ key: String) async throws -> (id: ID, communityId: ID)? {
        struct Row: Decodable {
            package var id: ID
            package var communityId: ID
        }
        return try await read { db in
            try await db.raw(
                "SELECT id, community_id FROM open311_keys WHERE key_hash = \(bind: Digest.sha256Hex(key)) AND revoked_at IS NULL"
            )
            .first(decoding: Row.self, keyDecodingStrategy: .snakeCase)
        }.map { ($0.id, $0.communityId) }
    }

    /// Requests that came in through Open311, newest first, as GET requests filters them.
    public func open311Requests(
        communityId: ID, ids: [ID]?, category: WorkOrderCategory?, from: Millis?, to: Millis?, open: Bool?, limit: Int
    ) async throws -> [WorkOrder] {
        var condition: SQLQueryString = "community_id = \(bind: communityId) AND source = 'open311'"
        if let ids { condition += " AND \(SQLQueryString.isIn("id", Set(ids)))" }
        if let category { condition += " AND category = \(bind: category.rawValue)" }
        if let from { condition += " AND created_at >= \(bind: from)" }
        if let to { condition += " AND created_at <= \(bind: to)" }
        if let open {
            condition +=
                open
                ? " AND status NOT IN ('resolved', 'closed', 'rejected')"
                : " AND status IN ('resolved', 'closed', 'rejected')"
        }
        let whereClause = condition
        return try await read { db in
            try await db.all(
                WorkOrder.self,
                "SELECT * FROM work_orders WHERE \(whereClause) ORDER BY created_at DESC, id LIMIT \(literal: limit)")
        }
    }

    /// The newest note on each work order's timeline, for Open311's `status_notes`.
    public func latestNotes(_ ids: [ID]) async throws -> [ID: String] {
        guard !ids.isEmpty else { return [:] }
        let steps = try await read { db in
            try await db.all(
                WorkOrderStepRecord.self,
                "SELECT * FROM work_order_steps WHERE \(SQLQueryString.isIn("work_order_id", Set(ids))) AND note <> '' ORDER BY at, id"
            )
        }
        var notes: [ID: String] = [:]
        for step in steps { notes[step.workOrderId] = step.note }
        return notes
    }
}
