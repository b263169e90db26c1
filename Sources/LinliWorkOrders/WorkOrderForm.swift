import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage
import SQLKit

/// The console's "new work order" form: what dispatch registers (a call from a resident, a fault
/// seen on a round) and what an alarm becomes. The alarm's page (in LinliLinkage) shows the same
/// form, filled in from the alarm, and posts it to its own route, which links the two.
package struct WorkOrderForm: Sendable {
    let console: WebConsole

    package init(services: AppServices) { console = WebConsole(services: services) }

    /// What the form holds, as typed.
    package struct Values: Sendable {
        package var category = WorkOrderCategory.repair.rawValue
        package var title = ""
        package var description = ""
        package var unitId = ""
        package var room = ""
        package var location = ""
        package var reporterName = ""
        package var reporterPhone = ""
        /// `staff:{id}` or an account id; empty to dispatch later.
        package var assignee = ""
        package init() {}

        package init(_ form: [String: String]) {
            func field(_ name: String) -> String { (form[name] ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }
            category = field("category")
            title = field("title")
            description = field("description")
            unitId = field("unitId")
            room = field("room")
            location = field("location")
            reporterName = field("reporterName")
            reporterPhone = field("reporterPhone")
            assignee = field("assignee")
        }
    }

    struct UnitGroup {
        var building: String
        var units: [SelectOption]
    }

    /// The form page: `action` is where it posts, `from` an optional line saying what it comes from
    /// (the alarm), `errors` by field name.
    package func render(
        _ context: AppContext, community: Community, values: Values, errors: [String: String], action: String,
        from: (text: String, link: String)? = nil, status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let store = console.store
        var groups: [UnitGroup] = []
        let buildings = try await store.buildings(communityId: community.id, scope: .everything)
            .sorted { ($0.name.count, $0.name) < ($1.name.count, $1.name) }
        for b in buildings {
            let units = try await store.units(buildingId: b.id, scope: .everything).filter {
                $0.communityId == community.id
            }
            .map { SelectOption(value: $0.id, label: "\(b.name) \($0.name)", selected: $0.id == values.unitId) }
            if !units.isEmpty { groups.append(UnitGroup(building: b.name, units: units)) }
        }
        let category = WorkOrderCategory(rawValue: values.category) ?? .repair
        let draft = WorkOrder(
            id: "", communityId: community.id, number: "", category: category, title: "", description: "",
            source: .staff, status: .submitted, reporterName: "", reporterPhone: "", location: "", dueAt: 0,
            createdAt: 0, updatedAt: 0, reopenCount: 0)
        var assignees = try await console.assigneeOptions(draft, context)
        for i in assignees.indices { assignees[i].selected = assignees[i].value == values.assignee }
        var object: [String: Any] = [
            "frame": Frame(title: console.text("workorder.new.title", context), context: context, community: community),
            "v": values, "action": action, "unitGroups": groups, "assignees": assignees,
            "categories": WorkOrderCategory.allCases.map {
                SelectOption(
                    value: $0.rawValue, label: console.label("workorder.category", $0.rawValue, context),
                    selected: $0 == category)
            },
            "hasFrom": from != nil, "fromText": from?.text ?? "", "fromLink": from?.link ?? "",
            "hasErrors": !errors.isEmpty,
        ]
        for field in [
            "category", "title", "description", "room", "location", "reporterName", "reporterPhone", "assignee",
        ] {
            // Only a field at fault has its key: an empty string would still open a section.
            if let error = errors[field] { object[field + "Error"] = error }
        }
        return try console.pages.render("work-order-new", object, status: status)
    }

    /// Checks the form; the report to submit, or the errors by field.
    package func report(
        _ values: Values, community: Community, context: AppContext, source: WorkOrderSource, alarmId: ID?,
        buildingId fallbackBuilding: ID? = nil, householdId fallbackHousehold: ID? = nil
    ) async throws -> (report: WorkOrderReport?, errors: [String: String]) {
        var errors: [String: String] = [:]
        let store = console.store
        func say(_ field: String, _ key: String) { errors[field] = console.text(key, context) }
        let category = WorkOrderCategory(rawValue: values.category)
        if category == nil { say("category", "workorder.new.error.category") }
        if values.title.isEmpty || values.title.count > 100 { say("title", "workorder.new.error.title") }
        if values.description.count > 2_000 { say("description", "workorder.new.error.description") }
        if values.location.count > 200 { say("location", "workorder.new.error.location") }
        if values.reporterName.count > 50 { say("reporterName", "workorder.new.error.reporterName") }
        if !values.reporterPhone.isEmpty,
            !(5...20).contains(values.reporterPhone.count)
                || !values.reporterPhone.allSatisfy({ $0.isASCII && ($0.isNumber || "+- ".contains($0)) })
        {
            say("reporterPhone", "workorder.new.error.phone")
        }
        var buildingId = fallbackBuilding
        var householdId = fallbackHousehold
        if !values.unitId.isEmpty {
            let units = try await store.read { db in
                try await db.all(
                    BuildingUnit.self,
                    "SELECT * FROM units WHERE id = \(bind: values.unitId) AND community_id = \(bind: community.id)")
            }
            if let unit = units.first {
                buildingId = unit.buildingId
                householdId = nil
                if !values.room.isEmpty {
                    let homes = try await store.households(
                        communityId: community.id, filter: HouseholdFilter(unitId: unit.id, query: nil),
                        sort: ListOrder(nil, allowed: [:], default: "h.id"), page: PageRequest(limit: 500),
                        scope: .everything)
                    if let home = homes.items.first(where: { $0.room == values.room }) {
                        householdId = home.id
                    } else {
                        say("room", "workorder.new.error.room")
                    }
                }
            } else {
                say("room", "workorder.new.error.unit")
            }
        } else if !values.room.isEmpty {
            say("room", "workorder.new.error.roomWithoutUnit")
        }
        if !values.assignee.isEmpty, try await assignee(values.assignee, communityId: community.id) == nil {
            say("assignee", "workorder.error.assignee")
        }
        guard errors.isEmpty, let category else { return (nil, errors) }
        let caller = try context.requireCaller()
        return (
            WorkOrderReport(
                communityId: community.id, category: category, title: values.title,
                description: values.description, source: source, reporterAccountId: nil,
                reporterName: values.reporterName.isEmpty ? caller.displayName : values.reporterName,
                reporterPhone: values.reporterPhone, householdId: householdId, buildingId: buildingId,
                location: values.location, alarmId: alarmId),
            [:]
        )
    }

    /// The assignee a form's choice names: a member of the roster (`staff:{id}`) or an account.
    func assignee(_ choice: String, communityId: ID) async throws -> Store.StepDetails? {
        let api = API(services: console.services)
        var details = Store.StepDetails()
        if choice.hasPrefix("staff:") {
            guard let found = try await api.rosterAssignee(String(choice.dropFirst(6)), communityId: communityId)
            else { return nil }
            (details.assignee, details.assigneeStaffId) = (found.assignee, found.staff.id)
        } else {
            guard let name = try await api.handlerName(choice, communityId: communityId) else { return nil }
            details.assignee = (choice, name)
        }
        return details
    }

    /// Opens the work order, then gives it to the chosen assignee (a second step on its timeline).
    package func open(
        _ report: WorkOrderReport, assignee choice: String, context: AppContext,
        alongside: (@Sendable (any SQLDatabase, WorkOrder) async throws -> Void)? = nil
    ) async throws -> WorkOrder {
        let store = console.store
        var order = try await store.submitWorkOrder(report, actor: context.principal, alongside: alongside)
        if !choice.isEmpty, let details = try await assignee(choice, communityId: report.communityId),
            WorkOrderStep.assign.next(from: order.status) != nil
        {
            order = try await store.takeStep(.assign, on: order.id, details: details, actor: context.principal)
        }
        return order
    }
}
