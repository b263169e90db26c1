import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliHTTP
import LinliMessaging
import LinliStorage
import LinliWorkOrders

/// The alarm board: a community's alarms, most pressing first, live, with acknowledge and clear.
extension WebConsole {
    func registerAlarms(_ router: Router<AppContext>) {
        router.get("/console/c/:cid/alarms", use: alarmBoard)
        router.get("/console/c/:cid/alarms/stream", use: alarmStream)
        router.get("/console/alarms/:id", use: alarmDetail)
        router.post("/console/alarms/:id/acknowledge", use: acknowledgeAlarm)
        router.post("/console/alarms/:id/clear", use: clearAlarm)
        router.post("/console/alarms/:id/comments", use: commentAlarm)
        router.get("/console/alarm-badge", use: alarmBadge)
        router.get("/console/alarms/:id/work-order", use: alarmWorkOrderForm)
        router.post("/console/alarms/:id/work-order", use: openAlarmWorkOrder)
    }

    struct AlarmRow {
        var id: ID, type: String, severity: AlarmSeverity, severityCode: String, status: Alarm.Status,
            statusCode: String, active: Bool, acknowledged: Bool
        /// Where, as people say it ("1号楼 1单元 402 · 厨房"), and what raised it (the device by its name).
        var place: String, hasPlace: Bool
        var source: String, sourceLink: String?, message: String, detail: String, occurrences: Int, firstAt: String,
            lastAt: String
        var acknowledgedBy: String?, clearedBy: String?
        var workOrderId: ID?
    }

    func alarmRows(_ alarms: [Alarm]) async throws -> [AlarmRow] {
        let places = try await store.alarmPlaces(alarms)
        var rows: [AlarmRow] = []
        for a in alarms {
            let found = places[a.id]
            let device = found?.device
            // A device by what people call it; its product key and name are for the device page.
            let source = device.map { $0.nickname.isEmpty ? $0.deviceName : $0.nickname } ?? a.sourceName
            rows.append(
                AlarmRow(
                    id: a.id, type: a.type, severity: a.severity, severityCode: a.severity.rawValue, status: a.status,
                    statusCode: a.status.rawValue, active: a.clearedAt == nil, acknowledged: a.acknowledgedAt != nil,
                    place: found?.place ?? "", hasPlace: !(found?.place ?? "").isEmpty, source: source,
                    sourceLink: device.map { "/console/d/\($0.productKey)/\($0.deviceName)" }, message: a.message,
                    detail: a.detail, occurrences: a.occurrences, firstAt: Self.time(a.firstAt),
                    lastAt: Self.time(a.lastAt), acknowledgedBy: a.acknowledgedBy, clearedBy: a.clearedBy,
                    workOrderId: a.workOrderId))
        }
        return rows
    }

    /// `?partial=1` answers the table body alone: the page fetches it when the stream says an alarm changed.
    @Sendable func alarmBoard(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewAlarms)
        var q = QueryReader(request)
        var filter = AlarmFilter()
        let status = q.string("status") ?? "active"
        filter.status =
            ["active", "cleared", "unacknowledged", "all"].contains(status)
            ? (status == "all" ? nil : status) : "active"
        filter.severity = q.oneOf("severity", AlarmSeverity.self)
        var page = q.page()
        page.limit = min(page.limit, 100)
        try q.check()
        let found = try await store.alarms(communityId: community.id, filter: filter, page: page, scope: scope)
        let caller = try context.requireCaller()
        let canHandle =
            caller.scope(for: .handleAlarms).coversCommunity(community.id)
            || !caller.scope(for: .handleAlarms).buildings.isEmpty
        let object: [String: Any] = [
            "frame": Frame(title: text("nav.alarms", context), context: context, community: community),
            "alarms": try await alarmRows(found.items), "hasAlarms": !found.items.isEmpty,
            "total": found.total, "canHandle": canHandle,
            "statuses": ["active", "unacknowledged", "cleared", "all"].map {
                SelectOption(value: $0, label: label("alarmFilter", $0, context), selected: $0 == status)
            },
            "severities": AlarmSeverity.allCases.map {
                SelectOption(
                    value: $0.rawValue, label: label("severity", $0.rawValue, context), selected: $0 == filter.severity)
            },
            "pager": Self.pager(request, total: found.total, page: page),
        ]
        return try pages.render(request.uri.queryParameters.get("partial") == "1" ? "alarm-rows" : "alarms", object)
    }

    /// Says only that an alarm of the community changed (its id), so nothing leaks beyond the
    /// caller's reach: the page then fetches its own, scoped, rows again.
    @Sendable func alarmStream(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .viewAlarms)
        let store = self.store
        var communityOnly = Scope()
        communityOnly.communities = [community.id]
        let scope = communityOnly
        let start = try await store.read { db in try await EventLog.latestSeq(db) }
        return EventStream.response(store: store, scope: scope, after: start) { event in
            event.type.hasPrefix("alarm.") ? ("alarm", event.subjectId) : nil
        }
    }

    @Sendable func alarmDetail(_ request: Request, context: AppContext) async throws -> Response {
        try await alarmPage(context, error: nil, status: .ok)
    }

    func alarmPage(_ context: AppContext, error: String?, status: HTTPResponse.Status) async throws -> Response {
        let caller = try context.requireCaller()
        let alarm = try await API(services: services).visibleAlarm(context, .viewAlarms)
        let community = try await store.community(
            alarm.communityId, scope: .everything, memberships: caller.communityIds)
        struct CommentRow {
            var author: String
            var at: String
            var text: String
        }
        let comments = try await store.alarmComments(alarm).map {
            CommentRow(author: $0.authorName, at: Self.time($0.at), text: $0.text)
        }
        let rule = try await alarm.ruleId.asyncMap { try await store.rule(id: $0) } ?? nil
        let canHandle = (try? await store.alarm(id: alarm.id, scope: caller.scope(for: .handleAlarms))) != nil
        let order = try await alarm.workOrderId.asyncMap { try await store.workOrder(id: $0) } ?? nil
        let canOpenWorkOrder =
            order == nil && caller.scope(for: .handleWorkOrders).coversCommunity(alarm.communityId)
        return try pages.render(
            "alarm",
            [
                "frame": Frame(title: alarm.message, context: context, community: community),
                "a": try await alarmRows([alarm])[0], "comments": comments,
                "rule": rule?.name ?? "", "hasRule": rule != nil, "canHandle": canHandle, "error": error ?? "",
                "hasWorkOrder": order != nil, "workOrderNumber": order?.number ?? "",
                "workOrderStatus": order.map { label("workorder.status", $0.status.rawValue, context) } ?? "",
                "canOpenWorkOrder": canOpenWorkOrder,
                "hasError": error != nil,
            ] as [String: Any], status: status)
    }

    /// Back to where the person was: the board, or the alarm's own page.
    func backFrom(_ request: Request, fields: [String: String], alarm: Alarm) -> Response {
        let next = Self.safeNext(fields["next"])
        return .redirect(to: next.isEmpty ? "/console/alarms/\(alarm.id)" : next)
    }

    func changeAlarm(_ request: Request, _ context: AppContext, _ change: Store.AlarmChange) async throws -> Response {
        var request = request
        let fields = try await request.formFields(context: context)
        let alarm = try await API(services: services).visibleAlarm(context, .handleAlarms)
        do {
            _ = try await store.changeAlarm(alarm, change, actor: context.principal)
        } catch let StoreError.conflict(_, reason) {
            return try await alarmPage(context, error: reason, status: .conflict)
        }
        return backFrom(request, fields: fields, alarm: alarm)
    }

    @Sendable func acknowledgeAlarm(_ request: Request, context: AppContext) async throws -> Response {
        try await changeAlarm(request, context, .acknowledge)
    }
    @Sendable func clearAlarm(_ request: Request, context: AppContext) async throws -> Response {
        try await changeAlarm(request, context, .clear)
    }

    @Sendable func commentAlarm(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let fields = try await request.formFields(context: context)
        let alarm = try await API(services: services).visibleAlarm(context, .handleAlarms)
        let text = (fields["text"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...2_000).contains(text.count) else {
            return try await alarmPage(
                context, error: self.text("linkage.error.comment", context), status: .unprocessableContent)
        }
        _ = try await store.commentAlarm(alarm, text: text, actor: context.principal)
        return .redirect(to: "/console/alarms/\(alarm.id)")
    }

    /// The header's badge: how many critical alarms wait for someone to acknowledge them, within
    /// the caller's reach, and where to see them (the community with the most).
    @Sendable func alarmBadge(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.viewAlarms)
        let counts = try await store.unacknowledgedCriticalAlarms(scope: scope)
        struct Badge: Encodable {
            var critical: Int
            var href: String?
        }
        let badge = Badge(
            critical: counts.reduce(0) { $0 + $1.count },
            href: counts.first.map { "/console/c/\($0.communityId)/alarms?status=unacknowledged&severity=critical" })
        var response = try JSON.response(badge)
        response.headers[.cacheControl] = "no-store"
        return response
    }

    /// The work-order form, filled in from the alarm: what, where, and the alarm's own words.
    func alarmWorkOrderValues(_ alarm: Alarm, _ row: AlarmRow, _ context: AppContext) -> WorkOrderForm.Values {
        var values = WorkOrderForm.Values()
        values.category = Self.category(ofAlarm: alarm.type).rawValue
        values.title = String(alarm.message.prefix(100))
        values.description = text(
            "linkage.workOrderDescription", context,
            ["source": row.source, "detail": alarm.detail, "at": row.lastAt, "count": "\(alarm.occurrences)"])
        values.location = String(row.place.prefix(200))
        values.reporterName = text("linkage.alarmReporter", context)
        return values
    }

    /// The kind of work an alarm usually is: intrusion, fire and gas are security's; the rest repairs.
    static func category(ofAlarm type: String) -> WorkOrderCategory {
        let t = type.lowercased()
        return ["intrusion", "fire", "smoke", "gas", "sos", "fall", "door"].contains { t.contains($0) }
            ? .security : .repair
    }

    func alarmForWorkOrder(_ context: AppContext) async throws -> (Alarm, Community, AlarmRow) {
        let caller = try context.requireCaller()
        let alarm = try await API(services: services).visibleAlarm(context, .viewAlarms)
        guard caller.scope(for: .handleWorkOrders).coversCommunity(alarm.communityId) else {
            throw Problem.forbidden(.handleWorkOrders)
        }
        let community = try await store.community(
            alarm.communityId, scope: .everything, memberships: caller.communityIds)
        return (alarm, community, try await alarmRows([alarm])[0])
    }

    @Sendable func alarmWorkOrderForm(_ request: Request, context: AppContext) async throws -> Response {
        let (alarm, community, row) = try await alarmForWorkOrder(context)
        if let id = alarm.workOrderId { return .redirect(to: "/console/work-orders/\(id)") }
        return try await WorkOrderForm(services: services).render(
            context, community: community, values: alarmWorkOrderValues(alarm, row, context), errors: [:],
            action: "/console/alarms/\(alarm.id)/work-order",
            from: (text("linkage.fromAlarm", context, ["message": alarm.message]), "/console/alarms/\(alarm.id)"))
    }

    /// Opens the work order and links it to the alarm in the same transaction; an alarm has one
    /// work order, so a second try (another dispatcher, a double click) lands on the first.
    @Sendable func openAlarmWorkOrder(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (alarm, community, _) = try await alarmForWorkOrder(context)
        let form = WorkOrderForm(services: services)
        let values = WorkOrderForm.Values(try await request.formFields(context: context))
        if let id = alarm.workOrderId { return .redirect(to: "/console/work-orders/\(id)") }
        let (report, errors) = try await form.report(
            values, community: community, context: context, source: .alarm, alarmId: alarm.id,
            buildingId: alarm.buildingId, householdId: alarm.householdId)
        guard let report else {
            return try await form.render(
                context, community: community, values: values, errors: errors,
                action: "/console/alarms/\(alarm.id)/work-order",
                from: (text("linkage.fromAlarm", context, ["message": alarm.message]), "/console/alarms/\(alarm.id)"),
                status: .unprocessableContent)
        }
        do {
            let order = try await form.open(
                report, assignee: values.assignee, context: context,
                alongside: { db, order in try await Store.linkOnce(alarm.id, toWorkOrder: order.id, db) })
            return .redirect(to: "/console/work-orders/\(order.id)")
        } catch StoreError.conflict {
            let linked = try await store.alarm(id: alarm.id, scope: .everything)?.workOrderId
            return .redirect(to: linked.map { "/console/work-orders/\($0)" } ?? "/console/alarms/\(alarm.id)")
        }
    }
}
