import Foundation
import LinliCore
import LinliHTTP
import LinliStorage
import SQLKit

/// Work orders on a community's first page: those waiting to be taken on, those past their
/// deadline, and the open ones by status.
struct WorkOrdersOverview: OverviewPart {
    func overview(community: Community, context: AppContext, services: AppServices) async throws -> (
        todos: [OverviewTodo], charts: [OverviewChart]
    ) {
        guard let caller = context.caller, caller.can(.viewWorkOrders) else { return ([], []) }
        let counts = try await services.store.workOrderOverview(
            communityId: community.id, scope: caller.scope(for: .viewWorkOrders))
        let t = services.pages.catalogue
        let language = context.language
        let board = "/console/c/\(community.id)/work-orders"
        let todos = [
            OverviewTodo(
                id: "work-orders-overdue", label: t.text("overview.workorders.overdue", language),
                count: counts.overdue, link: "\(board)?overdue=true", urgent: true),
            OverviewTodo(
                id: "work-orders-submitted", label: t.text("overview.workorders.submitted", language),
                count: counts.byStatus[.submitted] ?? 0, link: "\(board)?status=submitted"),
        ]
        let bars = WorkOrderStatus.allCases.filter(\.isOpen).map { status in
            OverviewChart.Bar(
                t.label("workorder.status", status.rawValue, language), counts.byStatus[status] ?? 0,
                link: "\(board)?status=\(status.rawValue)")
        }
        let chart = OverviewChart(
            id: "work-orders-open", title: t.text("overview.workorders.open", language),
            unit: t.text("overview.workorders.unit", language), bars: bars)
        return (todos, [chart])
    }
}

extension Store {
    /// The community's work orders within `scope`, by status, and the open ones past their deadline.
    package func workOrderOverview(communityId: ID, scope: Scope) async throws -> (
        byStatus: [WorkOrderStatus: Int], overdue: Int
    ) {
        struct Row: Decodable {
            var status: String
            var n: Int
        }
        let within: SQLQueryString =
            "w.community_id = \(bind: communityId) AND \(Self.workOrderScope(scope, alias: "w"))"
        let (rows, overdue) = try await read { db in
            let rows = try await db.raw(
                "SELECT w.status AS status, COUNT(*) AS n FROM work_orders w WHERE \(within) GROUP BY w.status"
            ).all(decoding: Row.self)
            let overdue = try await db.count(
                "SELECT COUNT(*) AS n FROM work_orders w WHERE \(within) AND w.overdue_at IS NOT NULL AND w.status NOT IN ('resolved', 'closed', 'rejected', 'returned')"
            )
            return (rows, overdue)
        }
        var byStatus: [WorkOrderStatus: Int] = [:]
        for row in rows { if let s = WorkOrderStatus(rawValue: row.status) { byStatus[s, default: 0] += row.n } }
        return (byStatus, overdue)
    }
}
