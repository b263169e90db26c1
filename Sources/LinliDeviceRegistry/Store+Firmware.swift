import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import LinliThings
import SQLKit

/// A firmware package of a product: the file devices download, with its digests.
public struct Firmware: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var productKey: String
    /// The part of the device it is for (`default`, or `MCU`, `WiFi`…), as Alink names modules.
    public var module: String
    public var version: String
    public var size: Int
    public var sha256: String
    public var md5: String
    /// Relative to the attachments folder.
    public var file: String
    public var createdBy: String
    public var createdAt: Millis
}

extension Firmware: Record { public static let table = "firmware" }

/// Where one device's upgrade to one package stands.
public enum UpgradeStatus: String, Codable, Sendable, CaseIterable {
    /// Not yet offered: the device has not been connected since.
    case waiting
    /// Offered; the device has not said how far it got.
    case offered
    /// The device reports progress.
    case upgrading
    /// The device says the package's version.
    case succeeded
    /// The device reported a failure.
    case failed
    /// A newer upgrade of the same module took its place.
    case superseded

    public var isOpen: Bool { [.waiting, .offered, .upgrading].contains(self) }
}

public struct FirmwareUpgrade: Codable, Sendable, Equatable {
    public var deviceId: ID
    public var firmwareId: ID
    public var communityId: ID
    public var module: String
    public var status: UpgradeStatus
    /// The last step the device reported: 1 to 100, or Alink's failure (-1 to -4); 0 before any.
    public var step: Int
    public var detail: String
    /// SHA-256 of the download token last offered; the token itself is never stored.
    public var tokenHash: String?
    public var createdAt: Millis
    public var updatedAt: Millis
}

extension FirmwareUpgrade: Record {
    public static let table = "firmware_upgrades"
    public var id: ID { deviceId + "/" + firmwareId }
}

/// Why a package is refused.
public enum FirmwareFault: Error, Equatable, CustomStringConvertible {
    case empty, tooLarge(Int)
    public var description: String {
        switch self {
        case .empty: "is empty"
        case let .tooLarge(limit): "is larger than \(limit / 1_048_576) MiB"
        }
    }
}

extension Store {
    /// The largest package kept, the largest upload Linli takes anywhere. Community devices (door
    /// controllers, gates, meters) run firmware of a few MiB; a download is read whole into memory.
    public static let firmwareLimit = 16 * 1_048_576

    /// Keeps a firmware package: it arrived in a temporary file of `folder`, hashed as it came
    /// (never whole in memory), and is renamed into place (so a crash leaves no half file under a
    /// row), then recorded. A version already there for the module is a conflict.
    public func addFirmware(
        productKey: String, communityId: ID, module: String, version: String, file: UploadedFile, folder: String,
        actor: Principal
    ) async throws -> Firmware {
        guard file.size > 0 else { throw FirmwareFault.empty }
        guard file.size <= Self.firmwareLimit else { throw FirmwareFault.tooLarge(Self.firmwareLimit) }
        let taken = try await read { db in
            try await db.count(
                "SELECT COUNT(*) AS n FROM firmware WHERE product_key = \(bind: productKey) AND module = \(bind: module) AND version = \(bind: version)"
            )
        }
        if taken > 0 {
            throw StoreError.conflict(field: "version", reason: "\(version) of module \(module) is already uploaded")
        }
        let id = newID()
        let relative = "firmware/\(productKey)/\(id).bin"
        try file.keep(at: URL(fileURLWithPath: folder).appendingPathComponent(relative))
        let firmware = Firmware(
            id: id, communityId: communityId, productKey: productKey, module: module, version: version,
            size: file.size, sha256: file.sha256, md5: file.md5, file: relative, createdBy: actor.name,
            createdAt: nowMillis())
        try await write { db in
            try await db.insert(firmware)
            try await Change.record(
                db, actor: actor, communityId: communityId, type: "firmware.added", subjectType: "firmware",
                subjectId: id,
                after: ["productKey": productKey, "module": module, "version": version, "sha256": firmware.sha256])
        }
        return firmware
    }

    /// A package already in memory (the demo's, tests'), kept as an upload is.
    public func addFirmware(
        productKey: String, communityId: ID, module: String, version: String, bytes: [UInt8], folder: String,
        actor: Principal
    ) async throws -> Firmware {
        try await addFirmware(
            productKey: productKey, communityId: communityId, module: module, version: version,
            file: UploadWriter.file(bytes, folder: folder), folder: folder, actor: actor)
    }

    public func firmware(productKey: String) async throws -> [Firmware] {
        try await read { db in
            try await db.all(
                Firmware.self,
                "SELECT * FROM firmware WHERE product_key = \(bind: productKey) ORDER BY created_at DESC, id")
        }
    }

    public func firmware(id: ID) async throws -> Firmware? {
        try await read { db in try await db.find(Firmware.self, id) }
    }

    /// Starts upgrading devices to a package: each gets a waiting upgrade (one it had to this
    /// package starts again), and an open upgrade of the same module to another package is
    /// superseded. Returns the upgrades.
    public func startUpgrades(to firmware: Firmware, devices: [Device], actor: Principal) async throws
        -> [FirmwareUpgrade]
    {
        guard !devices.isEmpty else { return [] }
        return try await write { db in
            let now = nowMillis()
            var started: [FirmwareUpgrade] = []
            for device in devices {
                try await db.raw(
                    """
                    UPDATE firmware_upgrades SET status = 'superseded', token_hash = NULL, updated_at = \(bind: now)
                    WHERE device_id = \(bind: device.id) AND module = \(bind: firmware.module) AND firmware_id <> \(bind: firmware.id)
                      AND status IN ('waiting', 'offered', 'upgrading')
                    """
                ).run()
                try await db.raw(
                    "DELETE FROM firmware_upgrades WHERE device_id = \(bind: device.id) AND firmware_id = \(bind: firmware.id)"
                ).run()
                let upgrade = FirmwareUpgrade(
                    deviceId: device.id, firmwareId: firmware.id, communityId: device.communityId,
                    module: firmware.module,
                    status: .waiting, step: 0, detail: "", tokenHash: nil, createdAt: now, updatedAt: now)
                try await db.insert(into: FirmwareUpgrade.table).model(
                    upgrade, keyEncodingStrategy: .convertToSnakeCase, nilEncodingStrategy: .asNil
                ).run()
                started.append(upgrade)
            }
            try await Change.record(
                db, actor: actor, communityId: firmware.communityId, type: "firmware.upgrades.started",
                subjectType: "firmware",
                subjectId: firmware.id, after: ["version": firmware.version, "devices": "\(devices.count)"])
            return started
        }
    }

    /// The products with an open upgrade of one of their devices.
    public func productsWithOpenUpgrades() async throws -> Set<String> {
        struct Row: Decodable { var productKey: String }
        let rows = try await read { db in
            try await db.raw(
                """
                SELECT DISTINCT f.product_key AS "productKey" FROM firmware_upgrades u JOIN firmware f ON f.id = u.firmware_id
                WHERE u.status IN ('waiting', 'offered', 'upgrading')
                """
            ).all(decoding: Row.self)
        }
        return Set(rows.map(\.productKey))
    }

    /// A device's open upgrades, with their packages, newest first.
    public func openUpgrades(of device: Device) async throws -> [(upgrade: FirmwareUpgrade, firmware: Firmware)] {
        try await read { db in
            try await Self.withPackages(
                db,
                try await db.all(
                    FirmwareUpgrade.self,
                    """
                    SELECT * FROM firmware_upgrades WHERE device_id = \(bind: device.id) AND status IN ('waiting', 'offered', 'upgrading')
                    ORDER BY created_at DESC
                    """))
        }
    }

    /// A device's latest upgrades, open or ended, with their packages, newest first.
    public func recentUpgrades(of device: Device, limit: Int = 10) async throws -> [(
        upgrade: FirmwareUpgrade, firmware: Firmware
    )] {
        try await read { db in
            try await Self.withPackages(
                db,
                try await db.all(
                    FirmwareUpgrade.self,
                    """
                    SELECT * FROM firmware_upgrades WHERE device_id = \(bind: device.id) ORDER BY updated_at DESC LIMIT \(literal: limit)
                    """))
        }
    }

    /// Upgrades with their packages, read in one query, in the upgrades' order.
    package static func withPackages(_ db: any SQLDatabase, _ upgrades: [FirmwareUpgrade]) async throws -> [(
        upgrade: FirmwareUpgrade, firmware: Firmware
    )] {
        let packages = try await db.all(
            Firmware.self, "SELECT * FROM firmware WHERE \(SQLQueryString.isIn("id", Set(upgrades.map(\.firmwareId))))")
        let byId = Dictionary(uniqueKeysWithValues: packages.map { ($0.id, $0) })
        return upgrades.compactMap { upgrade in byId[upgrade.firmwareId].map { (upgrade, $0) } }
    }

    /// Offers an open upgrade again: a new download token (the last one stops working), and
    /// `offered` unless the device already reports progress. Returns the token.
    public func offer(_ upgrade: FirmwareUpgrade) async throws -> String {
        let token = Digest.randomToken()
        try await write { db in
            try await db.raw(
                """
                UPDATE firmware_upgrades SET token_hash = \(bind: Digest.sha256Hex(token)), updated_at = \(bind: nowMillis()),
                    status = CASE WHEN status = 'waiting' THEN 'offered' ELSE status END
                WHERE device_id = \(bind: upgrade.deviceId) AND firmware_id = \(bind: upgrade.firmwareId) AND status IN ('waiting', 'offered', 'upgrading')
                """
            ).run()
        }
        return token
    }

    /// The package an open upgrade's download token is for; nil for any other token.
    public func download(token: String) async throws -> Firmware? {
        try await read { db in
            guard
                let upgrade = try await db.all(
                    FirmwareUpgrade.self,
                    """
                    SELECT * FROM firmware_upgrades WHERE token_hash = \(bind: Digest.sha256Hex(token)) AND status IN ('offered', 'upgrading')
                    """
                ).first
            else { return nil }
            return try await db.find(Firmware.self, upgrade.firmwareId)
        }
    }

    /// Records how far a device's open upgrade of `module` got; a failure closes it. Nil when
    /// the device has none open.
    @discardableResult
    public func recordUpgradeProgress(_ device: Device, module: String, step: Int, detail: String) async throws
        -> FirmwareUpgrade?
    {
        try await write { db in
            guard
                var upgrade = try await db.all(
                    FirmwareUpgrade.self,
                    """
                    SELECT * FROM firmware_upgrades WHERE device_id = \(bind: device.id) AND module = \(bind: module) AND status IN ('offered', 'upgrading')
                    ORDER BY created_at DESC
                    """
                ).first
            else { return nil }
            upgrade.step = step
            upgrade.detail = detail
            upgrade.status = step < 0 ? .failed : .upgrading
            upgrade.updatedAt = nowMillis()
            if step < 0 { upgrade.tokenHash = nil }
            try await db.raw(
                """
                UPDATE firmware_upgrades SET step = \(bind: step), detail = \(bind: detail), status = \(bind: upgrade.status.rawValue),
                    token_hash = \(bind: upgrade.tokenHash), updated_at = \(bind: upgrade.updatedAt)
                WHERE device_id = \(bind: upgrade.deviceId) AND firmware_id = \(bind: upgrade.firmwareId)
                """
            ).run()
            if step < 0 {
                try await EventLog.append(
                    db, communityId: device.communityId, type: "device.upgrade.failed", subjectType: "device",
                    subjectId: device.id,
                    actor: .system, payload: ["step": "\(step)", "detail": detail, "firmware": upgrade.firmwareId])
            }
            return upgrade
        }
    }

    /// A device said its version: an open upgrade of the module to that version has succeeded.
    /// Returns the upgrades it closed.
    @discardableResult
    public func finishUpgrades(_ device: Device, module: String, version: String) async throws -> [FirmwareUpgrade] {
        try await write { db in
            let done = try await db.all(
                FirmwareUpgrade.self,
                """
                SELECT u.* FROM firmware_upgrades u JOIN firmware f ON f.id = u.firmware_id
                WHERE u.device_id = \(bind: device.id) AND u.module = \(bind: module) AND f.version = \(bind: version)
                  AND u.status IN ('waiting', 'offered', 'upgrading')
                """)
            for upgrade in done {
                try await db.raw(
                    """
                    UPDATE firmware_upgrades SET status = 'succeeded', step = 100, detail = '', token_hash = NULL, updated_at = \(bind: nowMillis())
                    WHERE device_id = \(bind: upgrade.deviceId) AND firmware_id = \(bind: upgrade.firmwareId)
                    """
                ).run()
                try await EventLog.append(
                    db, communityId: device.communityId, type: "device.upgrade.succeeded", subjectType: "device",
                    subjectId: device.id,
                    actor: .system, payload: ["version": version, "module": module, "firmware": upgrade.firmwareId])
            }
            return done
        }
    }

    /// A product's enabled devices in a community, to upgrade them all.
    public func enabledDevices(productKey: String, communityId: ID) async throws -> [Device] {
        try await read { db in
            try await db.all(
                Device.self,
                """
                SELECT * FROM devices WHERE product_key = \(bind: productKey) AND community_id = \(bind: communityId) AND status <> 'disabled'
                ORDER BY device_name
                """)
        }
    }

    /// A package's upgrades, with their devices' names, by device name.
    public func upgrades(of firmware: Firmware) async throws -> [(upgrade: FirmwareUpgrade, deviceName: String)] {
        struct Named: Decodable {
            package var deviceId: String
            package var deviceName: String
        }
        return try await read { db in
            let upgrades = try await db.all(
                FirmwareUpgrade.self, "SELECT * FROM firmware_upgrades WHERE firmware_id = \(bind: firmware.id)")
            let names = try await db.raw(
                """
                SELECT d.id AS "deviceId", d.device_name AS "deviceName" FROM firmware_upgrades u JOIN devices d ON d.id = u.device_id
                WHERE u.firmware_id = \(bind: firmware.id)
                """
            ).all(decoding: Named.self)
            let byId = Dictionary(uniqueKeysWithValues: names.map { ($0.deviceId, $0.deviceName) })
            return upgrades.map { ($0, byId[$0.deviceId] ?? "") }.sorted { $0.1 < $1.1 }
        }
    }
}
