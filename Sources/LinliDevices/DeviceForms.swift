import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
import LinliStorage
import LinliThings

/// The console's forms for devices: a new product (from the library or a TSL file), a new device
/// with its place (its triple shown once), and a device's place and nickname changed. Only who
/// manages devices reaches them; they make and change through the same store functions as the API.
extension WebConsole {
    func registerDeviceForms(_ router: Router<AppContext>) {
        router.get("/console/c/:cid/products/new", use: newProductForm)
        router.post("/console/c/:cid/products/new", use: createProduct)
        router.get("/console/c/:cid/devices/new", use: newDeviceForm)
        router.post("/console/c/:cid/devices/new", use: createDevice)
        router.get("/console/d/:pk/:dn/edit", use: editDeviceForm)
        router.post("/console/d/:pk/:dn/edit", use: updateDevice)
    }

    /// What a form shows again: the values sent and, by field, what is wrong with them.
    struct FormState {
        var values: [String: String] = [:]
        var errors: [String: String] = [:]

        func page(_ fields: [String]) -> [String: Any] {
            var page: [String: Any] = [:]
            for field in fields {
                page[field] = values[field] ?? ""
                page[field + "Error"] = errors[field] ?? ""
                page[field + "Invalid"] = errors[field] != nil
            }
            page["hasErrors"] = !errors.isEmpty
            return page
        }
    }

    /// The reason of a field issue in the page's language; what the catalogue does not know is
    /// a technical detail (a TSL path's reason), shown as it is.
    func formReason(_ reason: String, _ context: AppContext) -> String {
        if pages.catalogue.contains(reason) { return text(reason, context) }
        let known: [String: String] = [
            "is required": "devicesforms.reason.required",
            "must not be empty": "devicesforms.reason.required",
            "must be 1 to 32 letters, digits or - _ @ . :": "devicesforms.reason.token",
            "is taken": "devicesforms.reason.taken",
            "must not contain control characters": "devicesforms.reason.control",
        ]
        if let key = known[reason] { return text(key, context) }
        if reason.hasPrefix("must be at most") {
            let max = reason.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return text("devicesforms.reason.tooLong", context, ["max": String(max)])
        }
        if reason.contains("exists") || reason.contains("taken") || reason.contains("already") {
            return text("devicesforms.reason.taken", context)
        }
        return reason
    }

    // MARK: products

    // The node type's field is `node`: a form control named `nodeType` shadows the form element's
    // own `nodeType` property, and scripts (and WebDriver) then no longer see the form as an element.
    static let productFields = ["source", "library", "name", "node"]

    @Sendable func newProductForm(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .manageDevices)
        try requireCovers(scope, community.id, .manageDevices)
        let chosen = request.uri.queryParameters.get("library") ?? ""
        return try productForm(
            context, community: community, state: FormState(values: ["source": "library", "library": chosen]))
    }

    func productForm(
        _ context: AppContext, community: Community, state: FormState, status: HTTPResponse.Status = .ok,
        tslError: String? = nil
    ) throws -> Response {
        let library = ProductLibrary.all.map {
            SelectOption(
                value: $0.key, label: label("devicesforms.library", $0.key, context),
                selected: $0.key == state.values["library"])
        }
        let nodeTypes = [
            ("", "devicesforms.nodeTypeAuto"), ("device", "nodeType.device"), ("gateway", "nodeType.gateway"),
        ]
        .map {
            SelectOption(value: $0.0, label: text($0.1, context), selected: $0.0 == (state.values["node"] ?? ""))
        }
        var page = state.page(Self.productFields)
        page["frame"] = Frame(title: text("devicesforms.newProduct", context), context: context, community: community)
        page["libraryOptions"] = library
        page["nodeTypes"] = nodeTypes
        page["fromLibrary"] = state.values["source"] != "tsl"
        page["tslError"] = tslError ?? ""
        page["tslInvalid"] = tslError != nil
        page["hasErrors"] = !state.errors.isEmpty || tslError != nil
        return try pages.render("product-new", page, status: status)
    }

    /// The form is multipart, for the TSL file; the product made, its page (303).
    @Sendable func createProduct(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageDevices)
        try requireCovers(scope, community.id, .manageDevices)
        let form = try await request.multipart(context: context, folder: uploads, limit: BodyLimit.json * 16)
        var state = FormState()
        for field in Self.productFields { state.values[field] = form.field(field) }
        let source = form.field("source") == "tsl" ? "tsl" : "library"
        state.values["source"] = source
        var input = API.ProductInput(
            name: form.field("name").isEmpty ? nil : form.field("name"),
            nodeType: form.field("node").isEmpty ? nil : form.field("node"))
        if source == "library" {
            if form.field("library").isEmpty {
                state.errors["library"] = text("devicesforms.reason.chooseLibrary", context)
            } else {
                input.library = form.field("library")
                // The library's name in the page's language, unless one is given.
                if input.name == nil, ProductLibrary.entry(form.field("library")) != nil {
                    input.name = label("devicesforms.library", form.field("library"), context)
                }
            }
        } else {
            guard let file = form.file("tsl"), let json = JSONValue.parse(Data(try file.bytes())) else {
                let reason = form.file("tsl") == nil ? "devicesforms.reason.tslMissing" : "devicesforms.reason.tslJSON"
                return try productForm(
                    context, community: community, state: state, status: .unprocessableContent,
                    tslError: text(reason, context))
            }
            input.tsl = json
        }
        if !state.errors.isEmpty {
            return try productForm(context, community: community, state: state, status: .unprocessableContent)
        }
        let api = API(services: services)
        do {
            let product = try api.newProduct(communityId: community.id, input)
            try await store.createProduct(product, actor: context.principal)
            return .redirect(to: "/console/products/\(product.productKey)")
        } catch {
            var tslError: String? = nil
            for issue in Self.issues(of: error) {
                if issue.field == "productKey" {
                    tslError = text("devicesforms.reason.productKeyTaken", context)
                } else if issue.field.hasPrefix("tsl") {
                    // Where in the thing model, as a JSONPath, and what is wrong there.
                    let path = "$" + issue.field.dropFirst(3)
                    tslError = text("devicesforms.tslAt", context, ["path": path, "reason": issue.reason])
                } else {
                    let asked = issue.field == "nodeType" ? "node" : issue.field
                    let field = Self.productFields.contains(asked) ? asked : "name"
                    state.errors[field] = formReason(issue.reason, context)
                }
            }
            if tslError == nil, state.errors.isEmpty { throw error }
            return try productForm(
                context, community: community, state: state, status: .unprocessableContent, tslError: tslError)
        }
    }

    /// The field issues an error of the API's checks or the store carries, if it is one of those.
    static func issues(of error: any Error) -> [FieldIssue] {
        switch error {
        case let problem as Problem where problem.status == .unprocessableContent: problem.errors
        case let failure as ValidationFailure: failure.issues
        case let StoreError.conflict(field, reason): [FieldIssue(field, reason)]
        default: []
        }
    }

    // MARK: devices

    static let deviceFields = ["productKey", "deviceName", "nickname", "buildingId", "unitId", "room", "location"]

    @Sendable func newDeviceForm(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .manageDevices)
        try requireCovers(scope, community.id, .manageDevices)
        let chosen = request.uri.queryParameters.get("productKey") ?? ""
        return try await deviceForm(context, community: community, state: FormState(values: ["productKey": chosen]))
    }

    /// The place pickers: the community's buildings, and its units named with their building.
    func placeOptions(_ communityId: ID, _ state: FormState, _ context: AppContext) async throws -> [String: Any] {
        let buildings = try await store.buildings(communityId: communityId, scope: .everything)
        var units: [SelectOption] = []
        for b in buildings {
            for u in try await store.units(buildingId: b.id, scope: .everything) {
                units.append(
                    SelectOption(value: u.id, label: b.name + " " + u.name, selected: u.id == state.values["unitId"]))
            }
        }
        return [
            "buildings": buildings.map {
                SelectOption(value: $0.id, label: $0.name, selected: $0.id == state.values["buildingId"])
            },
            "units": units,
        ]
    }

    func deviceForm(
        _ context: AppContext, community: Community, state: FormState, status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let products = try await store.products(communityId: community.id).map {
            SelectOption(value: $0.productKey, label: $0.name, selected: $0.productKey == state.values["productKey"])
        }
        var page = state.page(Self.deviceFields)
        page.merge(try await placeOptions(community.id, state, context)) { a, _ in a }
        page["frame"] = Frame(title: text("devicesforms.newDevice", context), context: context, community: community)
        page["products"] = products
        page["hasProducts"] = !products.isEmpty
        return try pages.render("device-new", page, status: status)
    }

    /// Reads the place fields: a room is looked for in the chosen unit, and a unit or room given
    /// without what holds it is named at its field.
    func place(
        _ form: [String: String], communityId: ID, _ state: inout FormState, _ context: AppContext
    ) async throws -> (buildingId: ID?, unitId: ID?, householdId: ID?) {
        let buildingId = form["buildingId"].flatMap { $0.isEmpty ? nil : $0 }
        var unitId = form["unitId"].flatMap { $0.isEmpty ? nil : $0 }
        var building = buildingId
        if let id = unitId {
            if let unit = try? await store.unit(id, scope: .everything), unit.communityId == communityId {
                if let b = building, b != unit.buildingId {
                    state.errors["unitId"] = text("devicesforms.reason.unitElsewhere", context)
                }
                building = unit.buildingId
            } else {
                state.errors["unitId"] = text("devicesforms.reason.noSuchUnit", context)
                unitId = nil
            }
        }
        var householdId: ID? = nil
        let room = (form["room"] ?? "").trimmingCharacters(in: .whitespaces)
        if !room.isEmpty {
            if let unitId {
                let found = try await store.households(
                    communityId: communityId, filter: HouseholdFilter(unitId: unitId, query: room),
                    sort: try ListOrder(nil, allowed: [:], default: "h.id"), page: PageRequest(limit: 100),
                    scope: .everything
                ).items.first { $0.room == room }
                if let found {
                    householdId = found.id
                } else {
                    state.errors["room"] = text("devicesforms.reason.noSuchRoom", context)
                }
            } else if state.errors["unitId"] == nil {
                state.errors["room"] = text("devicesforms.reason.roomNeedsUnit", context)
            }
        }
        return (building, unitId, householdId)
    }

    /// The device made, its triple on a page of its own, shown this once (the secret is kept
    /// only encrypted, as the API keeps it, and never shown again); not cached by the browser.
    @Sendable func createDevice(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageDevices)
        try requireCovers(scope, community.id, .manageDevices)
        let form = try await request.formFields(context: context)
        var state = FormState()
        for field in Self.deviceFields {
            state.values[field] = (form[field] ?? "").trimmingCharacters(in: .whitespaces)
        }
        let productKey = state.values["productKey"] ?? ""
        let deviceName = state.values["deviceName"] ?? ""
        let product = try await store.product(key: productKey)
        if productKey.isEmpty || product?.communityId != community.id {
            state.errors["productKey"] = text("devicesforms.reason.chooseProduct", context)
        }
        if deviceName.isEmpty {
            state.errors["deviceName"] = text("devicesforms.reason.required", context)
        } else if !API.isDeviceToken(deviceName) {
            state.errors["deviceName"] = text("devicesforms.reason.token", context)
        }
        let (buildingId, unitId, householdId) = try await place(form, communityId: community.id, &state, context)
        var v = Validator()
        let api = API(services: services)
        let placement = api.placement(
            &v, nickname: state.values["nickname"], buildingId: buildingId, unitId: unitId, householdId: householdId,
            location: state.values["location"], tags: nil, reportIntervalSeconds: nil)
        for issue in v.issues where state.errors[issue.field] == nil {
            state.errors[issue.field] = formReason(issue.reason, context)
        }
        guard state.errors.isEmpty, let product else {
            return try await deviceForm(context, community: community, state: state, status: .unprocessableContent)
        }
        let made: (Device, secret: String)
        do {
            made = try await store.registerDevice(
                product: product, deviceName: deviceName, placement: placement, actor: context.principal)
        } catch {
            let issues = Self.issues(of: error)
            if issues.isEmpty { throw error }
            for issue in issues {
                let field = Self.deviceFields.contains(issue.field) ? issue.field : "deviceName"
                state.errors[field] = formReason(issue.reason, context)
            }
            return try await deviceForm(context, community: community, state: state, status: .unprocessableContent)
        }
        let (device, secret) = made
        var response = try pages.render(
            "device-created",
            [
                "frame": Frame(
                    title: text("devicesforms.createdTitle", context), context: context, community: community),
                "productKey": device.productKey, "deviceName": device.deviceName, "deviceSecret": secret,
                "productName": product.name, "nickname": device.nickname,
            ] as [String: Any], status: .created)
        response.headers[.cacheControl] = "no-store"
        return response
    }

    // MARK: a device's place

    @Sendable func editDeviceForm(_ request: Request, context: AppContext) async throws -> Response {
        let (d, scope) = try await API(services: services).visibleDevice(context, .manageDevices)
        if !scope.coversCommunity(d.communityId) { throw Problem.forbidden(.manageDevices) }
        var room = ""
        if let h = d.householdId, let household = try? await store.household(h, scope: .everything) {
            room = household.room
        }
        let state = FormState(values: [
            "nickname": d.nickname, "buildingId": d.buildingId ?? "", "unitId": d.unitId ?? "", "room": room,
            "location": d.location,
        ])
        return try await editForm(context, d, state: state)
    }

    func editForm(_ context: AppContext, _ d: Device, state: FormState, status: HTTPResponse.Status = .ok)
        async throws -> Response
    {
        let caller = try context.requireCaller()
        let community = try await store.community(d.communityId, scope: .everything, memberships: caller.communityIds)
        var page = state.page(Self.deviceFields)
        page.merge(try await placeOptions(d.communityId, state, context)) { a, _ in a }
        page["frame"] = Frame(
            title: text("devicesforms.editTitle", context, ["name": d.nickname.isEmpty ? d.deviceName : d.nickname]),
            context: context, community: community)
        page["productKey"] = d.productKey
        page["deviceName"] = d.deviceName
        return try pages.render("device-edit", page, status: status)
    }

    /// Replaces the device's place and nickname (as the API's PATCH with every place field); the
    /// device's page after (303).
    @Sendable func updateDevice(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let api = API(services: services)
        let (d, scope) = try await api.visibleDevice(context, .manageDevices)
        if !scope.coversCommunity(d.communityId) { throw Problem.forbidden(.manageDevices) }
        let form = try await request.formFields(context: context)
        var state = FormState()
        for field in Self.deviceFields {
            state.values[field] = (form[field] ?? "").trimmingCharacters(in: .whitespaces)
        }
        let (buildingId, unitId, householdId) = try await place(form, communityId: d.communityId, &state, context)
        var v = Validator()
        let p = api.placement(
            &v, nickname: state.values["nickname"], buildingId: buildingId, unitId: unitId, householdId: householdId,
            location: state.values["location"], tags: nil, reportIntervalSeconds: nil)
        for issue in v.issues where state.errors[issue.field] == nil {
            state.errors[issue.field] = formReason(issue.reason, context)
        }
        if !state.errors.isEmpty { return try await editForm(context, d, state: state, status: .unprocessableContent) }
        do {
            _ = try await store.updateDevice(
                d, nickname: p.nickname, placement: (p.buildingId, p.unitId, p.householdId, p.location), tags: nil,
                reportIntervalSeconds: .none, actor: context.principal)
        } catch {
            let issues = Self.issues(of: error)
            if issues.isEmpty { throw error }
            for issue in issues {
                let field =
                    ["buildingId": "buildingId", "unitId": "unitId", "householdId": "room"][issue.field] ?? "location"
                state.errors[field] = formReason(issue.reason, context)
            }
            return try await editForm(context, d, state: state, status: .unprocessableContent)
        }
        return .redirect(to: "/console/d/\(d.productKey)/\(d.deviceName)")
    }

    /// Where a device is, as a person says it: building, unit, room and the free text.
    func placeText(_ d: Device) async throws -> String {
        var parts: [String] = []
        if let b = d.buildingId, let building = try? await store.building(b, scope: .everything) {
            parts.append(building.name)
        }
        if let u = d.unitId, let unit = try? await store.unit(u, scope: .everything) { parts.append(unit.name) }
        if let h = d.householdId, let household = try? await store.household(h, scope: .everything) {
            parts.append(household.room)
        }
        let place = parts.joined(separator: " ")
        return [place, d.location].filter { !$0.isEmpty }.joined(separator: " · ")
    }
}
