import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
import LinliStorage
import LinliThings

/// The console's product page: the thing model at a glance, the firmware packages with where
/// their upgrades stand, and (for those who manage devices) uploading a package and upgrading the
/// product's devices to it.
extension WebConsole {
    func registerProducts(_ router: Router<AppContext>) {
        router.get("/console/products/:pk", use: product)
        router.post("/console/products/:pk/firmware", use: uploadFirmware)
        router.post("/console/products/:pk/firmware/:id/upgrade", use: upgradeAll)
    }

    @Sendable func product(_ request: Request, context: AppContext) async throws -> Response {
        try await productPage(request, context: context, error: nil, status: .ok)
    }

    func productPage(_ request: Request, context: AppContext, error: String?, status: HTTPResponse.Status) async throws
        -> Response
    {
        let caller = try context.requireCaller()
        let api = API(services: services)
        let product = try await api.visibleProduct(context)
        let community = try await store.community(
            product.communityId, scope: .everything, memberships: caller.communityIds)
        let model = product.thingModel
        let properties = (model?.properties ?? []).map {
            [
                "identifier": $0.identifier, "name": $0.name, "type": $0.dataType.typeName,
                "access": $0.accessMode.rawValue,
            ]
        }
        let events = (model?.events ?? []).filter { $0.identifier != "post" }.map {
            ["identifier": $0.identifier, "name": $0.name, "type": $0.type.rawValue]
        }
        let services = (model?.services ?? []).filter { !["set", "get"].contains($0.identifier) }.map {
            ["identifier": $0.identifier, "name": $0.name, "type": $0.callType.rawValue]
        }
        var packages: [[String: Any]] = []
        for firmware in try await store.firmware(productKey: product.productKey) {
            let upgrades = try await store.upgrades(of: firmware)
            let counts = Dictionary(grouping: upgrades, by: { $0.upgrade.status }).mapValues(\.count)
            let summary = UpgradeStatus.allCases.compactMap { status in
                counts[status].map { "\(label("upgradeStatus", status.rawValue, context)) \($0)" }
            }.joined(separator: " · ")
            packages.append([
                "id": firmware.id, "version": firmware.version, "module": firmware.module,
                "size": Self.size(firmware.size),
                "sha256": String(firmware.sha256.prefix(12)), "at": Self.time(firmware.createdAt),
                "by": firmware.createdBy,
                "upgrades": summary.isEmpty ? "—" : summary,
            ])
        }
        let devices = try await store.deviceCounts(communityId: product.communityId)[product.productKey] ?? 0
        let canManage = caller.scope(for: .manageDevices).coversCommunity(product.communityId)
        return try pages.render(
            "product",
            [
                "frame": Frame(title: product.name, context: context, community: community), "name": product.name,
                "productKey": product.productKey,
                "nodeType": product.nodeType.rawValue,
                "nodeTypeLabel": label("nodeType", product.nodeType.rawValue, context),
                "dynamicRegistration": product.dynamicRegistration,
                "devices": devices,
                "properties": properties, "events": events, "services": services, "hasEvents": !events.isEmpty,
                "hasServices": !services.isEmpty,
                "packages": packages, "hasPackages": !packages.isEmpty, "canManage": canManage,
                "error": error ?? "", "hasError": error != nil,
            ] as [String: Any], status: status)
    }

    static func size(_ bytes: Int) -> String {
        bytes >= 1_048_576
            ? String(format: "%.1f MiB", Double(bytes) / 1_048_576)
            : bytes >= 1024 ? "\(bytes / 1024) KiB" : "\(bytes) B"
    }

    /// The upload form (multipart: the file, its version and module); the page again, with the
    /// package or with what is wrong.
    @Sendable func uploadFirmware(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let product = try await API(services: services).visibleProduct(context)
        guard try context.requireCaller().scope(for: .manageDevices).coversCommunity(product.communityId) else {
            throw Problem.forbidden(.manageDevices)
        }
        // The package is on disk by now (streamed there), with its digests.
        let form = try await request.multipart(
            context: context, folder: uploads, limit: Store.firmwareLimit + BodyLimit.formOverhead)
        let version = form.field("version")
        let module = form.field("module").isEmpty ? "default" : form.field("module")
        let faults = API.packageFaults(version: version, module: module)
        guard faults.isEmpty else {
            return try await productPage(
                request, context: context, error: faults.map { "\($0.field) \($0.reason)" }.joined(separator: "; "),
                status: .unprocessableContent)
        }
        do {
            guard let file = form.file("file") else { throw FirmwareFault.empty }
            _ = try await store.addFirmware(
                productKey: product.productKey, communityId: product.communityId, module: module, version: version,
                file: file, folder: uploads, actor: context.principal)
        } catch let fault as FirmwareFault {
            return try await productPage(
                request, context: context, error: text("devicesforms.firmwareFile", context, ["reason": "\(fault)"]),
                status: .unprocessableContent)
        } catch let StoreError.conflict(_, reason) {
            return try await productPage(
                request, context: context, error: text("devicesforms.firmwareVersion", context, ["reason": reason]),
                status: .conflict)
        }
        return .redirect(to: "/console/products/\(product.productKey)")
    }

    /// Upgrades every enabled device of the product to a package.
    @Sendable func upgradeAll(_ request: Request, context: AppContext) async throws -> Response {
        let api = API(services: services)
        let product = try await api.visibleProduct(context)
        guard try context.requireCaller().scope(for: .manageDevices).coversCommunity(product.communityId) else {
            throw Problem.forbidden(.manageDevices)
        }
        guard let firmware = try await store.firmware(id: try context.parameters.require("id")),
            firmware.productKey == product.productKey
        else {
            throw Problem.notFound("firmware")
        }
        let devices = try await store.enabledDevices(productKey: product.productKey, communityId: product.communityId)
        do {
            _ = try await api.upgrade(devices, to: firmware, actor: context.principal)
        } catch let problem as Problem where problem.status == .conflict {
            return try await productPage(
                request, context: context, error: problem.detail ?? problem.title, status: .conflict)
        }
        return .redirect(to: "/console/products/\(product.productKey)")
    }
}
