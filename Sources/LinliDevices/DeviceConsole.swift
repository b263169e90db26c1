import Foundation
import Hummingbird
import LinliBrokerStore
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
import LinliStorage
import LinliThings

/// Console pages for devices: the community's products and devices with live status, and one
/// device's shadow, recent values as an SVG chart, diagnosis, history and a command form.
extension WebConsole {
    func registerDevices(_ router: Router<AppContext>) {
        router.get("/console/c/:cid/devices", use: devices)
        router.get("/console/d/:pk/:dn", use: device)
        router.post("/console/d/:pk/:dn/command", use: deviceCommand)
    }

    struct DeviceRow {
        var productKey: String, deviceName: String, nickname: String, productName: String, status: String,
            statusLabel: String, connected: Bool
        var place: String, tags: [String], lastSeen: String, silent: Bool, messages: Int, errors: Int,
            lastError: String?
    }

    @Sendable func devices(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewDevices)
        var q = QueryReader(request)
        let filter = q.deviceFilter()
        var page = q.page()
        page.limit = min(page.limit, 100)
        try q.check()
        let products = try await store.products(communityId: community.id)
        let counts = try await store.deviceCounts(communityId: community.id)
        let names = Dictionary(uniqueKeysWithValues: products.map { ($0.productKey, $0.name) })
        let found = try await store.devices(communityId: community.id, filter: filter, page: page, scope: scope)
        let diagnosis = try await store.diagnosis(found.items.map(\.id))
        let buildings = Dictionary(
            uniqueKeysWithValues: try await store.buildings(communityId: community.id, scope: .everything).map {
                ($0.id, $0.name)
            })
        let api = API(services: services)
        let rows = found.items.map { d -> DeviceRow in
            let v = api.view(d, diagnosis: diagnosis[d.id])
            let place = [d.buildingId.flatMap { buildings[$0] }, d.location.isEmpty ? nil : d.location].compactMap {
                $0
            }.joined(separator: " · ")
            return DeviceRow(
                productKey: d.productKey, deviceName: d.deviceName, nickname: d.nickname,
                productName: names[d.productKey] ?? d.productKey,
                status: d.status.rawValue, statusLabel: label("deviceStatus", d.status.rawValue, context),
                connected: v.connected, place: place, tags: d.tagList,
                lastSeen: Self.time(v.lastSeenAt), silent: v.silent,
                messages: v.diagnosis.messages, errors: v.diagnosis.errors, lastError: v.diagnosis.lastError)
        }
        struct ProductRow {
            var productKey: String
            var name: String
            var devices: Int
            var selected: Bool
        }
        let productRows = products.map {
            ProductRow(
                productKey: $0.productKey, name: $0.name, devices: counts[$0.productKey] ?? 0,
                selected: $0.productKey == filter.productKey)
        }
        let statuses = DeviceStatus.allCases.map {
            SelectOption(
                value: $0.rawValue, label: label("deviceStatus", $0.rawValue, context), selected: $0 == filter.status)
        }
        return try pages.render(
            "devices",
            [
                "frame": Frame(title: text("nav.devices", context), context: context, community: community),
                "products": productRows,
                "devices": rows,
                "total": found.total, "q": filter.query ?? "", "silent": filter.silentOnly, "statuses": statuses,
                "pager": Self.pager(request, total: found.total, page: page),
                "canManage": context.caller?.scope(for: .manageDevices).coversCommunity(community.id) ?? false,
            ] as [String: Any])
    }

    struct ShadowRow {
        var identifier: String
        var name: String
        var unit: String
        var reported: String
        var reportedAt: String
        var desired: String
        var pending: Bool
    }
    struct EventRow {
        var at: String
        var type: String
        var payload: String
    }

    @Sendable func device(_ request: Request, context: AppContext) async throws -> Response {
        try await devicePage(request, context: context, result: nil, error: nil, status: .ok)
    }

    /// The device page; after a command, with the device's reply or the reason it failed.
    func devicePage(
        _ request: Request, context: AppContext, result: String?, error: String?, status: HTTPResponse.Status,
        chosen: String? = nil, params: String = "", form: [String: String] = [:], faults: [String: String] = [:]
    ) async throws -> Response {
        let caller = try context.requireCaller()
        let api = API(services: services)
        let (d, _) = try await api.visibleDevice(context)
        let community = try await store.community(d.communityId, scope: .everything, memberships: caller.communityIds)
        let product = try await store.product(key: d.productKey)
        let model = product?.thingModel
        let view = api.view(d, diagnosis: try await store.diagnosis([d.id])[d.id])
        let shadow = try await store.shadow(d)
        let byId = Dictionary(uniqueKeysWithValues: shadow.map { ($0.identifier, $0) })
        let shadowRows = (model?.properties.map(\.identifier) ?? shadow.map(\.identifier)).map { id -> ShadowRow in
            let p = model?.property(id)
            let s = byId[id]
            return ShadowRow(
                identifier: id, name: p?.name ?? id, unit: Self.unit(of: p), reported: s?.reported ?? "—",
                reportedAt: Self.time(s?.reportedAt),
                desired: s?.desired ?? "", pending: s?.desired != nil && s?.deliveredAt == nil)
        }

        // Alibaba's shadow document, for devices that keep their settings in one; most have none.
        let document = DeviceGateway.document(try await store.shadowDocument(d))
        let documentState =
            (try? JSONSerialization.data(
                withJSONObject: JSONSerialization.jsonObject(with: document.state.serialized()),
                options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]))
            .map { String(decoding: $0, as: UTF8.self) } ?? ""

        // Firmware upgrades started for it, newest first.
        let upgrades = try await store.recentUpgrades(of: d).map { item -> [String: Any] in
            [
                "version": item.firmware.version, "module": item.firmware.module,
                "status": item.upgrade.status.rawValue,
                "statusLabel": label("upgradeStatus", item.upgrade.status.rawValue, context),
                "step": item.upgrade.step > 0 ? "\(item.upgrade.step)%" : "", "detail": item.upgrade.detail,
                "at": Self.time(item.upgrade.updatedAt),
            ]
        }

        // The chart: a numeric property over the range asked for (a day unless the query says
        // otherwise), its values one by one, or per bucket when there are many.
        let numeric =
            model?.properties.filter { ["int", "float", "double"].contains($0.dataType.typeName) }.map(\.identifier)
            ?? []
        let chosenProperty =
            request.uri.queryParameters.get("property").flatMap { numeric.contains($0) ? $0 : nil } ?? numeric.first
        let range = ChartRange(query: request.uri.queryParameters.get("range").map { String($0) })
        var chart: String? = nil
        var bucketed = false
        if let chosenProperty {
            let to = nowMillis() + 1
            let from = to - range.millis
            let loaded = try await ChartPoint.load(
                store, d, identifier: chosenProperty, range: range, from: from, to: to)
            bucketed = loaded.bucketed
            let name = model?.property(chosenProperty)?.name ?? chosenProperty
            let unit = Self.unit(of: model?.property(chosenProperty))
            let rangeText = text("charts.range.\(range.rawValue)", context)
            chart = DeviceChart.render(
                loaded.points, bucketed: loaded.bucketed, range: range, from: from, to: to, unit: unit,
                words: DeviceChart.Words(
                    axis: unit.isEmpty
                        ? name : text("charts.axis", context, ["name": name, "unit": unit]),
                    timeAxis: text("charts.timeAxis", context),
                    empty: text("charts.empty.\(range.rawValue)", context),
                    label: text("charts.label", context, ["name": name, "range": rangeText]),
                    bucket: text("charts.bucket", context), point: text("charts.point", context)))
        }
        let ranges = ChartRange.allCases.map { r -> [String: Any] in
            var query = [URLQueryItem(name: "range", value: r.rawValue)]
            if let chosenProperty { query.insert(URLQueryItem(name: "property", value: chosenProperty), at: 0) }
            var link = URLComponents()
            link.queryItems = query
            return [
                "code": r.rawValue, "label": text("charts.range.\(r.rawValue)", context),
                "href": link.string ?? "", "current": r == range,
            ]
        }
        let canOperate = caller.scope(for: .operateDevices).coversCommunity(d.communityId)
        let commands = commandForms(model, chosen: chosen, form: form, faults: faults, context: context)
        let events = try await store.read { db in try await EventLog.about(db, subjectId: d.id, limit: 20) }
            .map { EventRow(at: Self.time($0.at), type: $0.type, payload: String($0.payload.prefix(200))) }
        // Gateway and sub-devices, linked both ways.
        let gateway = try await d.gatewayId.asyncMap { try await store.device(id: $0) } ?? nil
        let subDevices =
            product?.nodeType == .gateway && caller.scope(for: .viewDevices).coversCommunity(d.communityId)
            ? try await store.subDevices(of: d).map(api.ref) : []
        // A persistent MQTT session (clean session 0) keeps QoS 1 and 2 messages while the device is
        // away; a full queue drops the newer ones, and the operator should see that.
        let session = try await BrokerSessionStore.sessions(
            in: store.telemetry, usernames: [d.deviceName + "&" + d.productKey]
        ).first
        let canManage = caller.scope(for: .manageDevices).coversCommunity(d.communityId)
        let page: [String: Any] = [
            "canManage": canManage, "place": try await placeText(d), "statusCode": d.status.rawValue,
            "hasSession": session != nil, "sessionKept": session?.kept ?? 0, "sessionDropped": session?.dropped ?? 0,
            "sessionHasDropped": (session?.dropped ?? 0) > 0,
            "sessionSince": Self.time(session?.changedAt), "sessionConnected": session?.connected ?? false,
            "gateway": gateway.map(api.ref) as Any, "hasGateway": gateway != nil,
            "isGateway": product?.nodeType == .gateway, "subDevices": subDevices,
            "hasSubDevices": !subDevices.isEmpty, "manyNumeric": numeric.count > 1,
            "frame": Frame(
                title: d.nickname.isEmpty ? d.deviceName : d.nickname, context: context, community: community),
            "d": view, "productName": product?.name ?? d.productKey, "lastSeen": Self.time(view.lastSeenAt),
            "lastErrorAt": Self.time(view.diagnosis.lastErrorAt),
            "hasLabels": !view.labels.isEmpty,
            "labels": view.labels.sorted { $0.key < $1.key }.map { ["key": $0.key, "value": $0.value] },
            "upgrades": upgrades, "hasUpgrades": !upgrades.isEmpty,
            "shadow": shadowRows, "hasDocument": document.version > 0, "documentVersion": document.version,
            "documentAt": Self.time(document.timestamp * 1000),
            "documentState": documentState,
            "numeric": numeric.map {
                SelectOption(value: $0, label: model?.property($0)?.name ?? $0, selected: $0 == chosenProperty)
            },
            "chart": chart ?? "", "ranges": ranges, "range": range.rawValue,
            "chartTitle": text("charts.title", context),
            "bucketed": bucketed, "bucketNote": text("charts.bucketed.\(range.rawValue)", context),
            "hasChart": chart != nil, "canOperate": canOperate, "commands": commands, "events": events,
            "params": params, "advancedOpen": !params.isEmpty && params != "{}",
            "result": result ?? "", "hasResult": result != nil, "error": error ?? "", "hasError": error != nil,
        ]
        return try pages.render("device", page, status: status)
    }

    /// A numeric property's unit as the thing model gives it ("°C", "%"), empty when it has none.
    static func unit(of property: ThingModel.Property?) -> String {
        switch property?.dataType {
        case let .int(spec)?, let .float(spec)?, let .double(spec)?: spec.unit ?? ""
        default: ""
        }
    }

    /// Sends a property set or a service call from the form and shows the device's reply.
    @Sendable func deviceCommand(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (d, scope) = try await API(services: services).visibleDevice(context, .operateDevices)
        if !scope.coversCommunity(d.communityId) { throw Problem.forbidden(.operateDevices) }
        let form = try await request.formFields(context: context)
        let service = form["service"] ?? ""
        let advanced = (form["params"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let model = try await store.product(key: d.productKey)?.thingModel
        func fail(_ message: String, _ status: HTTPResponse.Status, faults: [String: String] = [:]) async throws
            -> Response
        {
            try await devicePage(
                request, context: context, result: nil, error: message, status: status, chosen: service,
                params: advanced, form: form, faults: faults)
        }
        // The fields the thing model gave the command, unless its JSON was written under "advanced".
        let params: JSONValue
        if !advanced.isEmpty, advanced != "{}" {
            guard let written = JSONValue.parse(Data(advanced.utf8)), case .object = written else {
                return try await fail(text("devicesforms.command.paramsJSON", context), .unprocessableContent)
            }
            params = written
        } else {
            let (filled, faults) = CommandForm.parameters(model, service: service, form: form)
            if !faults.isEmpty {
                return try await fail(text("devicesforms.command.fix", context), .unprocessableContent, faults: faults)
            }
            if filled.isEmpty, service == Self.setProperties {
                return try await fail(text("devicesforms.command.nothing", context), .unprocessableContent)
            }
            params = .object(filled)
        }
        guard let gateway = services.devices else {
            return try await fail(text("devicesforms.command.noBroker", context), .serviceUnavailable)
        }
        let command: DeviceGateway.Command =
            service == Self.setProperties ? .setProperties(params) : .callService(service, params)
        let reply: JSONValue
        do {
            reply = try await gateway.send(
                command, productKey: d.productKey, deviceName: d.deviceName, timeout: .seconds(10))
        } catch {
            switch error {
            case .offline: return try await fail(text("devicesforms.command.offline", context), .conflict)
            case let .unknownService(name):
                return try await fail(
                    text("devicesforms.command.unknownService", context, ["service": name]), .unprocessableContent)
            case let .invalid(faults):
                // Each fault beside the field of its property or input, in the page's words.
                var byField: [String: String] = [:]
                for fault in faults {
                    let identifier = String(fault.path.prefix { $0 != "." && $0 != "[" })
                    if byField[identifier] == nil { byField[identifier] = fault.reason }
                }
                return try await fail(
                    text("devicesforms.command.fix", context), .unprocessableContent, faults: byField)
            case .noThingModel: return try await fail(text("devicesforms.command.noModel", context), .conflict)
            case let .timedOut(waited):
                return try await fail(
                    text("devicesforms.command.timeout", context, ["seconds": String(waited.components.seconds)]),
                    .gatewayTimeout)
            }
        }
        let replyText = String(decoding: reply.serialized(), as: UTF8.self)
        try await store.write { db in
            try await Change.record(
                db, actor: context.principal, communityId: d.communityId, type: "device.command", subjectType: "device",
                subjectId: d.id,
                after: ["method": service, "reply": replyText])
        }
        return try await devicePage(
            request, context: context, result: replyText, error: nil, status: .ok, chosen: service, params: advanced,
            form: form)
    }
}
