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
    }

    struct OrderRow {
        var id: ID
        var number: String
        var title: String
        var category: String
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
                id: o.id, number: o.number, title: o.title, category: o.category.name, status: o.status.rawValue,
                assignee: o.assigneeName ?? "—",
                due: Self.time(o.dueAt), overdue: o.status.isOpen && o.dueAt < now, source: o.source.rawValue)
        }
        let statuses = (["open"] + WorkOrderStatus.allCases.map(\.rawValue)).map {
            SelectOption(value: $0, label: $0, selected: $0 == filter.status)
        }
        return try pages.render(
            "work-orders",
            [
                "frame": Frame(title: "Work orders", context: context, community: community), "orders": rows,
                "hasOrders": !rows.isEmpty, "total": found.total,
                "statuses": statuses,
                "categories": WorkOrderCategory.allCases.map {
                    SelectOption(value: $0.rawValue, label: $0.name, selected: $0 == filter.category)
                },
                "overdue": filter.overdueOnly, "pager": Self.pager(request, total: found.total, page: page),
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
        struct StepRow {
            var at: String
            var who: String
            var step: String
            var status: String
            var note: String
        }
        let steps = try await store.workOrderSteps(order).map {
            StepRow(at: Self.time($0.at), who: $0.actorName, step: $0.step, status: $0.toStatus.rawValue, note: $0.note)
        }
        let photos = try await store.photos(of: order).map { "/api/v1/work-orders/\(order.id)/photos/\($0.id)" }
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
        let handlers = try await store.accounts(
            scope: {
                var s = Scope()
                s.communities = [order.communityId]
                return s
            }())
        // The listing carries each account's bindings: no query per account.
        let assignees = handlers.filter {
            $0.status == .active && API.mayHandleWorkOrders($0.roles, communityId: order.communityId)
        }
        .map { SelectOption(value: $0.id, label: $0.displayName, selected: $0.id == order.assigneeAccountId) }
        struct StepButton {
            var step: String
            var label: String
            var needsNote: Bool
        }
        return try pages.render(
            "work-order",
            [
                "frame": Frame(title: "\(order.number) \(order.title)", context: context, community: community),
                "o": order, "categoryName": order.category.name,
                "statusText": order.status.rawValue, "created": Self.time(order.createdAt),
                "due": Self.time(order.dueAt), "overdue": order.status.isOpen && order.dueAt < nowMillis(),
                "steps": steps, "photos": photos, "hasPhotos": !photos.isEmpty, "handles": handles,
                "buttons": possible.map { StepButton(step: $0.rawValue, label: $0.rawValue, needsNote: $0.needsNote) },
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
            return try await workOrderView(context, error: "unknown step", status: .unprocessableContent)
        }
        var details = Store.StepDetails()
        details.note = (f["note"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        if step.needsNote, details.note.isEmpty {
            return try await workOrderView(
                context, error: "请填写说明 A note is needed to \(step.rawValue)", status: .unprocessableContent)
        }
        switch step {
        case .assign:
            guard let id = f["assigneeId"], let name = try await api.handlerName(id, communityId: order.communityId)
            else {
                return try await workOrderView(
                    context, error: "choose someone who handles work orders here", status: .unprocessableContent)
            }
            details.assignee = (id, name)
        case .grab: details.assignee = (caller.accountId, caller.displayName)
        case .transfer:
            guard let o = f["organisationId"],
                try await store.organisations(communityId: order.communityId, scope: .everything).contains(where: {
                    $0.id == o
                })
            else {
                return try await workOrderView(context, error: "choose an organisation", status: .unprocessableContent)
            }
            details.organisationId = o
        default: break
        }
        do {
            _ = try await store.takeStep(step, on: order.id, details: details, actor: context.principal)
        } catch let StoreError.conflict(_, reason) {
            return try await workOrderView(context, error: reason, status: .conflict)
        }
        return .redirect(to: "/console/work-orders/\(order.id)")
    }
}
