import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage

/// The work order board: filters, overdue first in mind, and a work order's page with its timeline,
/// photos and the steps the viewer may take.
extension WebConsole {
    func registerWorkOrders(_ router: Router<AppContext>) {
        router.get("/console/c/:cid/work-orders", use: workOrderBoard)
        router.get("/console/work-orders/:id", use: workOrderPage)
        router.post("/console/work-orders/:id/steps", use: workOrderConsoleStep)
        router.get("/console/c/:cid/work-orders/new", use: newWorkOrder)
        router.post("/console/c/:cid/work-orders", use: createWorkOrder)
    }

    /// Dispatch registers a work order: a call from a resident, a fault seen on a round.
    @Sendable func newWorkOrder(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .handleWorkOrders)
        try requireCovers(try context.scope(.handleWorkOrders), community.id, .handleWorkOrders)
        var values = WorkOrderForm.Values()
        if let category = request.uri.queryParameters.get("category") { values.category = String(category) }
        return try await WorkOrderForm(services: services).render(
            context, community: community, values: values, errors: [:],
            action: "/console/c/\(community.id)/work-orders")
    }

    @Sendable func createWorkOrder(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, _) = try await self.community(context, .handleWorkOrders)
        try requireCovers(try context.scope(.handleWorkOrders), community.id, .handleWorkOrders)
        let form = WorkOrderForm(services: services)
        let values = WorkOrderForm.Values(try await request.formFields(context: context))
        let (report, errors) = try await form.report(
            values, community: community, context: context, source: .staff, alarmId: nil)
        guard let report else {
            return try await form.render(
                context, community: community, values: values, errors: errors,
                action: "/console/c/\(community.id)/work-orders", status: .unprocessableContent)
        }
        let order = try await form.open(report, assignee: values.assignee, context: context)
        return .redirect(to: "/console/work-orders/\(order.id)")
    }

    struct OrderRow {
        var id: ID
        var number: String
        var title: String
        var category: String
        var statusCode: String
        var status: String
        var assignee: String
        var due: String
        var overdue: Bool
        var source: String
    }

    @Sendable func workOrderBoard(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .viewWorkOrders)
        let scope = try context.scope(.viewWorkOrders)
        var q = QueryReader(request)
        var filter = API(services: services).workOrderFilter(&q)
        if request.uri.queryParameters.get("status") == nil { filter.status = "open" }
        if q.bool("mine") { filter.assigneeAccountId = try context.requireCaller().accountId }
        var page = q.page()
        page.limit = min(page.limit, 100)
        try q.check()
        let found = try await store.workOrders(communityId: community.id, filter: filter, page: page, scope: scope)
        let now = nowMillis()
        let rows = found.items.map { o in
            OrderRow(
                id: o.id, number: o.number, title: o.title,
                category: label("workorder.category", o.category.rawValue, context),
                statusCode: o.status.rawValue, status: label("workorder.status", o.status.rawValue, context),
                assignee: o.assigneeName ?? "—", due: Self.time(o.dueAt), overdue: o.status.isOpen && o.dueAt < now,
                source: label("workorder.source", o.source.rawValue, context))
        }
        let statuses = (["open"] + WorkOrderStatus.allCases.map(\.rawValue)).map {
            SelectOption(value: $0, label: label("workorder.status", $0, context), selected: $0 == filter.status)
        }
        return try pages.render(
            "work-orders",
            [
                "frame": Frame(title: text("nav.workOrders", context), context: context, community: community),
                "orders": rows, "mine": q.bool("mine"),
                "hasOrders": !rows.isEmpty, "total": found.total,
                "statuses": statuses,
                "categories": WorkOrderCategory.allCases.map {
                    SelectOption(
                        value: $0.rawValue, label: label("workorder.category", $0.rawValue, context),
                        selected: $0 == filter.category)
                },
                "overdue": filter.overdueOnly, "pager": Self.pager(request, total: found.total, page: page),
                "canCreate": try context.requireCaller().scope(for: .handleWorkOrders).coversCommunity(community.id),
            ] as [String: Any])
    }

    @Sendable func workOrderPage(_ request: Request, context: AppContext) async throws -> Response {
        try await workOrderView(context, error: nil, status: .ok)
    }

    func workOrderView(_ context: AppContext, error: String?, status: HTTPResponse.Status) async throws -> Response {
        let caller = try context.requireCaller()
        let api = API(services: services)
        let order = try await api.visibleWorkOrder(context)
        let community = try await store.community(
            order.communityId, scope: .everything, memberships: caller.communityIds)
        let steps = try await stepRows(order, context)
        let photos = try await photoViews(order)
        let handles =
            try await store.workOrder(id: order.id, scope: caller.scope(for: .handleWorkOrders), accountId: "") != nil
        // The steps that apply now, for a handler; the reporter's are in the portal.
        let possible =
            handles
            ? WorkOrderStep.allCases.filter {
                !$0.isReporters && $0.next(from: order.status) != nil && $0 != .assign && $0 != .transfer
            } : []
        let organisations = try await store.organisations(communityId: order.communityId, scope: .everything).map {
            SelectOption(value: $0.id, label: $0.name, selected: $0.id == order.organisationId)
        }
        let assignees = try await assigneeOptions(order, context)
        let place = try await placeName(order)
        let source = label("workorder.source", order.source.rawValue, context)
        struct StepButton {
            var step: String
            var label: String
            var needsNote: Bool
        }
        return try pages.render(
            "work-order",
            [
                "frame": Frame(title: "\(order.number) \(order.title)", context: context, community: community),
                "o": order, "categoryName": label("workorder.category", order.category.rawValue, context),
                "sourceName": source, "statusCode": order.status.rawValue,
                "hasReporterPhone": !order.reporterPhone.isEmpty, "hasLocation": !order.location.isEmpty,
                "place": place, "hasPlace": !place.isEmpty,
                "visit": Self.visitText(order) ?? "", "hasVisit": order.preferredFrom != nil,
                "statusText": label("workorder.status", order.status.rawValue, context),
                "created": Self.time(order.createdAt),
                "due": Self.time(order.dueAt), "overdue": order.status.isOpen && order.dueAt < nowMillis(),
                "steps": steps, "photos": photos, "hasPhotos": !photos.isEmpty, "handles": handles,
                "buttons": possible.map {
                    StepButton(
                        step: $0.rawValue, label: label("workorder.step", $0.rawValue, context), needsNote: $0.needsNote
                    )
                },
                "canAssign": handles && WorkOrderStep.assign.next(from: order.status) != nil, "assignees": assignees,
                "canTransfer": handles && WorkOrderStep.transfer.next(from: order.status) != nil,
                "organisations": organisations,
                "error": error ?? "", "hasError": error != nil,
            ] as [String: Any], status: status)
    }

    /// One form for every step: the same checks as the API's.
    @Sendable func workOrderConsoleStep(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let caller = try context.requireCaller()
        let api = API(services: services)
        let order = try await api.visibleWorkOrder(context)
        guard try await store.workOrder(id: order.id, scope: caller.scope(for: .handleWorkOrders), accountId: "") != nil
        else { throw Problem.forbidden(.handleWorkOrders) }
        let f = try await request.formFields(context: context)
        guard let step = WorkOrderStep(rawValue: f["step"] ?? ""), !step.isReporters else {
            return try await workOrderView(
                context, error: text("workorder.error.unknownStep", context), status: .unprocessableContent)
        }
        var details = Store.StepDetails()
        details.note = (f["note"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        if step.needsNote, details.note.isEmpty {
            return try await workOrderView(
                context,
                error: text(
                    "workorder.error.noteNeeded", context, ["step": label("workorder.step", step.rawValue, context)]),
                status: .unprocessableContent)
        }
        switch step {
        case .assign:
            let choice = f["assigneeId"] ?? ""
            if choice.hasPrefix("staff:"),
                let found = try await api.rosterAssignee(String(choice.dropFirst(6)), communityId: order.communityId)
            {
                (details.assignee, details.assigneeStaffId) = (found.assignee, found.staff.id)
            } else if let name = try await api.handlerName(choice, communityId: order.communityId) {
                details.assignee = (choice, name)
            } else {
                return try await workOrderView(
                    context, error: text("workorder.error.assignee", context), status: .unprocessableContent)
            }
        case .grab: details.assignee = (caller.accountId, caller.displayName)
        case .transfer:
            guard let o = f["organisationId"],
                try await store.organisations(communityId: order.communityId, scope: .everything).contains(where: {
                    $0.id == o
                })
            else {
                return try await workOrderView(
                    context, error: text("workorder.error.organisation", context), status: .unprocessableContent)
            }
            details.organisationId = o
        default: break
        }
        do {
            _ = try await store.takeStep(step, on: order.id, details: details, actor: context.principal)
        } catch let StoreError.conflict(_, reason) {
            return try await workOrderView(context, error: conflictText(reason, step, context), status: .conflict)
        }
        return .redirect(to: "/console/work-orders/\(order.id)")
    }

    /// Where a work order is, as people say it: "1号楼 1单元 402", or the building.
    func placeName(_ order: WorkOrder) async throws -> String {
        if let h = order.householdId, let home = try? await store.household(h, scope: .everything) {
            return "\(home.buildingName) \(home.unitName) \(home.room)"
        }
        if let b = order.buildingId, let building = try? await store.building(b, scope: .everything) {
            return building.name
        }
        return ""
    }

    /// Whom a work order can be given to: the roster's staff whose skills cover its category, on
    /// duty now first, then the rest of the staff, then accounts that may handle work orders and
    /// are on no roster. A member of staff is `staff:{id}`, an account its id.
    func assigneeOptions(_ order: WorkOrder, _ context: AppContext) async throws -> [SelectOption] {
        let now = nowMillis()
        let roster = try await store.roster(communityId: order.communityId)
        let ranked = roster.sorted { a, b in
            func rank(_ m: RosterMember) -> Int {
                (m.skills.contains(order.category) ? 0 : 2) + (m.onDuty(at: now) ? 0 : 1)
            }
            return (rank(a), a.staff.name) < (rank(b), b.staff.name)
        }
        var options = ranked.map { m in
            var parts = [m.staff.name, m.staff.title]
            parts.append(text(m.onDuty(at: now) ? "roster.onDuty" : "roster.offDuty", context))
            if !m.skills.contains(order.category) { parts.append(text("roster.otherSkills", context)) }
            return SelectOption(
                value: "staff:\(m.staff.id)", label: parts.filter { !$0.isEmpty }.joined(separator: " · "),
                selected: order.assigneeStaffId == m.staff.id)
        }
        let onRoster = Set(roster.compactMap(\.staff.accountId))
        let handlers = try await store.accounts(
            scope: {
                var s = Scope()
                s.communities = [order.communityId]
                return s
            }())
        // The listing carries each account's bindings: no query per account.
        options += handlers.filter {
            $0.status == .active && !onRoster.contains($0.id)
                && API.mayHandleWorkOrders($0.roles, communityId: order.communityId)
        }
        .map {
            SelectOption(
                value: $0.id, label: $0.displayName,
                selected: order.assigneeStaffId == nil && $0.id == order.assigneeAccountId)
        }
        return options
    }

    // MARK: shared by the console's and the portal's pages

    struct PhotoView {
        var url: String
        /// A browser shows JPEG, PNG and WebP; an iPhone's HEIC is kept as it came and offered as a file.
        var shown: Bool
    }

    func photoViews(_ order: WorkOrder) async throws -> [PhotoView] {
        try await store.photos(of: order).map {
            PhotoView(url: "/api/v1/work-orders/\(order.id)/photos/\($0.id)", shown: $0.contentType != "image/heic")
        }
    }

    struct StepRow {
        var at: String
        var who: String
        var stepCode: String
        var step: String
        var status: String
        var note: String
        var hasNote: Bool
    }

    /// A work order's timeline as people read it: who by display name, steps and statuses by label.
    func stepRows(_ order: WorkOrder, _ context: AppContext) async throws -> [StepRow] {
        var names: [ID: String] = [:]
        var rows: [StepRow] = []
        for s in try await store.workOrderSteps(order) {
            var who = actorLabel(s.actorName, context)
            if let id = s.actorId {
                if names[id] == nil { names[id] = try await store.account(id: id)?.displayName ?? who }
                who = names[id] ?? who
            }
            rows.append(
                StepRow(
                    at: Self.time(s.at), who: who, stepCode: s.step, step: label("workorder.step", s.step, context),
                    status: label("workorder.status", s.toStatus.rawValue, context), note: s.note,
                    hasNote: !s.note.isEmpty))
        }
        return rows
    }

    /// Who took a step without an account: the round robin, a rule, an Open311 key, the system.
    func actorLabel(_ name: String, _ context: AppContext) -> String {
        switch name {
        case "round robin": return text("workorder.actor.roundRobin", context)
        case "system": return text("workorder.actor.system", context)
        case "demo": return text("workorder.actor.demo", context)
        default:
            if name.hasPrefix("rule ") {
                return text("workorder.actor.rule", context, ["name": String(name.dropFirst(5))])
            }
            if name.hasPrefix("Open311 key") { return text("workorder.actor.open311", context) }
            return name
        }
    }

    /// A step refused because the work order moved on ("is in_progress: cannot accept"), told in
    /// the page's language.
    func conflictText(_ reason: String, _ step: WorkOrderStep, _ context: AppContext) -> String {
        if reason.hasPrefix("resolved more than") { return text("workorder.error.reopenWindow", context) }
        if reason.hasPrefix("is "), let colon = reason.firstIndex(of: ":") {
            let status = String(reason[reason.index(reason.startIndex, offsetBy: 3)..<colon])
            return text(
                "workorder.error.cannot", context,
                [
                    "status": label("workorder.status", status, context),
                    "step": label("workorder.step", step.rawValue, context),
                ])
        }
        return text("workorder.error.conflict", context)
    }
}
