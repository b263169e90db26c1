import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
import LinliStorage

/// Firmware packages of a product and upgrades of its devices under /api/v1; the download
/// address devices are given is served by `firmwareDownload`, outside /api/v1.
extension API {
    func registerFirmware(_ api: RouterGroup<AppContext>) {
        api.get("products/:pk/firmware", use: listFirmware)
        api.post("products/:pk/firmware", use: addFirmware)
        api.get("products/:pk/firmware/:id/upgrades", use: listUpgrades)
        api.post("products/:pk/firmware/:id/upgrades", use: startUpgrades)
    }

    struct FirmwareView: Encodable {
        var id: ID
        var productKey: String
        var module: String
        var version: String
        var size: Int
        var sha256: String
        var md5: String
        var createdBy: String
        var createdAt: Millis
        init(_ f: Firmware) {
            id = f.id
            productKey = f.productKey
            module = f.module
            version = f.version
            size = f.size
            sha256 = f.sha256
            md5 = f.md5
            createdBy = f.createdBy
            createdAt = f.createdAt
        }
    }

    struct UpgradeView: Encodable {
        var deviceName: String
        var status: UpgradeStatus
        var step: Int
        var detail: String
        var updatedAt: Millis
    }

    @Sendable func listFirmware(_ request: Request, context: AppContext) async throws -> Response {
        let product = try await visibleProduct(context)
        return try JSON.response([
            "items": try await store.firmware(productKey: product.productKey).map(FirmwareView.init)
        ])
    }

    /// A package as the raw body; `version` (and `module`, default `default`) in the query.
    @Sendable func addFirmware(_ request: Request, context: AppContext) async throws -> Response {
        let product = try await visibleProduct(context)
        try requireCovers(try context.scope(.manageDevices), product.communityId, .manageDevices)
        var q = QueryReader(request)
        let version = q.string("version")
        let module = q.string("module") ?? "default"
        try q.check()
        let faults = Self.packageFaults(version: version, module: module)
        guard faults.isEmpty, let version else { throw Problem.invalid(faults) }
        var request = request
        // Streamed to a temporary file and hashed on the way, not read into memory.
        let file = try await request.bodyFile(folder: uploads, upTo: Store.firmwareLimit + 1)
        do {
            let firmware = try await store.addFirmware(
                productKey: product.productKey, communityId: product.communityId, module: module, version: version,
                file: file, folder: uploads, actor: context.principal)
            return try JSON.response(FirmwareView(firmware), status: .created)
        } catch let fault as FirmwareFault {
            if case .tooLarge = fault {
                throw Problem(
                    .contentTooLarge, type: "too-large", title: "The package is too large", detail: "body \(fault)",
                    errors: [FieldIssue("body", fault.description)])
            }
            throw Problem.invalid([FieldIssue("body", fault.description)])
        }
    }

    /// What is wrong with a package's version and module (from the API's query or the console's
    /// form), by field; nothing when both are good.
    static func packageFaults(version: String?, module: String) -> [FieldIssue] {
        var faults: [FieldIssue] = []
        if let version {
            if version.isEmpty || version.count > 64 || version.contains(where: { $0.isWhitespace }) {
                faults.append(FieldIssue("version", "must be 1 to 64 characters without spaces"))
            }
        } else {
            faults.append(FieldIssue("version", "is required: the version the device will say once upgraded"))
        }
        if module.isEmpty || module.count > 32
            || !module.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
        {
            faults.append(FieldIssue("module", "must be 1 to 32 letters, digits, _ or -"))
        }
        return faults
    }

    /// Starts upgrading devices to a package and offers it to those connected now; how many were
    /// offered. A 409 when devices cannot be given an address to download from.
    func upgrade(_ devices: [Device], to firmware: Firmware, actor: Principal) async throws -> (
        started: [FirmwareUpgrade], offered: Int
    ) {
        guard let gateway = services.devices, gateway.downloadBase.withLock({ $0 }) != nil else {
            throw Problem.conflict(
                "device-url",
                "devices cannot be given a download address: set device-url (Linli listens on every interface), and run the MQTT broker"
            )
        }
        let started = try await store.startUpgrades(to: firmware, devices: devices, actor: actor)
        gateway.upgradesStarted(productKey: firmware.productKey)
        var offered = 0
        for device in devices { offered += await gateway.offerUpgrades(device) }
        return (started, offered)
    }

    /// A package of the product in the path, else 404.
    func visibleFirmware(_ context: AppContext) async throws -> (Product, Firmware) {
        let product = try await visibleProduct(context)
        let id = try context.parameters.require("id")
        guard let firmware = try await store.firmware(id: id), firmware.productKey == product.productKey else {
            throw Problem.notFound("firmware")
        }
        return (product, firmware)
    }

    @Sendable func listUpgrades(_ request: Request, context: AppContext) async throws -> Response {
        let (_, firmware) = try await visibleFirmware(context)
        let items = try await store.upgrades(of: firmware).map {
            UpgradeView(
                deviceName: $0.deviceName, status: $0.upgrade.status, step: $0.upgrade.step,
                detail: $0.upgrade.detail, updatedAt: $0.upgrade.updatedAt)
        }
        return try JSON.response(["items": items])
    }

    struct UpgradeInput: Decodable {
        var devices: [String]?
        var all: Bool?
    }
    struct UpgradesStarted: Encodable {
        var items: [UpgradeView]
        var offered: Int
    }

    /// Starts upgrading devices of the product (`devices` by name, or `all` enabled ones) to the
    /// package; connected devices are offered it at once, the others when they next sign in.
    @Sendable func startUpgrades(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (product, firmware) = try await visibleFirmware(context)
        try requireCovers(try context.scope(.manageDevices), product.communityId, .manageDevices)
        let input = try await request.decodeJSON(UpgradeInput.self, context: context)
        var devices: [Device] = []
        switch (input.devices, input.all) {
        case (nil, true?):
            devices = try await store.enabledDevices(productKey: product.productKey, communityId: product.communityId)
        case let (names?, nil) where !names.isEmpty && names.count <= 1000:
            var faults: [FieldIssue] = []
            for (i, name) in names.enumerated() {
                guard let device = try await store.device(productKey: product.productKey, deviceName: name),
                    device.communityId == product.communityId
                else {
                    faults.append(FieldIssue("devices[\(i)]", "is not a device of this product"))
                    continue
                }
                if device.status == .disabled {
                    faults.append(FieldIssue("devices[\(i)]", "is disabled"))
                    continue
                }
                devices.append(device)
            }
            if !faults.isEmpty { throw Problem.invalid(faults) }
        default:
            throw Problem.invalid([FieldIssue("devices", "give 1 to 1000 device names, or all: true")])
        }
        let (started, offered) = try await upgrade(devices, to: firmware, actor: context.principal)
        let byId = Dictionary(uniqueKeysWithValues: devices.map { ($0.id, $0.deviceName) })
        let items = started.map {
            UpgradeView(
                deviceName: byId[$0.deviceId] ?? "", status: $0.status, step: $0.step, detail: $0.detail,
                updatedAt: $0.updatedAt)
        }
        return try JSON.response(UpgradesStarted(items: items, offered: offered), status: .created)
    }

    /// `GET /ota/{token}`: the package an open upgrade was offered, to the device holding its
    /// token. No account: the device has none; the token (256 random bits, kept only hashed,
    /// replaced at every offer, void once the upgrade ends) is the permission.
    /// The file is streamed from disk in chunks: "upgrade all" sends hundreds of devices here at
    /// once, most of them on slow links, and a whole package held for each while it trickles out
    /// would grow with the package (measured in BENCHMARKS.md, `bench/firmware.sh`).
    @Sendable func firmwareDownload(_ request: Request, context: AppContext) async throws -> Response {
        let token = try context.parameters.require("token")
        guard token.count <= 128, let firmware = try await store.download(token: token) else {
            throw Problem.notFound("download")
        }
        let path = URL(fileURLWithPath: uploads).appendingPathComponent(firmware.file).path
        let body: ResponseBody
        do { body = try await FileIO().loadFile(path: path, context: context) } catch {
            throw Problem.notFound("download")
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "application/octet-stream", .contentLength: "\(firmware.size)",
                .contentDisposition:
                    "attachment; filename=\"\(firmware.productKey)-\(firmware.module)-\(firmware.version).bin\"",
            ],
            body: body)
    }
}
