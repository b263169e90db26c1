import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliHTTP
import LinliStorage
import Logging
import Synchronization

/// The community's pages: the list of communities, a community's overview, its buildings, units,
/// households, people, vehicles, organisations, the household import, who has access, the audit
/// log by community; and the
/// resident portal's home.
struct WebConsole: ModuleRoutes {
    let services: AppServices

    func register(_ router: Router<AppContext>) {
        router.get("/console", use: communities)
        router.get("/console/c/:cid", use: overview)
        router.get("/console/c/:cid/buildings", use: buildings)
        router.get("/console/b/:id", use: units)
        router.get("/console/c/:cid/households", use: households)
        router.get("/console/h/:id", use: household)
        router.get("/console/c/:cid/people", use: people)
        router.get("/console/p/:id", use: person)
        router.post("/console/p/:id/reveal", use: revealPerson)
        router.get("/console/c/:cid/vehicles", use: vehicles)
        router.get("/console/c/:cid/organisations", use: organisations)
        router.get("/console/c/:cid/access", use: access)
        router.post("/console/c/:cid/access/accounts", use: createAccount)
        router.get("/app", use: portal)
        router.get("/console/audit", use: audit)
        registerEditing(router)
    }

    // MARK: places

    @Sendable func communities(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        if caller.isResidentOnly { return .redirect(to: "/app") }
        let places = caller.scope(for: .viewCommunity)
        if places.isEmpty {
            // A department (a police station, urban management) sees no community's places: its
            // first page is its organisation's desk, with the work orders transferred to it.
            let organisations = caller.bindings.filter { $0.role == .departmentAgent }.compactMap(\.organisationId)
            if organisations.count == 1, let only = organisations.first {
                return .redirect(to: "/console/o/\(only)")
            }
            if !organisations.isEmpty {
                var reach = Scope()
                reach.organisations = Set(organisations)
                var rows: [[String: Any]] = []
                for id in Set(organisations).sorted() {
                    let o = try await store.organisation(id, scope: reach)
                    let community = try await store.community(
                        o.communityId, scope: .everything, memberships: caller.communityIds)
                    rows.append([
                        "id": o.id, "name": o.name, "kind": label("organisationKind", o.kind.rawValue, context),
                        "community": community.name,
                    ])
                }
                return try pages.render(
                    "landing",
                    [
                        "frame": Frame(title: text("landing.organisationsTitle", context), context: context),
                        "organisations": rows,
                    ] as [String: Any])
            }
        }
        let list = try await store.communities(scope: places, memberships: caller.communityIds)
        // Staff of one community go straight to it; whoever sees several chooses, and the platform's
        // staff, who reach every community, always start from the list.
        if list.count == 1, let only = list.first, !places.isEmpty, !places.everything {
            return .redirect(to: "/console/c/\(only.id)")
        }
        return try pages.render(
            "communities",
            ["frame": Frame(title: text("community.listTitle", context), context: context), "communities": list]
                as [String: Any])
    }

    @Sendable func overview(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context)
        let o = try await store.overview(community, scope: scope)
        let households = "/console/c/\(community.id)/households"
        var charts = [
            OverviewChart(
                id: "occupancy", title: text("overview.chart.occupancy", context),
                unit: text("overview.unit.households", context),
                bars: Occupancy.allCases.map { occupancy in
                    let n =
                        switch occupancy {
                        case .ownerOccupied: o.ownerOccupied
                        case .rented: o.rented
                        case .vacant: o.vacant
                        }
                    return OverviewChart.Bar(
                        label("occupancy", occupancy.rawValue, context), n,
                        link: "\(households)?occupancy=\(occupancy.rawValue)")
                })
        ]
        var todos: [OverviewTodo] = []
        // What the other modules add: alarms, work orders, devices, as far as the caller may see them.
        for part in services.overviewParts.all {
            let (more, drawn) = try await part.overview(community: community, context: context, services: services)
            todos += more
            charts += drawn
        }
        // What presses first (alarms nobody acknowledged, work past its deadline), in module order.
        todos = todos.filter(\.pressing) + todos.filter { !$0.pressing }
        return try pages.render(
            "overview",
            [
                "frame": Frame(title: community.name, context: context, community: community), "o": o,
                "canEvents": context.caller?.scope(for: .viewEvents).coversCommunity(community.id) ?? false,
                "todos": todos, "hasTodos": !todos.isEmpty, "charts": charts.map(ChartView.init),
            ] as [String: Any])
    }

    @Sendable func buildings(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context)
        let list = try await store.buildings(communityId: community.id, scope: scope)
        return try pages.render(
            "buildings",
            [
                "frame": Frame(title: text("building.title", context), context: context, community: community),
                "buildings": list, "canManage": may(context, .manageCommunity, community.id),
            ]
                as [String: Any])
    }

    @Sendable func units(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        let scope = try context.scope(.viewCommunity)
        let building = try await store.building(try context.parameters.require("id"), scope: scope)
        let community = try await store.community(building.communityId, scope: scope, memberships: caller.communityIds)
        let list = try await store.units(buildingId: building.id, scope: scope)
        return try pages.render(
            "units",
            [
                "frame": Frame(title: building.name, context: context, community: community), "building": building,
                "units": list, "canManage": may(context, .manageCommunity, community.id),
            ] as [String: Any])
    }

    @Sendable func households(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context)
        var q = QueryReader(request)
        let unitId = q.string("unitId")
        let occupancy = q.oneOf("occupancy", Occupancy.self)
        let query = q.string("q")
        var page = q.page()
        page.limit = min(page.limit, 100)
        try q.check()
        let result = try await store.households(
            communityId: community.id, filter: HouseholdFilter(unitId: unitId, occupancy: occupancy, query: query),
            sort: try ListOrder(
                nil, allowed: [:],
                default: "LENGTH(b.name), b.name, LENGTH(u.name), u.name, LENGTH(h.room), h.room, h.id"), page: page,
            scope: scope)
        var unitTitle: String? = nil
        if let unitId, let unit = try? await store.unit(unitId, scope: scope),
            let building = try? await store.building(unit.buildingId, scope: scope)
        {
            unitTitle = building.name + " " + unit.name
        }
        let options = Occupancy.allCases.map {
            SelectOption(value: $0.rawValue, label: label("occupancy", $0.rawValue, context), selected: $0 == occupancy)
        }
        let items = result.items.map {
            HouseholdRow(
                h: $0, area: Self.area($0.area), code: $0.occupancy.rawValue,
                occupancy: label("occupancy", $0.occupancy.rawValue, context))
        }
        return try pages.render(
            "households",
            [
                "frame": Frame(title: text("household.title", context), context: context, community: community),
                "page": result, "items": items,
                "pager": Self.pager(request, total: result.total, page: page), "q": query ?? "",
                "unitId": unitId as Any,
                "unitTitle": unitTitle as Any, "occupancies": options,
                "canExport": context.caller?.scope(for: .exportData).coversCommunity(community.id) ?? false,
                "canManage": may(context, .manageCommunity, community.id),
                "canExportIdentity": (context.caller?.scope(for: .exportData).coversCommunity(community.id) ?? false)
                    && (context.caller?.scope(for: .revealIdentity).coversCommunity(community.id) ?? false),
            ] as [String: Any])
    }

    @Sendable func household(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        let scope = try context.scope(.viewCommunity)
        let h = try await store.household(try context.parameters.require("id"), scope: scope)
        let community = try await store.community(h.communityId, scope: scope, memberships: caller.communityIds)
        let residents = caller.can(.viewPeople) ? try await store.residents(householdId: h.id) : []
        let vehicles =
            caller.can(.viewVehicles)
            ? try await store.vehicles(
                communityId: h.communityId, query: nil, householdId: h.id, page: PageRequest(limit: 50),
                scope: caller.scope(for: .viewVehicles)
            ).items : []
        return try pages.render(
            "household",
            [
                "frame": Frame(title: h.room, context: context, community: community), "h": h,
                "residents": residents.map { residencyRow($0, context) }, "vehicles": vehicles,
                "area": Self.area(h.area) as Any, "occupancy": label("occupancy", h.occupancy.rawValue, context),
                "occupancyCode": h.occupancy.rawValue, "canManage": may(context, .manageCommunity, h.communityId),
                "canPeople": may(context, .managePeople, h.communityId),
                "canVehicles": may(context, .manageVehicles, h.communityId),
            ] as [String: Any])
    }

    // MARK: people and vehicles

    @Sendable func people(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewPeople)
        let caller = try context.requireCaller()
        var q = QueryReader(request)
        let query = q.string("q")
        let careTag = q.oneOf("careTag", CareTag.self)
        let current = q.bool("current")
        var page = q.page()
        page.limit = min(page.limit, 100)
        try q.check()
        let result = try await store.people(
            communityId: community.id, filter: PeopleFilter(query: query, careTag: careTag, currentOnly: current),
            sort: try ListOrder(nil, allowed: [:], default: "p.name, p.id"), page: page, scope: scope,
            fullPhone: caller.can(.seeFullPhone))
        let options = CareTag.allCases.map {
            SelectOption(value: $0.rawValue, label: label("careTag", $0.rawValue, context), selected: $0 == careTag)
        }
        let items = result.items.map {
            PersonRow(
                p: $0, residencies: $0.residencies.map { residencyRow($0, context) },
                careTags: careTagLabels($0.careTags, context))
        }
        return try pages.render(
            "people",
            [
                "frame": Frame(title: text("person.title", context), context: context, community: community),
                "page": result, "items": items,
                "q": query ?? "",
                "careTags": options, "current": current, "pager": Self.pager(request, total: result.total, page: page),
                "canEdit": may(context, .managePeople, community.id),
            ] as [String: Any])
    }

    func personPage(_ context: AppContext, revealed: String?) async throws -> Response {
        let caller = try context.requireCaller()
        let scope = try context.scope(.viewPeople)
        let p = try await store.person(
            try context.parameters.require("id"), scope: scope, fullPhone: caller.can(.seeFullPhone))
        let community = try await store.community(
            p.communityId, scope: caller.scope(for: .viewCommunity).union(scope), memberships: caller.communityIds)
        return try pages.render(
            "person",
            [
                "frame": Frame(title: p.name, context: context, community: community), "p": p,
                "residencies": p.residencies.map { residencyRow($0, context) },
                "careTags": careTagLabels(p.careTags, context),
                "revealed": revealed as Any,
                "canReveal": caller.scope(for: .revealIdentity).coversCommunity(p.communityId),
                "canEdit": may(context, .managePeople, p.communityId),
            ] as [String: Any])
    }

    @Sendable func person(_ request: Request, context: AppContext) async throws -> Response {
        try await personPage(context, revealed: nil)
    }

    @Sendable func revealPerson(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.revealIdentity)
        let number = try await store.revealIdentity(
            personId: try context.parameters.require("id"), scope: scope, actor: context.principal)
        return try await personPage(context, revealed: number)
    }

    @Sendable func vehicles(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewVehicles)
        var q = QueryReader(request)
        let query = q.string("q")
        var page = q.page()
        page.limit = min(page.limit, 100)
        try q.check()
        let result = try await store.vehicles(communityId: community.id, query: query, page: page, scope: scope)
        return try pages.render(
            "vehicles",
            [
                "frame": Frame(title: text("vehicle.title", context), context: context, community: community),
                "page": result,
                "q": query ?? "",
                "pager": Self.pager(request, total: result.total, page: page),
                "canManage": may(context, .manageVehicles, community.id),
            ] as [String: Any])
    }

    @Sendable func organisations(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewOrganisations)
        struct Row {
            var o: Organisation
            var kind: String
            var kindCode: String
            var staff: [StaffMember]
        }
        var rows: [Row] = []
        for o in try await store.organisations(communityId: community.id, scope: scope) {
            rows.append(
                Row(
                    o: o, kind: label("organisationKind", o.kind.rawValue, context), kindCode: o.kind.rawValue,
                    staff: try await store.staff(organisationId: o.id)))
        }
        let grids = try await store.grids(
            communityId: community.id,
            scope: scope.everything
                ? .everything
                : {
                    var s = Scope()
                    s.communities = [community.id]
                    return s
                }())
        return try pages.render(
            "organisations",
            [
                "frame": Frame(title: text("organisation.title", context), context: context, community: community),
                "organisations": rows,
                "grids": grids,
            ] as [String: Any])
    }

    // MARK: access, audit, account

    @Sendable func access(_ request: Request, context: AppContext) async throws -> Response {
        try await accessPage(context)
    }

    func accessPage(
        _ context: AppContext, message: String? = nil, error: String? = nil, status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let (community, _) = try await self.community(context)
        let caller = try context.requireCaller()
        struct Column {
            var code: String
            var label: String
            var short: String
        }
        struct Cell {
            var role: String
            var granted: Bool
        }
        struct Line {
            var code: String
            var capability: String
            var cells: [Cell]
        }
        struct RoleTag {
            var code: String
            var label: String
        }
        struct AccountRow {
            var username: String
            var displayName: String
            var roles: [RoleTag]
        }
        let roles = Role.allCases
        let matrix = Capability.allCases.map { c in
            Line(
                code: c.rawValue, capability: label("capability", c.rawValue, context),
                cells: roles.map {
                    Cell(role: label("role", $0.rawValue, context), granted: $0.capabilities.contains(c))
                })
        }
        var values: [String: Any] = [
            "frame": Frame(title: text("access.title", context), context: context, community: community),
            "roles": roles.map {
                Column(
                    code: $0.rawValue, label: label("role", $0.rawValue, context),
                    short: label("roleShort", $0.rawValue, context))
            },
            "matrix": matrix,
        ]
        let manage = caller.scope(for: .manageAccounts)
        if manage.coversCommunity(community.id) {
            var only = Scope()
            only.communities = [community.id]
            let accounts = try await store.accounts(scope: only).map { a in
                AccountRow(
                    username: a.username, displayName: a.displayName,
                    roles: a.roles.map {
                        RoleTag(code: $0.role.rawValue, label: label("role", $0.role.rawValue, context))
                    })
            }
            values["accounts"] = accounts
            values["hasAccounts"] = !accounts.isEmpty
            values["canManage"] = true
            values["grantable"] = roles.filter { $0 != .platformAdmin }.map {
                SelectOption(value: $0.rawValue, label: label("role", $0.rawValue, context), selected: false)
            }
            values["grids"] = try await store.grids(communityId: community.id, scope: only)
            values["organisations"] = try await store.organisations(communityId: community.id, scope: only)
            values["message"] = message
            values["error"] = error
        }
        return try pages.render("access", values, status: status)
    }

    /// A community administrator creates an account and binds its role in one step, through the
    /// same checks as the API.
    @Sendable func createAccount(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, _) = try await self.community(context, .manageAccounts)
        let scope = try context.scope(.manageAccounts)
        if !scope.coversCommunity(community.id) { throw Problem.forbidden(.manageAccounts) }
        let form = try await request.formFields(context: context)
        func blank(_ key: String) -> String? {
            form[key].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        }
        var v = Validator()
        let username = v.text(form["username"], "username", max: 64)?.lowercased()
        if let username, !username.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-@".contains($0)) }) {
            v.add("username", "may hold only letters, digits and . _ - @")
        }
        let displayName = v.text(form["displayName"], "displayName", max: 100)
        do { try Passwords.validate(form["password"] ?? "") } catch { v.add("password", error.issues[0].reason) }
        let role = Role(rawValue: form["role"] ?? "")
        if role == nil || role == .platformAdmin { v.add("role", "must be a community role") }
        if role == .gridWorker, blank("gridId") == nil { v.add("gridId", "is required for a grid worker") }
        if role == .departmentAgent, blank("organisationId") == nil {
            v.add("organisationId", "is required for a department agent")
        }
        if role == .resident, blank("householdId") == nil { v.add("householdId", "is required for a resident") }
        var only = Scope()
        only.communities = [community.id]
        if let g = blank("gridId"),
            try await !store.grids(communityId: community.id, scope: only).contains(where: { $0.id == g })
        {
            v.add("gridId", "is not a grid of this community")
        }
        if let o = blank("organisationId"), (try? await store.organisation(o, scope: only)) == nil {
            v.add("organisationId", "is not an organisation of this community")
        }
        if let h = blank("householdId"), (try? await store.household(h, scope: only)) == nil {
            v.add("householdId", "is not a household of this community")
        }
        if !v.issues.isEmpty {
            return try await accessPage(
                context,
                error: v.issues.map { accountIssue($0, context) }.joined(
                    separator: text("access.errorSeparator", context)),
                status: .unprocessableContent)
        }
        let account = Account(
            username: username!, displayName: displayName!,
            passwordHash: try await Passwords.hash(form["password"] ?? ""))
        do {
            try await store.createAccount(account, actor: context.principal)
        } catch StoreError.conflict(let field, let reason) {
            return try await accessPage(
                context, error: accountIssue(FieldIssue(field, reason), context), status: .conflict)
        }
        try await store.bindRole(
            RoleBinding(
                accountId: account.id, role: role!, communityId: community.id, organisationId: blank("organisationId"),
                gridId: blank("gridId"), householdId: blank("householdId")), actor: context.principal)
        services.callers.clear()
        return try await accessPage(
            context,
            message: text(
                "access.created", context,
                ["username": account.username, "role": label("role", role!.rawValue, context)]))
    }

    // MARK: resident portal

    @Sendable func portal(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        struct Home {
            var h: HouseholdListing
            var communityName: String
            var residents: [ResidencyRow]
            var vehicles: [VehicleListing]
        }
        var homes: [Home] = []
        for binding in caller.bindings where binding.role == .resident {
            guard let householdId = binding.householdId,
                let h = try? await store.household(householdId, scope: caller.scope(for: .viewCommunity))
            else { continue }
            let community = try await store.community(h.communityId, scope: .everything, memberships: [])
            let vehicles = try await store.vehicles(
                communityId: h.communityId, query: nil, householdId: h.id, page: PageRequest(limit: 20),
                scope: caller.scope(for: .viewVehicles)
            ).items
            homes.append(
                Home(
                    h: h, communityName: community.name,
                    residents: try await store.residents(householdId: h.id).map { residencyRow($0, context) },
                    vehicles: vehicles))
        }
        return try pages.render(
            "portal",
            ["frame": Frame(title: text("portal.title", context), context: context), "homes": homes] as [String: Any])
    }

    @Sendable func audit(_ request: Request, context: AppContext) async throws -> Response {
        var scope = try context.scope(.viewAudit)
        let caller = try context.requireCaller()
        var q = QueryReader(request)
        let communityId = q.string("community")
        let action = q.string("action")
        let page = q.page()
        try q.check()
        var community: Community? = nil
        if let communityId {
            community = try await store.community(communityId, scope: scope, memberships: caller.communityIds)
            if !scope.coversCommunity(communityId) { throw Problem.forbidden(.viewAudit) }
            scope = Scope()
            scope.communities = [communityId]
        }
        let auditScope = scope
        let result = try await store.read { db in
            try await AuditLog.list(db, scope: auditScope, action: action, subjectId: nil, page: page)
        }
        struct Entry {
            var e: AuditEntry
            var when: String
        }
        // Who acted, by the name people know them by (李娜, not staff); the system's own actors by label.
        var names: [ID: String] = [:]
        for id in Set(result.items.compactMap(\.actorId)) {
            if let account = try await store.account(id: id) { names[id] = account.displayName }
        }
        let entries = result.items.map { item in
            var e = item
            if let id = e.actorId, let name = names[id] {
                e.actorName = name
            } else if e.actorId == nil, pages.catalogue.contains("auditActor." + e.actorName) {
                e.actorName = label("auditActor", e.actorName, context)
            }
            return Entry(e: e, when: Self.time(e.at))
        }
        return try pages.render(
            "audit",
            [
                "frame": Frame(title: text("audit.title", context), context: context, community: community),
                "entries": entries,
                "action": action ?? "",
                "communityId": communityId as Any, "pager": Self.pager(request, total: result.total, page: page),
            ] as [String: Any])
    }
}
