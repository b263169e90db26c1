import Foundation
import Hummingbird
import LinliAlink
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
import LinliStorage
import LinliThings

/// Products (thing models), the device registry, shadow, telemetry and diagnosis under /api/v1.
extension API {
    func registerDevices(_ api: RouterGroup<AppContext>) {
        api.get("product-library", use: productLibrary)
        api.get("communities/:cid/products", use: listProducts)
        api.post("communities/:cid/products", use: createProduct)
        api.get("products/:pk", use: getProduct)
        api.get("communities/:cid/devices", use: listDevices)
        api.post("communities/:cid/devices", use: createDevice)
        api.post("communities/:cid/devices/import", use: importDevices)
        api.get("devices/:pk/:dn", use: getDevice)
        api.patch("devices/:pk/:dn", use: updateDevice)
        api.get("devices/:pk/:dn/shadow", use: getShadow)
        api.put("devices/:pk/:dn/shadow/desired", use: setDesired)
        api.get("devices/:pk/:dn/shadow/document", use: getShadowDocument)
        api.patch("devices/:pk/:dn/shadow/document", use: changeShadowDocument)
        api.get("devices/:pk/:dn/telemetry", use: getTelemetry)
    }

    // MARK: products

    struct LibraryEntry: Encodable {
        var key: String
        var name: String
    }

    @Sendable func productLibrary(_ request: Request, context: AppContext) async throws -> Response {
        _ = try context.scope(.viewDevices)
        return try JSON.response(["items": ProductLibrary.all.map { LibraryEntry(key: $0.key, name: $0.name) }])
    }

    struct ProductView: Encodable {
        var productKey: String
        var name: String
        var communityId: ID
        var libraryKey: String?
        /// "device" or "gateway": a gateway's devices bring sub-devices in.
        var nodeType: NodeType
        /// A gateway may ask for the secrets of this product's devices that never signed in.
        var dynamicRegistration: Bool
        var devices: Int
        var properties: Int
        var events: Int
        var services: Int
        var createdAt: Millis
        /// The thing model in TSL form, on single reads.
        var tsl: JSONValue?
    }

    func view(_ product: Product, devices: Int, withTSL: Bool) -> ProductView {
        let model = product.thingModel
        return ProductView(
            productKey: product.productKey, name: product.name, communityId: product.communityId,
            libraryKey: product.libraryKey, nodeType: product.nodeType,
            dynamicRegistration: product.dynamicRegistration, devices: devices,
            properties: model?.properties.count ?? 0,
            // Counted without TSL's built-in property post event and set/get services.
            events: model?.events.filter { $0.identifier != "post" }.count ?? 0,
            services: model?.services.filter { !["set", "get"].contains($0.identifier) }.count ?? 0,
            createdAt: product.createdAt, tsl: withTSL ? model?.tsl : nil)
    }

    @Sendable func listProducts(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .viewDevices)
        let counts = try await store.deviceCounts(communityId: community.id)
        let items = try await store.products(communityId: community.id).map {
            view($0, devices: counts[$0.productKey] ?? 0, withTSL: false)
        }
        return try JSON.response(["items": items])
    }

    struct ProductInput: Decodable {
        var name: String?
        var library: String?
        var tsl: JSONValue?
        var nodeType: String?
        var dynamicRegistration: Bool?
    }

    @Sendable func createProduct(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageDevices)
        try requireCovers(scope, community.id, .manageDevices)
        let input = try await request.decodeJSON(ProductInput.self, context: context)
        let product = try newProduct(communityId: community.id, input)
        try await store.createProduct(product, actor: context.principal)
        return try JSON.response(view(product, devices: 0, withTSL: true), status: .created)
    }

    /// The product `input` describes, from the product library or a TSL document, checked
    /// (422 naming the field at fault); the form of the console makes its products here too.
    func newProduct(communityId: ID, _ input: ProductInput) throws -> Product {
        var model: ThingModel
        var name = input.name
        switch (input.library, input.tsl) {
        case let (key?, nil):
            guard let entry = ProductLibrary.entry(key) else {
                throw Problem.invalid([
                    FieldIssue("library", "must be one of \(ProductLibrary.all.map(\.key).joined(separator: ", "))")
                ])
            }
            model = entry.model
            name = name ?? entry.name
        case let (nil, tsl?):
            do { model = try ThingModel.parse(tsl) } catch {
                // Paths are JSONPath from the model's root (`$.properties[0]…`): name them from the body.
                let path = error.path.hasPrefix("$") ? String(error.path.dropFirst()) : "." + error.path
                throw Problem.invalid([FieldIssue("tsl" + path, error.reason)])
            }
        default:
            throw Problem.invalid([FieldIssue("library", "give exactly one of library or tsl")])
        }
        var v = Validator()
        let productName = v.text(name ?? model.productKey, "name", max: 100)
        try v.check()
        if let key = model.productKey, !Self.isDeviceToken(key) {
            throw Problem.invalid([FieldIssue("tsl.profile.productKey", "must be 1 to 32 letters, digits or - _ @ . :")]
            )
        }
        let key = model.productKey ?? Product.newKey()
        model.productKey = key
        let nodeType: NodeType
        switch input.nodeType {
        case nil: nodeType = input.library.flatMap(ProductLibrary.entry)?.isGateway == true ? .gateway : .device
        case let name?:
            guard let given = NodeType(rawValue: name) else {
                throw Problem.invalid([FieldIssue("nodeType", "must be device or gateway")])
            }
            nodeType = given
        }
        return Product(
            communityId: communityId, productKey: key, name: productName!, libraryKey: input.library,
            tslJson: String(decoding: model.tsl.serialized(), as: UTF8.self), nodeType: nodeType,
            dynamicRegistration: input.dynamicRegistration ?? false)
    }

    /// A product the caller may see devices of, else 404.
    func visibleProduct(_ context: AppContext) async throws -> Product {
        let scope = try context.scope(.viewDevices)
        let caller = try context.requireCaller()
        let pk = try context.parameters.require("pk")
        guard let product = try await store.product(key: pk),
            scope.everything || scope.communities.contains(product.communityId)
                || caller.communityIds.contains(product.communityId)
        else { throw Problem.notFound("product") }
        return product
    }

    @Sendable func getProduct(_ request: Request, context: AppContext) async throws -> Response {
        let product = try await visibleProduct(context)
        let counts = try await store.deviceCounts(communityId: product.communityId)
        return try JSON.response(view(product, devices: counts[product.productKey] ?? 0, withTSL: true))
    }

    // MARK: devices

    /// Device names and product keys as Alink uses them: they appear in topics and signatures.
    static func isDeviceToken(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 32
            && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_@.:".contains($0)) }
    }

    struct DeviceView: Encodable {
        var id: ID
        var communityId: ID
        var productKey: String
        var deviceName: String
        var nickname: String
        var status: DeviceStatus
        var connected: Bool
        var buildingId: ID?
        var unitId: ID?
        var householdId: ID?
        var personId: ID?
        var location: String
        var tags: [String]
        /// What the device states about itself (maker, model), as it sent them.
        var labels: [String: String]
        var firmware: String
        var reportIntervalSeconds: Int?
        var lastSeenAt: Millis?
        /// Expected to report, and not heard from for longer than its interval.
        var silent: Bool
        var diagnosis: DeviceDiagnosis
        var createdAt: Millis
        var shadow: [ShadowValue]?
        /// The gateway it connects through, when it is a sub-device.
        var gatewayId: ID?
        /// On single reads: that gateway, and for a gateway the sub-devices attached to it.
        var gateway: DeviceRef?
        var subDevices: [DeviceRef]?
    }

    struct DeviceRef: Encodable {
        var productKey: String
        var deviceName: String
        var nickname: String
        var status: DeviceStatus
        var connected: Bool
    }

    func ref(_ d: Device) -> DeviceRef {
        DeviceRef(
            productKey: d.productKey, deviceName: d.deviceName, nickname: d.nickname, status: d.status,
            connected: services.devices?.isConnected(productKey: d.productKey, deviceName: d.deviceName) ?? false)
    }

    func view(_ d: Device, diagnosis: DeviceDiagnosis?, shadow: [ShadowValue]? = nil, now: Millis = nowMillis())
        -> DeviceView
    {
        let diagnosis = diagnosis ?? .none
        let lastSeen = [d.lastSeenAt, diagnosis.lastSeenAt].compactMap { $0 }.max()
        let silent =
            d.status != .disabled
            && d.reportIntervalSeconds.map { interval in now - (lastSeen ?? 0) > Millis(interval) * 1000 } == true
        return DeviceView(
            id: d.id, communityId: d.communityId, productKey: d.productKey, deviceName: d.deviceName,
            nickname: d.nickname, status: d.status,
            connected: services.devices?.isConnected(productKey: d.productKey, deviceName: d.deviceName) ?? false,
            buildingId: d.buildingId, unitId: d.unitId, householdId: d.householdId, personId: d.personId,
            location: d.location, tags: d.tagList, labels: d.labelMap, firmware: d.firmware,
            reportIntervalSeconds: d.reportIntervalSeconds, lastSeenAt: lastSeen, silent: silent, diagnosis: diagnosis,
            createdAt: d.createdAt, shadow: shadow,
            gatewayId: d.gatewayId)
    }

    @Sendable func listDevices(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewDevices)
        var q = QueryReader(request)
        let filter = q.deviceFilter()
        let page = q.page()
        try q.check()
        let found = try await store.devices(communityId: community.id, filter: filter, page: page, scope: scope)
        let diagnosis = try await store.diagnosis(found.items.map(\.id))
        return try JSON.response(
            Page(
                items: found.items.map { view($0, diagnosis: diagnosis[$0.id]) }, total: found.total,
                limit: found.limit, offset: found.offset))
    }

    struct DeviceInput: Decodable {
        var productKey: String
        var deviceName: String
        var nickname: String?
        var buildingId: ID?
        var unitId: ID?
        var householdId: ID?
        var location: String?
        var tags: [String]?
        var reportIntervalSeconds: Int?
        /// Who wears or carries it, for a personal device (an SOS pendant).
        var personId: ID?
    }

    struct Registered: Encodable {
        var device: DeviceView
        /// Shown once: the device signs its MQTT connection with it.
        var deviceSecret: String
    }

    func placement(
        _ v: inout Validator, nickname: String?, buildingId: ID?, unitId: ID?, householdId: ID?, location: String?,
        tags: [String]?,
        reportIntervalSeconds: Int?, prefix: String = ""
    ) -> DevicePlacement {
        var p = DevicePlacement()
        p.nickname = v.text(nickname ?? "", prefix + "nickname", max: 100, required: false) ?? ""
        p.location = v.text(location ?? "", prefix + "location", max: 200, required: false) ?? ""
        p.buildingId = buildingId
        p.unitId = unitId
        p.householdId = householdId
        p.tags = tags ?? []
        if p.tags.count > 20 { v.add(prefix + "tags", "must be at most 20 tags") }
        for (i, tag) in p.tags.enumerated() where tag.isEmpty || tag.count > 32 {
            v.add(prefix + "tags[\(i)]", "must be 1 to 32 characters")
        }
        v.number(reportIntervalSeconds, prefix + "reportIntervalSeconds", in: 10...31_536_000)
        p.reportIntervalSeconds = reportIntervalSeconds
        return p
    }

    /// Placement refusals from storage name a field of the request: 422, not 409.
    func placing<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let StoreError.conflict(field, reason)
            where ["buildingId", "unitId", "householdId", "personId"].contains(field)
        {
            throw Problem.invalid([FieldIssue(field, reason)])
        }
    }

    @Sendable func createDevice(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageDevices)
        try requireCovers(scope, community.id, .manageDevices)
        let input = try await request.decodeJSON(DeviceInput.self, context: context)
        var v = Validator()
        if !Self.isDeviceToken(input.deviceName) { v.add("deviceName", "must be 1 to 32 letters, digits or - _ @ . :") }
        let placement = placement(
            &v, nickname: input.nickname, buildingId: input.buildingId, unitId: input.unitId,
            householdId: input.householdId,
            location: input.location, tags: input.tags, reportIntervalSeconds: input.reportIntervalSeconds)
        try v.check()
        guard let product = try await store.product(key: input.productKey), product.communityId == community.id else {
            throw Problem.invalid([FieldIssue("productKey", "is not a product of this community")])
        }
        var placed = placement
        placed.personId = input.personId
        let (device, secret) = try await placing {
            try await store.registerDevice(
                product: product, deviceName: input.deviceName, placement: placed, actor: context.principal)
        }
        return try JSON.response(
            Registered(device: view(device, diagnosis: nil), deviceSecret: secret), status: .created)
    }

    struct ImportedDevice: Encodable {
        var productKey: String
        var deviceName: String
        var deviceSecret: String
    }
    struct DeviceImportRefused: Encodable {
        var type = "https://linli.dev/problems/invalid"
        var title = "Some rows are not valid; nothing was registered"
        var status = 422
        var errors: [FieldIssue]
    }

    /// Bulk registration from CSV: `productKey,deviceName,nickname,building,unit,room,location,tags,reportIntervalSeconds`
    /// (building, unit and room by name, tags separated by `;`). Every row is checked first; one bad
    /// row registers nothing. The answer carries every triple, secrets included, once.
    @Sendable func importDevices(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageDevices)
        try requireCovers(scope, community.id, .manageDevices)
        let body = try await request.readBody(upTo: BodyLimit.upload)
        if body.readableBytes == 0 { throw Problem.badRequest("body", "must be a UTF-8 CSV file with a header row") }
        let rows: [CSV.Row]
        do { rows = try CSV.parse(utf8: body.readableBytesView) } catch {
            throw Problem.badRequest("body", "cannot be read: \(error.description)")
        }
        let columns = [
            "productKey", "deviceName", "nickname", "building", "unit", "room", "location", "tags",
            "reportIntervalSeconds",
        ]
        guard let header = rows.first, Array(header.fields.prefix(2)) == Array(columns.prefix(2)),
            header.fields.allSatisfy(columns.contains), Set(header.fields).count == header.fields.count
        else {
            throw Problem.badRequest(
                "body",
                "the header must be \(columns.joined(separator: ",")) (the first two required, in that order; each at most once)"
            )
        }
        if rows.count > 5_001 { throw Problem.badRequest("body", "at most 5000 devices per file") }
        let index = Dictionary(uniqueKeysWithValues: header.fields.enumerated().map { ($1, $0) })

        // Names to ids, once: buildings, units and households of the community.
        let buildings = try await store.buildings(communityId: community.id, scope: .everything)
        var units: [ID: [BuildingUnit]] = [:]
        for b in buildings { units[b.id] = try await store.units(buildingId: b.id, scope: .everything) }
        let households = try await store.households(
            communityId: community.id, filter: HouseholdFilter(),
            sort: try ListOrder(nil, allowed: [:], default: "h.id"),
            page: PageRequest(limit: 1_000_000), scope: .everything
        ).items
        var products: [String: Product] = [:]
        var seen: Set<String> = []
        var issues: [FieldIssue] = []
        var entries: [(product: Product, deviceName: String, placement: DevicePlacement)] = []
        for row in rows.dropFirst() {
            func field(_ name: String) -> String? {
                guard let i = index[name], i < row.fields.count else { return nil }
                let value = row.fields[i].trimmingCharacters(in: .whitespaces)
                return value.isEmpty ? nil : value
            }
            let at = "line \(row.line): "
            // A cell past the header has no column and would be dropped unseen, so the row is
            // refused. Fewer cells read as empty: files written by hand leave trailing ones out.
            if row.fields.count > header.fields.count {
                issues.append(
                    FieldIssue(at + "row", "has \(row.fields.count) cells; the header has \(header.fields.count)"))
                continue
            }
            let pk = field("productKey") ?? ""
            if products[pk] == nil, let found = try await store.product(key: pk), found.communityId == community.id {
                products[pk] = found
            }
            if products[pk] == nil {
                issues.append(FieldIssue(at + "productKey", "is not a product of this community"))
                continue
            }
            let name = field("deviceName") ?? ""
            if !Self.isDeviceToken(name) {
                issues.append(FieldIssue(at + "deviceName", "must be 1 to 32 letters, digits or - _ @ . :"))
                continue
            }
            if !seen.insert(pk + "/" + name).inserted {
                issues.append(FieldIssue(at + "deviceName", "appears twice in the file"))
                continue
            }
            if try await store.device(productKey: pk, deviceName: name) != nil {
                issues.append(FieldIssue(at + "deviceName", "\(name) is already registered for this product"))
                continue
            }
            var building: Building?
            var unit: BuildingUnit?
            var household: HouseholdListing?
            if let b = field("building") {
                building = buildings.first { $0.name == b }
                if building == nil {
                    issues.append(FieldIssue(at + "building", "no building named \(b)"))
                    continue
                }
            }
            if let u = field("unit") {
                guard let building else {
                    issues.append(FieldIssue(at + "unit", "needs a building"))
                    continue
                }
                unit = units[building.id]?.first { $0.name == u }
                if unit == nil {
                    issues.append(FieldIssue(at + "unit", "no unit named \(u) in \(building.name)"))
                    continue
                }
            }
            if let r = field("room") {
                guard let unit else {
                    issues.append(FieldIssue(at + "room", "needs a building and a unit"))
                    continue
                }
                household = households.first { $0.unitId == unit.id && $0.room == r }
                if household == nil {
                    issues.append(FieldIssue(at + "room", "no room \(r) in that unit"))
                    continue
                }
            }
            var interval: Int?
            if let text = field("reportIntervalSeconds") {
                interval = Int(text)
                if interval == nil {
                    issues.append(FieldIssue(at + "reportIntervalSeconds", "must be a whole number of seconds"))
                    continue
                }
            }
            var v = Validator()
            let tags = field("tags").map {
                $0.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
            let p = placement(
                &v, nickname: field("nickname"), buildingId: building?.id, unitId: unit?.id, householdId: household?.id,
                location: field("location"), tags: tags, reportIntervalSeconds: interval, prefix: at)
            if !v.issues.isEmpty {
                issues.append(contentsOf: v.issues)
                continue
            }
            entries.append((products[pk]!, name, p))
        }
        if entries.isEmpty && issues.isEmpty { throw Problem.badRequest("body", "has no device rows") }
        if !issues.isEmpty {
            var response = try JSON.response(DeviceImportRefused(errors: issues), status: .unprocessableContent)
            response.headers[.contentType] = "application/problem+json"
            return response
        }
        // One transaction for the whole file: a name taken meanwhile registers nothing (409).
        let made = try await store.registerDevices(entries, actor: context.principal)
        let registered = made.map {
            ImportedDevice(productKey: $0.0.productKey, deviceName: $0.0.deviceName, deviceSecret: $0.secret)
        }
        return try JSON.response(["registered": registered], status: .created)
    }

    /// The device in the path, if the caller may see it (else 404), with the caller's scope for
    /// `capability` (403 when the caller may see the device but not do that to it).
    func visibleDevice(_ context: AppContext, _ capability: Capability = .viewDevices) async throws -> (Device, Scope) {
        let caller = try context.requireCaller()
        let scope = try context.scope(capability)
        let reach = caller.scope(for: .viewDevices).union(scope)
        let pk = try context.parameters.require("pk")
        let dn = try context.parameters.require("dn")
        guard let device = try await store.device(productKey: pk, deviceName: dn, scope: reach) else {
            throw Problem.notFound("device")
        }
        if capability != .viewDevices, try await store.device(productKey: pk, deviceName: dn, scope: scope) == nil {
            throw Problem.forbidden(capability)
        }
        return (device, scope)
    }

    @Sendable func getDevice(_ request: Request, context: AppContext) async throws -> Response {
        let (device, scope) = try await visibleDevice(context)
        let diagnosis = try await store.diagnosis([device.id])[device.id]
        var shown = view(device, diagnosis: diagnosis, shadow: try await store.shadow(device))
        if let gatewayId = device.gatewayId { shown.gateway = try await store.device(id: gatewayId).map(ref) }
        // A gateway's sub-devices may sit anywhere in the community: listed for callers who see it all.
        if try await store.product(key: device.productKey)?.nodeType == .gateway,
            scope.coversCommunity(device.communityId)
        {
            shown.subDevices = try await store.subDevices(of: device).map(ref)
        }
        return try JSON.response(shown)
    }

    struct DevicePatch: Decodable {
        var nickname: String?
        var buildingId: ID?
        var unitId: ID?
        var householdId: ID?
        var location: String?
        var tags: [String]?
        var reportIntervalSeconds: Int?
        var enabled: Bool?
        var personId: ID?
    }

    /// Changes a device. Placement fields go together: giving any of buildingId, unitId,
    /// householdId or location replaces the whole placement (absent ones become empty).
    @Sendable func updateDevice(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        var (device, scope) = try await visibleDevice(context, .manageDevices)
        if !scope.coversCommunity(device.communityId) { throw Problem.forbidden(.manageDevices) }
        try request.requireJSONContentType()
        let body = try await request.readBody(upTo: BodyLimit.json)
        let input: DevicePatch
        do { input = try JSONDecoder().decode(DevicePatch.self, from: body) } catch let error as DecodingError {
            throw Problem.decoding(error)
        }
        let keys = Set(
            ((try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any])?.keys.map { $0 } ?? [])
        var v = Validator()
        let p = placement(
            &v, nickname: input.nickname, buildingId: input.buildingId, unitId: input.unitId,
            householdId: input.householdId,
            location: input.location, tags: input.tags, reportIntervalSeconds: input.reportIntervalSeconds)
        try v.check()
        let placing = !keys.isDisjoint(with: ["buildingId", "unitId", "householdId", "location"])
        let interval: Int?? = keys.contains("reportIntervalSeconds") ? .some(input.reportIntervalSeconds) : .none
        device = try await self.placing {
            try await store.updateDevice(
                device, nickname: keys.contains("nickname") ? p.nickname : nil,
                placement: placing ? (p.buildingId, p.unitId, p.householdId, p.location) : nil,
                tags: keys.contains("tags") ? p.tags : nil, reportIntervalSeconds: interval,
                personId: keys.contains("personId") ? .some(input.personId) : .none, actor: context.principal)
        }
        if let enabled = input.enabled, enabled != (device.status != .disabled) {
            device = try await store.setDeviceEnabled(device, enabled, actor: context.principal)
            // A disabled device loses its connection now, not at its next sign-in; a sub-device's
            // gateway is told either way.
            if !enabled {
                await services.devices?.disconnect(productKey: device.productKey, deviceName: device.deviceName)
            }
            await services.devices?.subDevice(device, was: enabled ? .enabled : .disabled)
        }
        let diagnosis = try await store.diagnosis([device.id])[device.id]
        return try JSON.response(view(device, diagnosis: diagnosis))
    }

    @Sendable func getShadow(_ request: Request, context: AppContext) async throws -> Response {
        let (device, _) = try await visibleDevice(context)
        return try JSON.response(["items": try await store.shadow(device)])
    }

    struct DesiredInput: Decodable { var values: JSONValue }
    struct DesiredResult: Encodable {
        var items: [DesiredValue]
        var delivered: Bool
    }

    /// Sets desired values of writable properties, checked against the thing model. A connected
    /// device gets them at once as a property set; an offline one when it next signs in.
    @Sendable func setDesired(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (device, scope) = try await visibleDevice(context, .operateDevices)
        if !scope.coversCommunity(device.communityId) { throw Problem.forbidden(.operateDevices) }
        let input = try await request.decodeJSON(DesiredInput.self, context: context)
        guard let model = try await thingModel(device.productKey) else {
            throw Problem.conflict("device", "its product has no thing model")
        }
        guard case let .object(values) = input.values, !values.isEmpty else {
            throw Problem.invalid([FieldIssue("values", "must be an object of property values")])
        }
        var faults = model.validateProperties(input.values, writing: true).map {
            FieldIssue("values.\($0.path)", $0.reason)
        }
        // The `{"value", "time"}` wrapper is how devices report; a desired value is the value itself.
        for (identifier, value) in values where model.property(identifier)?.dataType.typeName != "struct" {
            if case .object = value {
                faults.append(FieldIssue("values.\(identifier)", "must be the value itself, not an object"))
            }
        }
        if !faults.isEmpty { throw Problem.invalid(faults) }
        // Kept in the form the device will get (a bool as 0 or 1).
        guard case let .object(normalized) = model.normalizedProperties(input.values) else {
            throw Problem.invalid([FieldIssue("values", "must be an object of property values")])
        }
        let items = try await store.setDesired(
            device,
            normalized.sorted { $0.key < $1.key }.map {
                ($0.key, String(decoding: $0.value.serialized(), as: UTF8.self))
            },
            actor: context.principal)
        let delivered = await services.devices?.deliverDesired(device, timeout: .seconds(5)) ?? false
        return try JSON.response(DesiredResult(items: items, delivered: delivered))
    }

    /// A device's shadow document (Alibaba's device shadow): state, metadata, version, timestamp.
    @Sendable func getShadowDocument(_ request: Request, context: AppContext) async throws -> Response {
        let (device, _) = try await visibleDevice(context)
        return try JSON.response(DeviceGateway.document(try await store.shadowDocument(device)).json)
    }

    /// Changes the desired side of a device's shadow document: `{"desired": {"color": "green"},
    /// "version": 3}`. An attribute set to null is taken out; `"desired": null` takes out all.
    /// Without a version the change goes on top of whatever version is there; with one, it must
    /// be above the document's (409 otherwise), as Alibaba's shadow has it. A connected device
    /// gets the document at once as `control`.
    @Sendable func changeShadowDocument(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (device, scope) = try await visibleDevice(context, .operateDevices)
        if !scope.coversCommunity(device.communityId) { throw Problem.forbidden(.operateDevices) }
        guard case let .object(body) = try await request.decodeJSON(JSONValue.self, context: context) else {
            throw Problem.invalid([FieldIssue("body", "must be an object with desired")])
        }
        var faults = body.keys.sorted().filter { $0 != "desired" && $0 != "version" }.map {
            FieldIssue($0, "is not a field of a shadow change (desired, version)")
        }
        let desired: ShadowRequest.Side?
        switch body["desired"] {
        case nil:
            desired = nil
            faults.append(FieldIssue("desired", "is required: an object of attributes, or null to take out all"))
        case .null?: desired = .clear
        case let .object(items)? where !items.isEmpty && items.count <= ShadowDocument.attributeLimit:
            desired = .attributes(items)
        case .object?:
            desired = nil
            faults.append(FieldIssue("desired", "must name 1 to \(ShadowDocument.attributeLimit) attributes"))
        default:
            desired = nil
            faults.append(FieldIssue("desired", "must be an object of attributes, or null"))
        }
        var version: Int64?
        switch body["version"] {
        case nil, .null?: break
        case let .int(v)? where v >= 1 && v <= ShadowDocument.maximumVersion: version = v
        default:
            faults.append(
                FieldIssue(
                    "version",
                    "must be a whole number above the document's version, at most \(ShadowDocument.maximumVersion)"))
        }
        guard faults.isEmpty, let desired else { throw Problem.invalid(faults) }
        let asked = version
        let now = Int64(nowMillis() / 1000)
        let stored: String
        do {
            stored = try await store.changeShadowDocument(device, actor: context.principal) { json in
                let current = DeviceGateway.document(json)
                // A stored version is at most the maximum, so the next one is a whole number still.
                let next = try current.applying(
                    .update(.init(desired: desired), version: asked ?? min(current.version, Int64.max - 1) + 1), at: now
                )
                return (String(decoding: next.json.serialized(), as: UTF8.self), next.version)
            }
        } catch let fault as ShadowFault {
            switch fault.code {
            case .versionConflict: throw Problem.conflict("version", fault.message)
            case .invalidVersion: throw Problem.invalid([FieldIssue("version", fault.message)])
            default: throw Problem.invalid([FieldIssue("desired", fault.message)])
            }
        }
        let document = DeviceGateway.document(stored)
        let delivered = await services.devices?.pushShadowDocument(device, document) ?? false
        guard case var .object(answer) = document.json else { preconditionFailure("a document is an object") }
        answer["delivered"] = .bool(delivered)
        return try JSON.response(JSONValue.object(answer))
    }

    struct TelemetryResult: Encodable {
        var property: String
        var from: Millis
        var to: Millis
        var bucketSeconds: Int?
        var points: [TelemetryPoint]?
        /// More points than `limit` are in the range: these are the newest; ask again with an earlier `to`.
        var truncated: Bool?
        var buckets: [TelemetryBucket]?
    }

    /// A product's thing model: the device gateway's cached one, or parsed from the store when
    /// the broker is off. Nil for a product without one.
    func thingModel(_ productKey: String) async throws -> ThingModel? {
        if let devices = services.devices { return await devices.model(for: productKey) }
        guard let product = try await store.product(key: productKey) else { return nil }
        return product.thingModel
    }

    /// History of one property: raw points, or with `bucket` (seconds) min/max/avg per bucket.
    /// The range defaults to the last 24 hours; times are epoch milliseconds.
    @Sendable func getTelemetry(_ request: Request, context: AppContext) async throws -> Response {
        let (device, _) = try await visibleDevice(context)
        var q = QueryReader(request)
        let property = q.string("property", max: 64)
        let now = nowMillis()
        let to = Millis(q.int("to", in: 0...Int(Int64.max / 2), default: Int(now) + 1))
        let from = Millis(q.int("from", in: 0...Int(Int64.max / 2), default: max(0, Int(to) - 86_400_000)))
        let bucket = (q.raw("bucket") ?? "").isEmpty ? nil : q.int("bucket", in: 1...31_536_000, default: 60)
        let limit = q.int("limit", in: 1...10_000, default: 1_000)
        if property == nil, (q.raw("property") ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            q.issues.append(FieldIssue("property", "is required: the identifier of a property"))
        }
        // Thing models do not change once made, so a name outside the model has no history.
        if let property, let model = try await thingModel(device.productKey), model.property(property) == nil {
            q.issues.append(FieldIssue("property", "is not a property of this device's product"))
        }
        if from >= to { q.issues.append(FieldIssue("from", "must be before to")) }
        if let bucket, (to - from) / (Millis(bucket) * 1000) > 10_000 {
            q.issues.append(FieldIssue("bucket", "would make more than 10000 buckets; widen it or narrow the range"))
        }
        try q.check()
        if let bucket {
            let buckets = try await store.telemetryBuckets(
                device, identifier: property!, from: from, to: to, bucketMillis: Int64(bucket) * 1000)
            return try JSON.response(
                TelemetryResult(property: property!, from: from, to: to, bucketSeconds: bucket, buckets: buckets))
        }
        var points = try await store.telemetry(device, identifier: property!, from: from, to: to, limit: limit + 1)
        let truncated = points.count > limit
        if truncated { points.removeFirst() }
        return try JSON.response(
            TelemetryResult(property: property!, from: from, to: to, points: points, truncated: truncated))
    }
}

extension QueryReader {
    /// The device listing's filters, shared by the API and the console.
    mutating func deviceFilter() -> DeviceFilter {
        var filter = DeviceFilter()
        filter.productKey = string("productKey", max: 32)
        filter.status = oneOf("status", DeviceStatus.self)
        filter.buildingId = string("buildingId")
        filter.tag = string("tag", max: 32)
        filter.query = string("q")
        filter.silentOnly = bool("silent")
        return filter
    }
}
