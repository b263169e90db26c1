import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage

/// An organisation's desk: the first page of a department (a police station, urban management, the
/// environmental bureau), which sees only what is transferred to it. It shows the organisation, its
/// staff, and the work orders transferred to it that are still open; each links to its page.
extension WebConsole {
    func registerOrganisationDesk(_ router: Router<AppContext>) {
        router.get("/console/o/:oid", use: organisationDesk)
    }

    @Sendable func organisationDesk(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try context.parameters.require("oid")
        // An organisation out of reach is not found; one whose work is not the caller's to see is refused.
        let organisation = try await store.organisation(id, scope: caller.scope(for: .viewOrganisations))
        let reach = caller.scope(for: .viewWorkOrders)
        guard reach.coversCommunity(organisation.communityId) || reach.organisations.contains(id) else {
            throw Problem.forbidden(.viewWorkOrders)
        }
        let community = try await store.community(
            organisation.communityId, scope: .everything, memberships: caller.communityIds)
        var transferred = Scope()
        transferred.organisations = [id]
        var open = WorkOrderFilter()
        open.status = "open"
        let found = try await store.workOrders(
            communityId: community.id, filter: open, page: PageRequest(limit: 100), scope: transferred)
        let all = try await store.workOrders(
            communityId: community.id, filter: WorkOrderFilter(), page: PageRequest(limit: 1), scope: transferred)
        let now = nowMillis()
        let rows = found.items.map { o in
            OrderRow(
                id: o.id, number: o.number, title: o.title,
                category: label("workorder.category", o.category.rawValue, context),
                statusCode: o.status.rawValue, status: label("workorder.status", o.status.rawValue, context),
                assignee: o.assigneeName ?? "—", due: Self.time(o.dueAt), overdue: o.status.isOpen && o.dueAt < now,
                source: label("workorder.source", o.source.rawValue, context))
        }
        // The board lists the same work orders with filters, for whoever may open the community's pages.
        let board = reach.coversCommunity(community.id) || caller.communityIds.contains(community.id)
        return try pages.render(
            "organisation-desk",
            [
                "frame": Frame(title: organisation.name, context: context, community: community),
                "organisation": organisation,
                "kind": label("organisationKind", organisation.kind.rawValue, context),
                "staff": try await store.staff(organisationId: id),
                "orders": rows, "hasOrders": !rows.isEmpty,
                "openCount": String(found.total), "allCount": String(all.total),
                "canBoard": board,
            ] as [String: Any])
    }
}
