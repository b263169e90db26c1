import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliHTTP
import LinliStorage

extension WebConsole {
    func registerEditing(_ router: Router<AppContext>) {
        let forms: [(String, @Sendable (Request, AppContext) async throws -> Response)] = [
            ("/console/c/:cid/buildings/new", newBuilding), ("/console/b/:id/edit", editBuilding),
            ("/console/b/:id/units/new", newUnit), ("/console/u/:id/edit", editUnit),
            ("/console/c/:cid/households/new", newHousehold), ("/console/h/:id/edit", editHousehold),
            ("/console/h/:id/residents/new", newResident), ("/console/c/:cid/people/new", newPerson),
            ("/console/r/:id/move-out", moveOut), ("/console/p/:id/edit", editPerson),
            ("/console/h/:id/vehicles/new", newVehicle), ("/console/v/:id/edit", editVehicle),
        ]
        for (path, handler) in forms {
            router.get(RouterPath(path), use: handler)
            router.post(RouterPath(path), use: handler)
        }
    }

    /// Square metres as people write them (89.5, 89.5㎡, 89.5 平方米), as the API takes them: a
    /// positive number below 100000.
    func area(_ input: FormInput, _ v: inout Validator) -> Double? {
        guard var raw = input["area"] else { return nil }
        for unit in ["㎡", "m²", "平方米", "平米", "m2"] { raw = raw.replacingOccurrences(of: unit, with: "") }
        guard let d = Double(raw.trimmingCharacters(in: .whitespaces)), d > 0, d < 100_000 else {
            v.add("area", "editing.reason.area")
            return nil
        }
        return d
    }

    /// Whether the caller may change all of community `id` by `capability` (the page shows the way).
    func may(_ context: AppContext, _ capability: Capability, _ id: ID) -> Bool {
        context.caller?.scope(for: capability).coversCommunity(id) ?? false
    }

    /// The community of a thing found by id, when `scope` covers all of it (else 403).
    func covering(_ communityId: ID, _ scope: Scope, _ capability: Capability) async throws -> Community {
        try requireCovers(scope, communityId, capability)
        return try await store.community(communityId, scope: scope, memberships: [])
    }

    func options<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ prefix: String, _ context: AppContext)
        -> [FormChoice] where T.RawValue == String
    {
        T.allCases.map { FormChoice($0.rawValue, label(prefix, $0.rawValue, context)) }
    }

    // MARK: buildings and units

    @Sendable func newBuilding(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .manageCommunity)
        try requireCovers(scope, community.id, .manageCommunity)
        return try await buildingForm(request, context, community, nil)
    }

    @Sendable func editBuilding(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.manageCommunity)
        let building = try await store.building(try context.parameters.require("id"), scope: scope)
        return try await buildingForm(
            request, context, try await covering(building.communityId, scope, .manageCommunity), building)
    }

    func buildingForm(_ request: Request, _ context: AppContext, _ community: Community, _ stored: Building?)
        async throws -> Response
    {
        var input = try await formInput(
            request, context, stored: stored.map { ["name": $0.name, "floors": String($0.floors)] } ?? [:])
        if input.posted {
            var v = Validator()
            let name = v.text(input["name"], "name", max: 50)
            let floors = input.int("floors", &v, in: 1...300, required: true)
            if let name, let floors {
                var building = stored ?? Building(communityId: community.id, name: name, floors: floors)
                (building.name, building.floors) = (name, floors)
                do {
                    if stored == nil {
                        try await store.createBuilding(building, actor: context.principal)
                    } else {
                        try await store.updateBuilding(building, actor: context.principal)
                    }
                    return .redirect(to: "/console/b/\(building.id)")
                } catch  where error.isUniqueViolation { v.add("name", "editing.reason.buildingTaken") }
            }
            refuse(&input, v.issues, context)
        }
        let page = FormPage(
            heading: stored.map { text("editing.building.edit", context, ["name": $0.name]) }
                ?? text("editing.building.new", context),
            action: stored.map { "/console/b/\($0.id)/edit" } ?? "/console/c/\(community.id)/buildings/new",
            submit: text(stored == nil ? "editing.add" : "common.save", context),
            back: stored.map { "/console/b/\($0.id)" } ?? "/console/c/\(community.id)/buildings")
        return try renderForm(
            page,
            [
                input.field("name", text("editing.field.buildingName", context), required: true, max: 50),
                input.field("floors", text("building.floors", context), type: "number", required: true),
            ], input, community: community, context: context)
    }

    @Sendable func newUnit(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.manageCommunity)
        let building = try await store.building(try context.parameters.require("id"), scope: scope)
        let community = try await covering(building.communityId, scope, .manageCommunity)
        return try await unitForm(request, context, community, building, nil)
    }

    @Sendable func editUnit(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.manageCommunity)
        let unit = try await store.unit(try context.parameters.require("id"), scope: scope)
        let community = try await covering(unit.communityId, scope, .manageCommunity)
        return try await unitForm(
            request, context, community, try await store.building(unit.buildingId, scope: scope), unit)
    }

    func unitForm(
        _ request: Request, _ context: AppContext, _ community: Community, _ building: Building, _ stored: BuildingUnit?
    ) async throws -> Response {
        var input = try await formInput(request, context, stored: stored.map { ["name": $0.name] } ?? [:])
        if input.posted {
            var v = Validator()
            if let name = v.text(input["name"], "name", max: 50) {
                var unit =
                    stored ?? BuildingUnit(communityId: building.communityId, buildingId: building.id, name: name)
                unit.name = name
                do {
                    if stored == nil {
                        try await store.createUnit(unit, actor: context.principal)
                    } else {
                        try await store.updateUnit(unit, actor: context.principal)
                    }
                    return .redirect(to: "/console/b/\(building.id)")
                } catch  where error.isUniqueViolation { v.add("name", "editing.reason.unitTaken") }
            }
            refuse(&input, v.issues, context)
        }
        let page = FormPage(
            heading: stored.map { text("editing.unit.edit", context, ["building": building.name, "name": $0.name]) }
                ?? text("editing.unit.new", context, ["building": building.name]),
            action: stored.map { "/console/u/\($0.id)/edit" } ?? "/console/b/\(building.id)/units/new",
            submit: text(stored == nil ? "editing.add" : "common.save", context), back: "/console/b/\(building.id)")
        return try renderForm(
            page, [input.field("name", text("editing.field.unitName", context), required: true, max: 50)], input,
            community: community, context: context)
    }

    // MARK: households

    @Sendable func newHousehold(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .manageCommunity)
        try requireCovers(scope, community.id, .manageCommunity)
        return try await householdForm(request, context, community, scope, nil)
    }

    @Sendable func editHousehold(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.manageCommunity)
        let h = try await store.household(try context.parameters.require("id"), scope: scope)
        return try await householdForm(
            request, context, try await covering(h.communityId, scope, .manageCommunity), scope, h)
    }

    func householdForm(
        _ request: Request, _ context: AppContext, _ community: Community, _ scope: Scope, _ stored: HouseholdListing?
    ) async throws -> Response {
        var q = QueryReader(request)
        var input = try await formInput(
            request, context,
            stored: stored.map {
                ["floor": String($0.floor), "area": Self.area($0.area) ?? "", "occupancy": $0.occupancy.rawValue]
            } ?? ["unitId": q.string("unitId") ?? "", "occupancy": Occupancy.ownerOccupied.rawValue])
        var units: [FormChoice] = []
        if stored == nil {
            for b in try await store.buildings(communityId: community.id, scope: scope) {
                units += try await store.units(buildingId: b.id, scope: scope).map {
                    FormChoice($0.id, b.name + " " + $0.name)
                }
            }
        }
        if input.posted {
            var v = Validator()
            let unit = units.first { $0.code == input["unitId"] }
            if stored == nil, unit == nil {
                v.add("unitId", input["unitId"] == nil ? "is required" : "editing.reason.notOurs")
            }
            let room = stored == nil ? v.text(input["room"], "room", max: 50) : stored?.room
            let floor = input.int("floor", &v, in: -10...300, required: true)
            let area = area(input, &v)
            let occupancy = Occupancy(rawValue: input["occupancy"] ?? "")
            if occupancy == nil { v.add("occupancy", "editing.reason.choose") }
            if v.issues.isEmpty, let room, let floor, let occupancy {
                do {
                    let id: ID
                    if let stored {
                        id = stored.id
                        try await store.updateHousehold(
                            Household(
                                id: stored.id, communityId: stored.communityId, buildingId: stored.buildingId,
                                unitId: stored.unitId, room: stored.room, floor: floor, area: area,
                                occupancy: occupancy), actor: context.principal)
                    } else {
                        let u = try await store.unit(unit!.code, scope: scope)
                        let h = Household(
                            communityId: community.id, buildingId: u.buildingId, unitId: u.id, room: room, floor: floor,
                            area: area, occupancy: occupancy)
                        id = h.id
                        try await store.createHousehold(h, actor: context.principal)
                    }
                    return .redirect(to: "/console/h/\(id)")
                } catch  where error.isUniqueViolation { v.add("room", "editing.reason.roomTaken") }
            }
            refuse(&input, v.issues, context)
        }
        var fields: [FormField] = []
        if stored == nil {
            fields = [
                input.field(
                    "unitId", text("unit.name", context), type: "select",
                    options: [FormChoice("", text("form.choose", context))] + units, required: true),
                input.field("room", text("household.room", context), required: true, max: 50),
            ]
        }
        fields += [
            input.field("floor", text("household.floor", context), type: "number", required: true),
            input.field(
                "area", text("editing.field.area", context), max: 12, hint: text("editing.hint.area", context),
                mode: "decimal"),
            input.field(
                "occupancy", text("household.occupancy", context), type: "select",
                options: options(Occupancy.self, "occupancy", context), required: true),
        ]
        let page = FormPage(
            heading: stored.map {
                text("editing.household.edit", context, ["name": "\($0.buildingName) \($0.unitName) \($0.room)"])
            } ?? text("editing.household.new", context),
            action: stored.map { "/console/h/\($0.id)/edit" }
                ?? "/console/c/\(community.id)/households/new",
            submit: text(stored == nil ? "editing.add" : "common.save", context),
            back: stored.map { "/console/h/\($0.id)" } ?? "/console/c/\(community.id)/households")
        return try renderForm(page, fields, input, community: community, context: context)
    }

    // MARK: residents

    @Sendable func newResident(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.managePeople)
        let h = try await store.household(try context.parameters.require("id"), scope: scope)
        return try await residentForm(
            request, context, try await covering(h.communityId, scope, .managePeople), scope, h)
    }

    @Sendable func newPerson(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .managePeople)
        try requireCovers(scope, community.id, .managePeople)
        return try await residentForm(request, context, community, scope, nil)
    }

    /// A resident of a household: a person already registered in the community (found by name or
    /// phone), or one registered here and then, in the same transaction, moved in.
    func residentForm(
        _ request: Request, _ context: AppContext, _ community: Community, _ scope: Scope,
        _ household: HouseholdListing?
    ) async throws -> Response {
        var query = QueryReader(request)
        let q = query.string("q")?.trimmingCharacters(in: .whitespaces)
        var input = try await formInput(
            request, context, stored: ["role": ResidencyRole.owner.rawValue, "movedIn": Day.today()])
        var households: [FormChoice] = []
        if household == nil {
            households =
                try await store.households(
                    communityId: community.id, filter: HouseholdFilter(),
                    sort: try ListOrder(
                        nil, allowed: [:],
                        default: "LENGTH(b.name), b.name, LENGTH(u.name), u.name, LENGTH(h.room), h.room, h.id"),
                    page: PageRequest(limit: 5000), scope: scope
                ).items.map { FormChoice($0.id, "\($0.buildingName) \($0.unitName) \($0.room)") }
        }
        var found: [PersonView] = []
        if let q, !q.isEmpty {
            found = try await store.people(
                communityId: community.id, filter: PeopleFilter(query: q),
                sort: try ListOrder(nil, allowed: [:], default: "p.name, p.id"), page: PageRequest(limit: 20),
                scope: scope, fullPhone: false
            ).items
        }
        if let id = input["personId"], !found.contains(where: { $0.id == id }),
            let p = try? await store.person(id, scope: scope, fullPhone: false), p.communityId == community.id
        {
            found.append(p)
        }
        if input.posted {
            var v = Validator()
            let householdId = household?.id ?? input["householdId"]
            if householdId == nil || (household == nil && !households.contains { $0.code == householdId }) {
                v.add("householdId", householdId == nil ? "is required" : "editing.reason.notOurs")
            }
            let person = input["personId"].flatMap { id in found.first { $0.id == id } }
            if input["personId"] != nil, person == nil { v.add("personId", "editing.reason.notOurs") }
            var name: String? = nil
            if person == nil {
                name = v.text(input["name"], "name", max: 100)
                v.phone(input["phone"], "phone")
                if let number = input["identityNumber"], !IdentityNumber.isValid(number) {
                    v.add("identityNumber", "editing.reason.identity")
                }
            }
            let tags = input.list("careTags").compactMap(CareTag.init(rawValue:))
            let role = ResidencyRole(rawValue: input["role"] ?? "")
            if role == nil { v.add("role", "editing.reason.choose") }
            let leaseStart = input.day("leaseStart", &v)
            let leaseEnd = input.day("leaseEnd", &v)
            let movedIn = input.day("movedIn", &v)
            if role != nil, role != .tenant, leaseStart != nil || leaseEnd != nil {
                v.add(leaseEnd != nil ? "leaseEnd" : "leaseStart", "editing.reason.leaseTenants")
            }
            if let s = leaseStart, let e = leaseEnd, e < s { v.add("leaseEnd", "editing.reason.leaseBefore") }
            if v.issues.isEmpty, let householdId, let role {
                let made =
                    try person == nil
                    ? store.makePerson(
                        communityId: community.id,
                        PersonInput(
                            name: name!, phone: input["phone"] ?? "", identityNumber: input["identityNumber"],
                            careTags: tags)) : nil
                let residency = Residency(
                    communityId: community.id, personId: person?.id ?? made!.id, householdId: householdId, role: role,
                    leaseStart: leaseStart, leaseEnd: leaseEnd, movedIn: movedIn ?? leaseStart ?? Day.today())
                do {
                    if let made {
                        try await store.createResident(made, residency, actor: context.principal)
                    } else {
                        try await store.moveIn(residency, actor: context.principal)
                    }
                    return .redirect(to: "/console/h/\(householdId)")
                } catch let StoreError.conflict(field, _) {
                    let identity = field == "identityNumber"
                    v.add(
                        identity ? field : person == nil ? "name" : "personId",
                        identity ? "editing.reason.identityTaken" : "editing.reason.alreadyLives")
                }
            }
            refuse(&input, v.issues, context)
        }
        let path = household.map { "/console/h/\($0.id)/residents/new" } ?? "/console/c/\(community.id)/people/new"
        var fields: [FormField] = []
        if household == nil {
            fields.append(
                input.field(
                    "householdId", text("person.household", context), type: "select",
                    options: [FormChoice("", text("form.choose", context))] + households,
                    required: true))
        }
        if !found.isEmpty || input.errors["personId"] != nil {
            let people = found.map { p in
                let homes = p.residencies.filter(\.current).map(\.householdLabel)
                return FormChoice(
                    p.id, ([p.name, p.phone] + homes).filter { !$0.isEmpty }.joined(separator: " · "))
            }
            fields.append(
                input.field(
                    "personId", text("editing.field.person", context), type: "radio",
                    options: people + [FormChoice("", text("editing.resident.someoneNew", context))]))
        }
        let newcomer = text("editing.hint.newcomer", context)
        fields += [
            input.field("name", text("person.name", context), max: 100, hint: found.isEmpty ? nil : newcomer),
            input.field("phone", text("person.phone", context), type: "tel", max: 20, mode: "tel"),
            input.field(
                "identityNumber", text("person.identity", context), max: 18,
                hint: text("editing.hint.identity", context)),
            input.field("careTags", text("person.care", context), type: "checkbox", options: careTagOptions(context)),
            input.field(
                "role", text("person.role", context), type: "select",
                options: options(ResidencyRole.self, "residencyRole", context), required: true),
            input.field(
                "leaseStart", text("editing.field.leaseStart", context), type: "date",
                hint: text("editing.hint.lease", context)),
            input.field("leaseEnd", text("editing.field.leaseEnd", context), type: "date"),
            input.field("movedIn", text("person.movedIn", context), type: "date"),
        ]
        let action =
            path
            + (q.map { "?q=" + ($0.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics) ?? "") }
                ?? "")
        var page = FormPage(
            heading: household.map {
                text("editing.resident.new", context, ["name": "\($0.buildingName) \($0.unitName) \($0.room)"])
            } ?? text("editing.person.new", context),
            action: action, submit: text("editing.add", context),
            back: household.map { "/console/h/\($0.id)" } ?? "/console/c/\(community.id)/people",
            lead: text("editing.resident.lead", context))
        page.searchAction = path
        page.searchLabel = text("editing.resident.search", context)
        page.q = q ?? ""
        return try renderForm(page, fields, input, community: community, context: context)
    }

    func careTagOptions(_ context: AppContext) -> [FormChoice] { options(CareTag.self, "careTag", context) }

    /// Ends a residency on a day (today unless told), after a page that says whose and where.
    @Sendable func moveOut(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.managePeople)
        let r = try await store.residency(try context.parameters.require("id"), scope: scope)
        let community = try await covering(r.communityId, scope, .managePeople)
        let h = try await store.household(r.householdId, scope: scope)
        let person = try await store.person(r.personId, scope: scope, fullPhone: false)
        var input = try await formInput(request, context, stored: ["movedOut": Day.today()])
        if r.movedOut != nil { input.errors["movedOut"] = text("editing.reason.ended", context) }
        if input.posted, r.movedOut == nil {
            var v = Validator()
            if input["movedOut"] == nil { v.add("movedOut", "is required") }
            let day = input.day("movedOut", &v)
            if v.issues.isEmpty, let day {
                do {
                    _ = try await store.moveOut(residencyId: r.id, on: day, scope: scope, actor: context.principal)
                    return .redirect(to: "/console/h/\(h.id)")
                } catch is ValidationFailure {
                    input.errors["movedOut"] = text("editing.reason.movedOutBefore", context, ["date": r.movedIn])
                }
            }
            refuse(&input, v.issues, context)
        }
        let place = "\(h.buildingName) \(h.unitName) \(h.room)"
        var page = FormPage(
            heading: text("editing.moveOut.title", context, ["name": person.name]),
            action: "/console/r/\(r.id)/move-out", submit: text("editing.moveOut.confirm", context),
            back: "/console/h/\(h.id)",
            lead: text(
                "editing.moveOut.lead", context,
                ["name": person.name, "household": place, "role": label("residencyRole", r.role.rawValue, context)]))
        page.danger = true
        return try renderForm(
            page, [input.field("movedOut", text("person.movedOut", context), type: "date", required: true)], input,
            community: community, context: context)
    }

    /// A person's name, phone and care tags. A phone the caller sees masked is kept unless replaced.
    @Sendable func editPerson(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        let scope = try context.scope(.managePeople)
        let p = try await store.person(
            try context.parameters.require("id"), scope: scope, fullPhone: caller.can(.seeFullPhone))
        let community = try await covering(p.communityId, scope, .managePeople)
        var input = try await formInput(
            request, context,
            stored: ["name": p.name, "phone": p.phone, "careTags": p.careTags.map(\.rawValue).joined(separator: ",")])
        if input.posted {
            var v = Validator()
            let name = v.text(input["name"], "name", max: 100)
            let phone = input["phone"] ?? ""
            v.phone(phone, "phone")
            let tags = input.list("careTags").compactMap(CareTag.init(rawValue:))
            if v.issues.isEmpty, let name {
                try await store.updatePerson(
                    p.id, scope: scope, name: name, phone: phone == p.phone ? nil : phone, careTags: tags,
                    actor: context.principal)
                return .redirect(to: "/console/p/\(p.id)")
            }
            refuse(&input, v.issues, context)
        }
        let page = FormPage(
            heading: text("editing.person.edit", context, ["name": p.name]), action: "/console/p/\(p.id)/edit",
            submit: text("common.save", context), back: "/console/p/\(p.id)")
        return try renderForm(
            page,
            [
                input.field("name", text("person.name", context), required: true, max: 100),
                input.field("phone", text("person.phone", context), type: "tel", max: 20, mode: "tel"),
                input.field(
                    "careTags", text("person.care", context), type: "checkbox", options: careTagOptions(context)),
            ], input, community: community, context: context)
    }

    // MARK: vehicles

    @Sendable func newVehicle(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.manageVehicles)
        let h = try await store.household(try context.parameters.require("id"), scope: scope)
        return try await vehicleForm(
            request, context, try await covering(h.communityId, scope, .manageVehicles), scope, h.id, nil)
    }

    @Sendable func editVehicle(_ request: Request, context: AppContext) async throws -> Response {
        let scope = try context.scope(.manageVehicles)
        let vehicle = try await store.vehicle(try context.parameters.require("id"), scope: scope)
        return try await vehicleForm(
            request, context, try await covering(vehicle.communityId, scope, .manageVehicles), scope,
            vehicle.householdId, vehicle)
    }

    /// A vehicle of a household: its plate written as the API writes it (capitals, no spaces), what
    /// it is, and which of the household's residents owns it.
    func vehicleForm(
        _ request: Request, _ context: AppContext, _ community: Community, _ scope: Scope, _ householdId: ID?,
        _ stored: Vehicle?
    ) async throws -> Response {
        var input = try await formInput(
            request, context,
            stored: stored.map { ["plate": $0.plate, "description": $0.description, "personId": $0.personId ?? ""] }
                ?? [:])
        var owners: [FormChoice] = []
        var seen = Set<ID>()
        let residents =
            if let householdId { try await store.residents(householdId: householdId) } else { [ResidencyListing]() }
        for r in residents
        where (r.current || r.personId == stored?.personId) && seen.insert(r.personId).inserted {
            owners.append(FormChoice(r.personId, r.personName))
        }
        if let owner = stored?.personId, !seen.contains(owner),
            let p = try? await store.person(owner, scope: .everything, fullPhone: false)
        {
            owners.append(FormChoice(owner, p.name))
        }
        if input.posted {
            var v = Validator()
            let plate = v.text(input["plate"], "plate", max: 12)?.uppercased().replacingOccurrences(of: " ", with: "")
            if let plate, plate.count < 5 { v.add("plate", "editing.reason.plate") }
            let description = v.text(input["description"], "description", max: 200, required: false) ?? ""
            let owner = input["personId"]
            if let owner, !owners.contains(where: { $0.code == owner }) { v.add("personId", "editing.reason.notOurs") }
            if v.issues.isEmpty, let plate {
                var vehicle =
                    stored
                    ?? Vehicle(
                        communityId: community.id, plate: plate, householdId: householdId, personId: owner,
                        description: description)
                (vehicle.plate, vehicle.description, vehicle.personId) = (plate, description, owner)
                do {
                    if stored == nil {
                        try await store.createVehicle(vehicle, actor: context.principal)
                    } else {
                        try await store.updateVehicle(vehicle, actor: context.principal)
                    }
                    return .redirect(
                        to: householdId.map { "/console/h/\($0)" } ?? "/console/c/\(community.id)/vehicles")
                } catch  where error.isUniqueViolation { v.add("plate", "editing.reason.plateTaken") }
            }
            refuse(&input, v.issues, context)
        }
        let back = householdId.map { "/console/h/\($0)" } ?? "/console/c/\(community.id)/vehicles"
        let page = FormPage(
            heading: stored.map { text("editing.vehicle.edit", context, ["plate": $0.plate]) }
                ?? text("editing.vehicle.new", context),
            action: stored.map { "/console/v/\($0.id)/edit" } ?? "/console/h/\(householdId ?? "")/vehicles/new",
            submit: text(stored == nil ? "editing.add" : "common.save", context), back: back)
        return try renderForm(
            page,
            [
                input.field(
                    "plate", text("vehicle.plate", context), required: true, max: 12,
                    hint: text("editing.hint.plate", context)),
                input.field("description", text("vehicle.description", context), max: 200),
                input.field(
                    "personId", text("vehicle.owner", context), type: "select",
                    options: [FormChoice("", text("common.none", context))] + owners),
            ], input, community: community, context: context)
    }
}
