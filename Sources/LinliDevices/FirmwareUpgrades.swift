import Foundation
import LinliAlink
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
import LinliMQTT
import LinliStorage
import LinliThings
import NIOCore

/// Firmware upgrades over Alink: packages offered on a device's upgrade topic, downloaded over
/// HTTP from an address that works only for that device's open upgrade, progress and the new
/// version reported back.
extension DeviceGateway {
    /// Offers a device its open upgrades now, when it is connected; how many were offered. Each
    /// offer makes a new download address (the previous one stops working).
    @discardableResult
    public func offerUpgrades(_ device: Device) async -> Int {
        guard await mayHaveOpenUpgrades(device.productKey),
            let clientId = clientId(productKey: device.productKey, deviceName: device.deviceName),
            let broker = broker.withLock({ $0 }),
            let open = try? await store.openUpgrades(of: device), !open.isEmpty
        else { return 0 }
        var offered = 0
        // One offer a module: the newest open upgrade of each.
        var modules = Set<String>()
        for (upgrade, firmware) in open where modules.insert(upgrade.module).inserted {
            guard let package = try? await package(upgrade, firmware) else { continue }
            let id = Int64(nextRequestId.add(1, ordering: .relaxed).oldValue)
            await broker.send(
                Publish(
                    topic: AlinkOTA.upgradeTopic(device.productKey, device.deviceName),
                    payload: ByteBuffer(bytes: AlinkOTA.offer(package, id: id)), qos: .atLeastOnce), to: clientId)
            offered += 1
        }
        return offered
    }

    /// Whether a product's devices may have open upgrades: false spares a sign-in the lookup.
    package func mayHaveOpenUpgrades(_ productKey: String) async -> Bool {
        let (read, started) = upgradingProducts.withLock { $0 }
        if started.contains(productKey) { return true }
        if let read { return read.contains(productKey) }
        guard let found = try? await store.productsWithOpenUpgrades() else { return true }
        upgradingProducts.withLock { $0.read = found }
        return found.contains(productKey)
    }

    /// Upgrades of a product's devices have started: its devices' sign-ins look for them. Kept
    /// apart from what was read, so that a read racing with this start cannot lose it.
    public func upgradesStarted(productKey: String) {
        _ = upgradingProducts.withLock { $0.started.insert(productKey) }
    }

    /// An open upgrade as the device is told of it, with a fresh download address.
    func package(_ upgrade: FirmwareUpgrade, _ firmware: Firmware) async throws -> AlinkOTA.Package? {
        guard let base = downloadBase.withLock({ $0 }) else { return nil }
        let token = try await store.offer(upgrade)
        return AlinkOTA.Package(
            version: firmware.version, module: firmware.module, size: firmware.size, url: "\(base)/ota/\(token)",
            sha256: firmware.sha256, md5: firmware.md5)
    }

    /// `/ota/device/inform`: the device's version is stored, and an open upgrade to it has succeeded.
    package func firmwareInformed(_ device: Device, payload: Data) async throws {
        guard let params = AlinkRequest.parse(payload)?.params, case let .string(version)? = params["version"],
            !version.isEmpty, version.count <= 64
        else { return }
        let module = params["module"]?.text.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        // The registry's firmware is the device's own (default module) version.
        if module == "default" { try await store.setDeviceFirmware(device, version) }
        let done = try await store.finishUpgrades(device, module: module, version: version)
        if !done.isEmpty {
            logger.info("firmware upgrade succeeded", metadata: ["device": "\(device.key)", "version": "\(version)"])
        }
    }

    /// `/ota/device/progress`: how far the device got; a failure closes the upgrade.
    package func upgradeProgress(_ device: Device, payload: Data) async throws {
        guard let params = AlinkRequest.parse(payload)?.params, let progress = AlinkOTA.progress(params) else {
            logger.notice("upgrade progress not understood", metadata: ["device": "\(device.key)"])
            return
        }
        let detail = progress.detail.isEmpty && progress.failed ? AlinkOTA.failure(progress.step) : progress.detail
        try await store.recordUpgradeProgress(device, module: progress.module, step: progress.step, detail: detail)
    }

    /// `thing.ota.firmware.get`: the device asks for an open upgrade of a module; answered with
    /// the package, or with no data when none waits.
    package func firmwareAsked(_ device: Device, message: Publish) async throws -> PublishCompletion {
        guard let request = AlinkRequest.parse(Data(message.payload.readableBytesView)) else {
            return .replying(
                Self.reply(
                    to: message,
                    AlinkCode.reply(
                        id: "0", code: AlinkCode.invalidRequest, message: "request is not Alink JSON with id and params"
                    )))
        }
        let module = request.params["module"]?.text.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        var data = JSONValue.object([:])
        if let (upgrade, firmware) = try await store.openUpgrades(of: device).first(where: {
            $0.upgrade.module == module
        }),
            let package = try await package(upgrade, firmware)
        {
            data = package.json
        }
        return .replying(
            Self.reply(
                to: message, AlinkCode.reply(id: request.id, code: AlinkCode.success, message: "success", data: data)))
    }
}
