import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliHTTP
import LinliStorage
import Logging
import Synchronization

/// The community's JSON routes: communities, buildings, units, households and their import, people
/// and residencies, vehicles, organisations, staff and grids; accounts and their roles.
struct API: ModuleRoutes {
    let services: AppServices

    func register(_ api: RouterGroup<AppContext>) {
        api.get("accounts", use: listAccounts)
        api.post("accounts", use: createAccount)
        api.post("accounts/:id/roles", use: grantRole)
        api.delete("role-bindings/:id", use: revokeRole)
        api.get("communities", use: listCommunities)
        api.post("communities", use: createCommunity)
        api.get("communities/:cid", use: getCommunity)
        api.get("communities/:cid/overview", use: overview)
        api.get("communities/:cid/buildings", use: listBuildings)
        api.post("communities/:cid/buildings", use: createBuilding)
        api.get("buildings/:id", use: getBuilding)
        api.get("buildings/:id/units", use: listUnits)
        api.post("buildings/:id/units", use: createUnit)
        api.get("communities/:cid/households", use: listHouseholds)
        api.post("communities/:cid/households", use: createHousehold)
        api.get("households/:id", use: getHousehold)
        api.patch("households/:id", use: updateHousehold)
        api.get("households/:id/residents", use: householdResidents)
        // people
        api.get("communities/:cid/people", use: listPeople)
        api.post("communities/:cid/people", use: createPerson)
        api.get("people/:id", use: getPerson)
        api.patch("people/:id", use: updatePerson)
        api.post("people/:id/identity-number/reveal", use: revealIdentity)
        api.post("residencies", use: moveIn)
        api.post("residencies/:id/move-out", use: moveOut)
        api.get("communities/:cid/vehicles", use: listVehicles)
        api.post("communities/:cid/vehicles", use: createVehicle)
        // organisations and grids
        api.get("communities/:cid/organisations", use: listOrganisations)
        api.post("communities/:cid/organisations", use: createOrganisation)
        api.get("organisations/:id/staff", use: listStaff)
        api.post("organisations/:id/staff", use: addStaff)
        api.get("communities/:cid/grids", use: listGrids)
        api.post("communities/:cid/grids", use: createGrid)
    }

    struct AccountInput: Decodable {
        var username: String
        var displayName: String
        var password: String
    }

    @Sendable func listAccounts(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.manageAccounts)
        return try JSON.response(Items(try await store.accounts(scope: scope)))
    }

    @Sendable func createAccount(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        _ = try context.scope(.manageAccounts)
        let input = try await request.decodeJSON(AccountInput.self, context: context)
        var v = Validator()
        let username = v.text(input.username, "username", max: 64)
        if let username, !username.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-@".contains($0)) }) {
            v.add("username", "may hold only letters, digits and . _ - @")
        }
        let displayName = v.text(input.displayName, "displayName", max: 100)
        do { try Passwords.validate(input.password) } catch { v.add("password", error.issues[0].reason) }
        try v.check()
        let account = Account(
            username: username!.lowercased(), displayName: displayName!,
            passwordHash: try await Passwords.hash(input.password))
        try await store.createAccount(account, actor: context.principal)
        return try JSON.response(
            AccountView(
                id: account.id, username: account.username, displayName: account.displayName, status: account.status,
                roles: []), status: .created)
    }

    struct RoleInput: Decodable {
        var role: Role
        var communityId: ID?
        var organisationId: ID?
        var gridId: ID?
        var householdId: ID?
    }

    @Sendable func grantRole(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let scope = try context.scope(.manageAccounts)
        let input = try await request.decodeJSON(RoleInput.self, context: context)
        let accountId = try context.parameters.require("id")
        var v = Validator()
        if input.role == .platformAdmin {
            if !scope.everything { throw Problem.forbidden(.manageAccounts) }
            if input.communityId != nil { v.add("communityId", "must be absent for platform_admin") }
        } else if input.communityId == nil {
            v.add("communityId", "is required for \(input.role.rawValue)")
        }
        if input.role == .gridWorker, input.gridId == nil { v.add("gridId", "is required for grid_worker") }
        if input.role == .resident, input.householdId == nil { v.add("householdId", "is required for resident") }
        if input.role == .departmentAgent, input.organisationId == nil {
            v.add("organisationId", "is required for department_agent")
        }
        try v.check()
        // Whether the community and the places named exist and belong together, and whether the
        // account holds this binding already, is checked by the store, for every way in.
        if let cid = input.communityId { try requireCovers(scope, cid, .manageAccounts) }
        let binding = RoleBinding(
            accountId: accountId, role: input.role, communityId: input.communityId,
            organisationId: input.organisationId, gridId: input.gridId, householdId: input.householdId)
        try await store.bindRole(binding, actor: context.principal)
        services.callers.clear()
        return try JSON.response(binding, status: .created)
    }

    @Sendable func revokeRole(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.manageAccounts)
        try await store.revokeRole(try context.parameters.require("id"), scope: scope, actor: context.principal)
        services.callers.clear()
        return Response(status: .noContent)
    }

    // MARK: communities, buildings, units

    struct CommunityInput: Decodable {
        var name: String
        var cityCode: String
        var districtCode: String
        var streetCode: String
        var address: String
    }

    @Sendable func listCommunities(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        return try JSON.response(
            Items(
                try await store.communities(scope: caller.scope(for: .viewCommunity), memberships: caller.communityIds))
        )
    }

    @Sendable func createCommunity(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        _ = try context.scope(.createCommunity)
        let input = try await request.decodeJSON(CommunityInput.self, context: context)
        var v = Validator()
        let name = v.text(input.name, "name", max: 100)
        let city = v.text(input.cityCode, "cityCode", max: 12)
        let district = v.text(input.districtCode, "districtCode", max: 12)
        let street = v.text(input.streetCode, "streetCode", max: 16)
        let address = v.text(input.address, "address", max: 200)
        for (value, field) in [(city, "cityCode"), (district, "districtCode"), (street, "streetCode")] {
            if let value, !value.allSatisfy({ $0.isASCII && $0.isNumber }) { v.add(field, "must be digits") }
        }
        try v.check()
        let community = Community(
            name: name!, cityCode: city!, districtCode: district!, streetCode: street!, address: address!)
        try await store.createCommunity(community, actor: context.principal)
        return try JSON.response(community, status: .created)
    }

    @Sendable func getCommunity(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .viewCommunity)
        return try JSON.response(community)
    }

    @Sendable func overview(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewCommunity)
        return try JSON.response(try await store.overview(community, scope: scope))
    }

    struct BuildingInput: Decodable {
        var name: String
        var floors: Int
    }

    @Sendable func listBuildings(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewCommunity)
        return try JSON.response(Items(try await store.buildings(communityId: community.id, scope: scope)))
    }

    @Sendable func createBuilding(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageCommunity)
        try requireCovers(scope, community.id, .manageCommunity)
        let input = try await request.decodeJSON(BuildingInput.self, context: context)
        var v = Validator()
        let name = v.text(input.name, "name", max: 50)
        v.number(input.floors, "floors", in: 1...300, required: true)
        try v.check()
        let building = Building(communityId: community.id, name: name!, floors: input.floors)
        do { try await store.createBuilding(building, actor: context.principal) } catch  where error.isUniqueViolation {
            throw Problem.conflict("name", "a building with this name already exists")
        }
        return try JSON.response(building, status: .created)
    }

    @Sendable func getBuilding(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.viewCommunity)
        return try JSON.response(try await store.building(try context.parameters.require("id"), scope: scope))
    }

    struct UnitInput: Decodable { var name: String }

    @Sendable func listUnits(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.viewCommunity)
        let building = try await store.building(try context.parameters.require("id"), scope: scope)
        return try JSON.response(Items(try await store.units(buildingId: building.id, scope: scope)))
    }

    @Sendable func createUnit(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let building = try await store.building(
            try context.parameters.require("id"), scope: try context.scope(.viewCommunity))
        try requireCovers(try context.scope(.manageCommunity), building.communityId, .manageCommunity)
        let input = try await request.decodeJSON(UnitInput.self, context: context)
        var v = Validator()
        let name = v.text(input.name, "name", max: 50)
        try v.check()
        let unit = BuildingUnit(communityId: building.communityId, buildingId: building.id, name: name!)
        do { try await store.createUnit(unit, actor: context.principal) } catch  where error.isUniqueViolation {
            throw Problem.conflict("name", "a unit with this name already exists in this building")
        }
        return try JSON.response(unit, status: .created)
    }

    // MARK: households

    struct HouseholdInput: Decodable {
        var unitId: ID
        var room: String
        var floor: Int
        var area: Double?
        var occupancy: Occupancy
    }
    struct HouseholdPatch: Decodable {
        var area: Double?
        var occupancy: Occupancy?
    }

    @Sendable func listHouseholds(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewCommunity)
        var q = QueryReader(request)
        let filter = HouseholdFilter(
            buildingId: q.string("buildingId"), unitId: q.string("unitId"),
            occupancy: q.oneOf("occupancy", Occupancy.self), query: q.string("q"))
        let sort = q.sort(allowed: Store.householdSortColumns, default: "b.name, u.name, LENGTH(h.room), h.room, h.id")
        let page = q.page()
        try q.check()
        return try JSON.response(
            try await store.households(communityId: community.id, filter: filter, sort: sort, page: page, scope: scope))
    }

    @Sendable func createHousehold(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageCommunity)
        try requireCovers(scope, community.id, .manageCommunity)
        let input = try await request.decodeJSON(HouseholdInput.self, context: context)
        var v = Validator()
        let room = v.text(input.room, "room", max: 50)
        v.number(input.floor, "floor", in: -10...300)
        if let area = input.area, !(area > 0 && area < 100_000) {
            v.add("area", "must be a positive number of square metres below 100000")
        }
        try v.check()
        guard let unit = try? await store.unit(input.unitId, scope: scope), unit.communityId == community.id else {
            throw Problem.invalid([FieldIssue("unitId", "is not a unit of this community")])
        }
        let household = Household(
            communityId: community.id, buildingId: unit.buildingId, unitId: unit.id, room: room!, floor: input.floor,
            area: input.area, occupancy: input.occupancy)
        do { try await store.createHousehold(household, actor: context.principal) } catch  where error.isUniqueViolation
        {
            throw Problem.conflict("room", "this room already exists in the unit")
        }
        return try JSON.response(try await store.household(household.id, scope: scope), status: .created)
    }

    @Sendable func getHousehold(_ request: Request, context: AppContext) async throws -> Response {
        try JSON.response(
            try await store.household(try context.parameters.require("id"), scope: try context.scope(.viewCommunity)))
    }

    @Sendable func updateHousehold(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let scope = try context.scope(.manageCommunity)
        let listing = try await store.household(try context.parameters.require("id"), scope: scope)
        let patch = try await request.decodeJSON(HouseholdPatch.self, context: context)
        if let area = patch.area, !(area > 0 && area < 100_000) {
            throw Problem.invalid([FieldIssue("area", "must be a positive number of square metres below 100000")])
        }
        let household = Household(
            id: listing.id, communityId: listing.communityId, buildingId: listing.buildingId, unitId: listing.unitId,
            room: listing.room,
            floor: listing.floor, area: patch.area ?? listing.area, occupancy: patch.occupancy ?? listing.occupancy)
        try await store.updateHousehold(household, actor: context.principal)
        return try JSON.response(try await store.household(listing.id, scope: scope))
    }

    @Sendable func householdResidents(_ request: Request, context: AppContext) async throws -> Response {
        let household = try await store.household(
            try context.parameters.require("id"), scope: try context.scope(.viewPeople))
        return try JSON.response(Items(try await store.residents(householdId: household.id)))
    }

    // MARK: people

    struct PersonInputBody: Decodable {
        var name: String
        var phone: String?
        var identityNumber: String?
        var careTags: [CareTag]?
    }
    struct PersonPatch: Decodable {
        var name: String?
        var phone: String?
        var careTags: [CareTag]?
    }

    @Sendable func listPeople(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewPeople)
        var q = QueryReader(request)
        let filter = PeopleFilter(
            query: q.string("q"), careTag: q.oneOf("careTag", CareTag.self), currentOnly: q.bool("current"),
            householdId: q.string("householdId"))
        let sort = q.sort(allowed: Store.peopleSortColumns, default: "p.name, p.id")
        let page = q.page()
        try q.check()
        let caller = try context.requireCaller()
        return try JSON.response(
            try await store.people(
                communityId: community.id, filter: filter, sort: sort, page: page, scope: scope,
                fullPhone: caller.can(.seeFullPhone)))
    }

    @Sendable func createPerson(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .managePeople)
        try requireCovers(scope, community.id, .managePeople)
        let input = try await request.decodeJSON(PersonInputBody.self, context: context)
        var v = Validator()
        let name = v.text(input.name, "name", max: 100)
        v.phone(input.phone, "phone")
        if let number = input.identityNumber, !number.isEmpty, !IdentityNumber.isValid(number) {
            v.add("identityNumber", "is not a valid 18-character identity card number")
        }
        try v.check()
        let person = try await store.createPerson(
            communityId: community.id,
            PersonInput(
                name: name!, phone: input.phone ?? "", identityNumber: input.identityNumber,
                careTags: input.careTags ?? []), actor: context.principal)
        return try JSON.response(try await store.person(person.id, scope: scope, fullPhone: true), status: .created)
    }

    @Sendable func getPerson(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        return try JSON.response(
            try await store.person(
                try context.parameters.require("id"), scope: try context.scope(.viewPeople),
                fullPhone: caller.can(.seeFullPhone)))
    }

    @Sendable func updatePerson(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let scope = try context.scope(.managePeople)
        let patch = try await request.decodeJSON(PersonPatch.self, context: context)
        var v = Validator()
        let name = patch.name.flatMap { v.text($0, "name", max: 100) }
        v.phone(patch.phone, "phone")
        try v.check()
        let id = try context.parameters.require("id")
        try await store.updatePerson(
            id, scope: scope, name: name, phone: patch.phone, careTags: patch.careTags, actor: context.principal)
        return try JSON.response(try await store.person(id, scope: scope, fullPhone: true))
    }

    @Sendable func revealIdentity(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.revealIdentity)
        let number = try await store.revealIdentity(
            personId: try context.parameters.require("id"), scope: scope, actor: context.principal)
        guard let number else { throw Problem.notFound("identity number") }
        return try JSON.response(["identityNumber": number])
    }

    struct MoveInInput: Decodable {
        var personId: ID
        var householdId: ID
        var role: ResidencyRole
        var leaseStart: String?
        var leaseEnd: String?
        var movedIn: String?
    }
    struct MoveOutInput: Decodable { var movedOut: String? }

    @Sendable func moveIn(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let scope = try context.scope(.managePeople)
        var input = try await request.decodeJSON(MoveInInput.self, context: context)
        // An empty date means "not given", as in a form.
        if input.leaseStart?.isEmpty == true { input.leaseStart = nil }
        if input.leaseEnd?.isEmpty == true { input.leaseEnd = nil }
        if input.movedIn?.isEmpty == true { input.movedIn = nil }
        var v = Validator()
        v.day(input.leaseStart, "leaseStart")
        v.day(input.leaseEnd, "leaseEnd")
        v.day(input.movedIn, "movedIn")
        if input.role != .tenant, input.leaseEnd != nil { v.add("leaseEnd", "applies to tenants only") }
        if let s = input.leaseStart, let e = input.leaseEnd, e < s { v.add("leaseEnd", "is before leaseStart") }
        try v.check()
        guard let household = try? await store.household(input.householdId, scope: scope) else {
            throw Problem.invalid([FieldIssue("householdId", "is not a household you may change")])
        }
        guard let person = try? await store.person(input.personId, scope: scope, fullPhone: false),
            person.communityId == household.communityId
        else {
            throw Problem.invalid([FieldIssue("personId", "is not a person of this household's community")])
        }
        let residency = Residency(
            communityId: household.communityId, personId: person.id, householdId: household.id, role: input.role,
            leaseStart: input.leaseStart, leaseEnd: input.leaseEnd,
            movedIn: input.movedIn ?? input.leaseStart ?? Day.today())
        try await store.moveIn(residency, actor: context.principal)
        return try JSON.response(residency, status: .created)
    }

    @Sendable func moveOut(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let scope = try context.scope(.managePeople)
        let body = try await request.readBody(upTo: BodyLimit.json)
        let input =
            body.readableBytes == 0 ? MoveOutInput() : try await request.decodeJSON(MoveOutInput.self, context: context)
        var v = Validator()
        v.day(input.movedOut, "movedOut")
        try v.check()
        let residency = try await store.moveOut(
            residencyId: try context.parameters.require("id"), on: input.movedOut ?? Day.today(), scope: scope,
            actor: context.principal)
        return try JSON.response(residency)
    }

    // MARK: vehicles

    struct VehicleInput: Decodable {
        var plate: String
        var householdId: ID?
        var personId: ID?
        var description: String?
    }

    @Sendable func listVehicles(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewVehicles)
        var q = QueryReader(request)
        let query = q.string("q")
        let householdId = q.string("householdId")
        let page = q.page()
        try q.check()
        return try JSON.response(
            try await store.vehicles(
                communityId: community.id, query: query, householdId: householdId, page: page, scope: scope))
    }

    @Sendable func createVehicle(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageVehicles)
        try requireCovers(scope, community.id, .manageVehicles)
        let input = try await request.decodeJSON(VehicleInput.self, context: context)
        var v = Validator()
        let plate = v.text(input.plate, "plate", max: 12)?.uppercased().replacingOccurrences(of: " ", with: "")
        if let plate, plate.count < 5 { v.add("plate", "must be a licence plate of 5 to 12 characters") }
        let description = v.text(input.description, "description", max: 200, required: false)
        try v.check()
        if let h = input.householdId, (try? await store.household(h, scope: scope))?.communityId != community.id {
            throw Problem.invalid([FieldIssue("householdId", "is not a household of this community")])
        }
        if let p = input.personId,
            (try? await store.person(p, scope: scope, fullPhone: false))?.communityId != community.id
        {
            throw Problem.invalid([FieldIssue("personId", "is not a person of this community")])
        }
        let vehicle = Vehicle(
            communityId: community.id, plate: plate!, householdId: input.householdId, personId: input.personId,
            description: description ?? "")
        do { try await store.createVehicle(vehicle, actor: context.principal) } catch  where error.isUniqueViolation {
            throw Problem.conflict("plate", "this plate is already registered in the community")
        }
        return try JSON.response(vehicle, status: .created)
    }

    // MARK: organisations, staff, grids

    struct OrganisationInput: Decodable {
        var name: String
        var kind: OrganisationKind
        var phone: String?
    }
    struct StaffInput: Decodable {
        var name: String
        var title: String?
        var phone: String?
        var accountId: ID?
    }
    struct GridInput: Decodable {
        var name: String
        var workerAccountId: ID?
        var buildingIds: [ID]
    }

    @Sendable func listOrganisations(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewOrganisations)
        return try JSON.response(Items(try await store.organisations(communityId: community.id, scope: scope)))
    }

    @Sendable func createOrganisation(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageOrganisations)
        try requireCovers(scope, community.id, .manageOrganisations)
        let input = try await request.decodeJSON(OrganisationInput.self, context: context)
        var v = Validator()
        let name = v.text(input.name, "name", max: 100)
        v.phone(input.phone, "phone")
        try v.check()
        let organisation = Organisation(
            communityId: community.id, name: name!, kind: input.kind, phone: input.phone ?? "")
        try await store.createOrganisation(organisation, actor: context.principal)
        return try JSON.response(organisation, status: .created)
    }

    @Sendable func listStaff(_ request: Request, context: AppContext) async throws -> Response {
        let organisation = try await store.organisation(
            try context.parameters.require("id"), scope: try context.scope(.viewOrganisations))
        return try JSON.response(Items(try await store.staff(organisationId: organisation.id)))
    }

    @Sendable func addStaff(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let scope = try context.scope(.manageOrganisations)
        let organisation = try await store.organisation(try context.parameters.require("id"), scope: scope)
        let input = try await request.decodeJSON(StaffInput.self, context: context)
        var v = Validator()
        let name = v.text(input.name, "name", max: 100)
        let title = v.text(input.title, "title", max: 100, required: false)
        v.phone(input.phone, "phone")
        try v.check()
        if let accountId = input.accountId, try await store.account(id: accountId) == nil {
            throw Problem.invalid([FieldIssue("accountId", "is not an account")])
        }
        let member = StaffMember(
            communityId: organisation.communityId, organisationId: organisation.id, name: name!, title: title ?? "",
            phone: input.phone ?? "", accountId: input.accountId)
        try await store.addStaff(member, actor: context.principal)
        return try JSON.response(member, status: .created)
    }

    @Sendable func listGrids(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .viewOrganisations)
        let caller = try context.requireCaller()
        // Grids are part of how the community is organised; anyone who sees its organisations sees them.
        let scope = caller.scope(for: .viewOrganisations)
        var gridScope = Scope()
        if scope.everything || scope.communities.contains(community.id) || caller.communityIds.contains(community.id) {
            gridScope.communities = [community.id]
        }
        return try JSON.response(
            Items(try await store.grids(communityId: community.id, scope: scope.everything ? .everything : gridScope)))
    }

    @Sendable func createGrid(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageOrganisations)
        try requireCovers(scope, community.id, .manageOrganisations)
        let input = try await request.decodeJSON(GridInput.self, context: context)
        var v = Validator()
        let name = v.text(input.name, "name", max: 100)
        if input.buildingIds.count > 500 { v.add("buildingIds", "must list at most 500 buildings") }
        try v.check()
        if let worker = input.workerAccountId, try await store.account(id: worker) == nil {
            throw Problem.invalid([FieldIssue("workerAccountId", "is not an account")])
        }
        let grid = Grid(communityId: community.id, name: name!, workerAccountId: input.workerAccountId)
        do { try await store.createGrid(grid, buildingIds: input.buildingIds, actor: context.principal) } catch let
            StoreError.conflict(field, reason)
        {
            throw Problem.invalid([FieldIssue(field, reason)])
        }
        return try JSON.response(grid, status: .created)
    }

}
