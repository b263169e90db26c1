import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import LinliThings
import SQLKit

/// A kind of device in a community, with its thing model (TSL JSON).
public struct Product: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var productKey: String
    public var name: String
    public var libraryKey: String?
    public var tslJson: String
    /// A device that connects by itself, or a gateway that may also bring sub-devices in.
    public var nodeType: NodeType
    public var createdAt: Millis
    /// A gateway may ask for the secret of this product's registered devices that have never
    /// signed in (Alink's sub-device registration), so their secrets need not be copied onto it.
    public var dynamicRegistration: Bool

    public init(
        id: ID = newID(), communityId: ID, productKey: String, name: String, libraryKey: String?, tslJson: String,
        nodeType: NodeType = .device, createdAt: Millis = nowMillis(), dynamicRegistration: Bool = false
    ) {
        self.id = id
        self.communityId = communityId
        self.productKey = productKey
        self.name = name
        self.libraryKey = libraryKey
        self.tslJson = tslJson
        self.nodeType = nodeType
        self.createdAt = createdAt
        self.dynamicRegistration = dynamicRegistration
    }

    /// Eleven characters like Alibaba IoT's ProductKeys: letters and digits.
    public static func newKey() -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var g = SystemRandomNumberGenerator()
        return "a1" + String((0..<9).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &g)] })
    }
}

extension Product: Record { public static let table = "products" }

/// Alibaba IoT's node types, less the sub-device one: any device may connect through a gateway.
public enum NodeType: String, Codable, Sendable, CaseIterable {
    case device, gateway
}

public enum DeviceStatus: String, Codable, Sendable, CaseIterable {
    case inactive, online, offline, disabled
}

public struct Device: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var productId: ID
    public var productKey: String
    public var deviceName: String
    /// What people call it ("3号楼1单元烟感"); the device name is what the device calls itself.
    public var nickname: String
    /// The device secret, encrypted; shown once when the device is registered.
    public var secretCipher: String
    public var status: DeviceStatus
    /// Where it is: a household, or a unit or building, or a public area named in `location`.
    public var buildingId: ID?
    public var unitId: ID?
    public var householdId: ID?
    public var location: String
    /// JSON array of tags, as stored.
    public var tags: String
    public var firmware: String
    /// How often the device is expected to report; silence longer than this shows as "silent".
    public var reportIntervalSeconds: Int?
    /// Last sign-in, sign-out or message, kept to the minute for messages (exact in diagnosis).
    public var lastSeenAt: Millis?
    public var createdAt: Millis
    /// The gateway this device connects through, when it is a sub-device.
    public var gatewayId: ID?
    /// Who wears or carries it (an SOS pendant, a smart bracelet), when it is someone's own.
    public var personId: ID? = nil
    /// JSON object of the labels the device states about itself (its maker, model), as stored.
    public var labels: String = "{}"

    public var tagList: [String] { (try? JSONDecoder().decode([String].self, from: Data(tags.utf8))) ?? [] }

    public var labelMap: [String: String] {
        (try? JSONDecoder().decode([String: String].self, from: Data(labels.utf8))) ?? [:]
    }

    public static func encodeTags(_ tags: [String]) -> String {
        String(decoding: (try? JSONEncoder().encode(tags)) ?? Data("[]".utf8), as: UTF8.self)
    }
}

extension Device: Record { public static let table = "devices" }

/// Where a device is and how it is known, as given when registering or editing it.
public struct DevicePlacement: Sendable, Equatable {
    public var nickname: String = ""
    public var buildingId: ID? = nil
    public var unitId: ID? = nil
    public var householdId: ID? = nil
    public var location: String = ""
    public var tags: [String] = []
    public var reportIntervalSeconds: Int? = nil
    /// Who wears or carries it, for a personal device.
    public var personId: ID? = nil
    public init() {}
}

public struct DeviceFilter: Sendable {
    public var productKey: String?
    public var status: DeviceStatus?
    public var buildingId: ID?
    public var tag: String?
    public var query: String?
    /// Devices with a report interval that have not been heard from for longer than it.
    public var silentOnly = false
    public init() {}
}

extension Store {
    // MARK: products

    public func createProduct(_ product: Product, actor: Principal) async throws {
        try await write { db in
            let taken = try await db.count(
                "SELECT COUNT(*) AS n FROM products WHERE product_key = \(bind: product.productKey)")
            if taken > 0 { throw StoreError.conflict(field: "productKey", reason: "is already in use") }
            try await db.insert(product)
            try await Change.record(
                db, actor: actor, communityId: product.communityId, type: "product.created", subjectType: "product",
                subjectId: product.id,
                after: ["productKey": product.productKey, "name": product.name])
        }
    }

    public func product(key: String) async throws -> Product? {
        try await read { db in
            try await db.all(Product.self, "SELECT * FROM products WHERE product_key = \(bind: key)").first
        }
    }

    public func products(communityId: ID) async throws -> [Product] {
        try await read { db in
            try await db.all(
                Product.self,
                "SELECT * FROM products WHERE community_id = \(bind: communityId) ORDER BY name, product_key")
        }
    }

    /// Devices per product of a community, for listings.
    public func deviceCounts(communityId: ID) async throws -> [String: Int] {
        struct Row: Decodable {
            package var productKey: String
            package var n: Int
        }
        let rows = try await read { db in
            try await db.raw(
                "SELECT product_key AS \"productKey\", COUNT(*) AS n FROM devices WHERE community_id = \(bind: communityId) GROUP BY product_key"
            ).all(decoding: Row.self)
        }
        return Dictionary(uniqueKeysWithValues: rows.map { ($0.productKey, $0.n) })
    }

    // MARK: registry

    /// Registers a device and returns it with its secret in clear, the only time it is shown.
    public func registerDevice(
        product: Product, deviceName: String, placement: DevicePlacement = DevicePlacement(), actor: Principal
    ) async throws -> (Device, secret: String) {
        let registered = try await registerDevices([(product, deviceName, placement)], actor: actor)
        return registered[0]
    }

    public func registerDevices(
        product: Product, _ entries: [(deviceName: String, placement: DevicePlacement)], actor: Principal
    ) async throws -> [(Device, secret: String)] {
        try await registerDevices(entries.map { (product, $0.deviceName, $0.placement) }, actor: actor)
    }

    /// Registers devices in one transaction: all or none.
    public func registerDevices(
        _ entries: [(product: Product, deviceName: String, placement: DevicePlacement)], actor: Principal
    ) async throws -> [(Device, secret: String)] {
        var made: [(Device, secret: String)] = []
        for (product, name, placement) in entries {
            let secret = Digest.randomToken(bytes: 24)
            let device = Device(
                id: newID(), communityId: product.communityId, productId: product.id, productKey: product.productKey,
                deviceName: name,
                nickname: placement.nickname, secretCipher: try cipher.encrypt(secret), status: .inactive,
                buildingId: placement.buildingId,
                unitId: placement.unitId, householdId: placement.householdId, location: placement.location,
                tags: Device.encodeTags(placement.tags),
                firmware: "", reportIntervalSeconds: placement.reportIntervalSeconds, lastSeenAt: nil,
                createdAt: nowMillis(),
                personId: placement.personId)
            made.append((device, secret))
        }
        let devices = made.map(\.0)
        try await write { db in
            for device in devices {
                try await Self.checkPlacement(
                    db, communityId: device.communityId, buildingId: device.buildingId, unitId: device.unitId,
                    householdId: device.householdId,
                    personId: device.personId)
                let taken = try await db.count(
                    "SELECT COUNT(*) AS n FROM devices WHERE product_key = \(bind: device.productKey) AND device_name = \(bind: device.deviceName)"
                )
                if taken > 0 {
                    throw StoreError.conflict(
                        field: "deviceName", reason: "\(device.deviceName) is already registered for this product")
                }
                try await db.insert(device)
                var shown = device
                shown.secretCipher = "[hidden]"
                try await Change.record(
                    db, actor: actor, communityId: device.communityId, type: "device.registered", subjectType: "device",
                    subjectId: device.id, after: shown)
            }
        }
        return made
    }

    /// A building, unit or household named for a device must be in the device's community, and
    /// consistent with each other.
    package static func checkPlacement(
        _ db: any SQLDatabase, communityId: ID, buildingId: ID?, unitId: ID?, householdId: ID?, personId: ID? = nil
    ) async throws {
        if let personId,
            try await db.count(
                "SELECT COUNT(*) AS n FROM people WHERE id = \(bind: personId) AND community_id = \(bind: communityId)")
                == 0
        {
            throw StoreError.conflict(field: "personId", reason: "is not a person of this community")
        }
        if let buildingId,
            try await db.count(
                "SELECT COUNT(*) AS n FROM buildings WHERE id = \(bind: buildingId) AND community_id = \(bind: communityId)"
            ) == 0
        {
            throw StoreError.conflict(field: "buildingId", reason: "is not a building of this community")
        }
        if let unitId {
            let n = try await db.count(
                "SELECT COUNT(*) AS n FROM units WHERE id = \(bind: unitId) AND community_id = \(bind: communityId)"
                    + (buildingId.map { " AND building_id = \(bind: $0)" } ?? ""))
            if n == 0 {
                throw StoreError.conflict(field: "unitId", reason: "is not a unit of this community (and building)")
            }
        }
        if let householdId {
            var q: SQLQueryString =
                "SELECT COUNT(*) AS n FROM households WHERE id = \(bind: householdId) AND community_id = \(bind: communityId)"
            if let buildingId { q += " AND building_id = \(bind: buildingId)" }
            if let unitId { q += " AND unit_id = \(bind: unitId)" }
            if try await db.count(q) == 0 {
                throw StoreError.conflict(
                    field: "householdId", reason: "is not a household of this community (and building and unit)")
            }
        }
    }

    public func device(productKey: String, deviceName: String) async throws -> Device? {
        try await read { db in
            try await db.all(
                Device.self,
                "SELECT * FROM devices WHERE product_key = \(bind: productKey) AND device_name = \(bind: deviceName)"
            ).first
        }
    }

    /// A device the caller may see, or nil (the API answers 404 either way).
    public func device(productKey: String, deviceName: String, scope: Scope) async throws -> Device? {
        try await read { db in
            try await db.all(
                Device.self,
                "SELECT * FROM devices d WHERE d.product_key = \(bind: productKey) AND d.device_name = \(bind: deviceName) AND \(Self.deviceScope(scope, alias: "d"))"
            ).first
        }
    }

    package static func deviceScope(_ scope: Scope, alias a: String) -> SQLQueryString {
        if scope.everything { return "1 = 1" }
        var parts: [SQLQueryString] = []
        if !scope.communities.isEmpty { parts.append(.isIn("\(a).community_id", scope.communities)) }
        if !scope.buildings.isEmpty { parts.append(.isIn("\(a).building_id", scope.buildings)) }
        if !scope.households.isEmpty { parts.append(.isIn("\(a).household_id", scope.households)) }
        return .any(parts)
    }

    public func devices(
        communityId: ID, filter: DeviceFilter, page: PageRequest, scope: Scope, now: Millis = nowMillis()
    ) async throws -> Page<Device> {
        var condition: SQLQueryString =
            "d.community_id = \(bind: communityId) AND \(Self.deviceScope(scope, alias: "d"))"
        if let pk = filter.productKey { condition += " AND d.product_key = \(bind: pk)" }
        if let s = filter.status { condition += " AND d.status = \(bind: s.rawValue)" }
        if let b = filter.buildingId { condition += " AND d.building_id = \(bind: b)" }
        if let t = filter.tag {
            // The tag as it appears inside the stored JSON array, quotes included, wildcards taken literally.
            let quoted = String(Device.encodeTags([t]).dropFirst().dropLast())
                .replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                .replacingOccurrences(of: "_", with: "\\_")
            condition += " AND d.tags LIKE \(bind: "%" + quoted + "%") ESCAPE '\\'"
        }
        if let q = filter.query, !q.isEmpty {
            let pattern = SQLQueryString.containsPattern(q)
            condition +=
                " AND (LOWER(d.device_name) LIKE \(bind: pattern) ESCAPE '\\' OR LOWER(d.nickname) LIKE \(bind: pattern) ESCAPE '\\')"
        }
        if filter.silentOnly {
            // Silent: expected to report, not disabled, and nothing heard for longer than the interval.
            // The registry's last-seen time trails by up to a minute (it is refreshed once a minute
            // under a stream of posts), so the filter allows that minute before calling a device silent.
            condition +=
                " AND d.report_interval_seconds IS NOT NULL AND d.status <> 'disabled' AND (d.last_seen_at IS NULL OR d.last_seen_at < \(bind: now - 60_000) - d.report_interval_seconds * 1000)"
        }
        let whereClause = condition
        return try await read { db in
            let items = try await db.all(
                Device.self,
                "SELECT d.* FROM devices d WHERE \(whereClause) ORDER BY d.product_key, d.device_name LIMIT \(literal: page.limit) OFFSET \(literal: page.offset)"
            )
            let total = try await db.count("SELECT COUNT(*) AS n FROM devices d WHERE \(whereClause)")
            return Page(items: items, total: total, limit: page.limit, offset: page.offset)
        }
    }

    /// Changes how a device is known and where it is; nil fields stay as they are.
    public func updateDevice(
        _ device: Device, nickname: String?,
        placement: (buildingId: ID?, unitId: ID?, householdId: ID?, location: String)?,
        tags: [String]?, reportIntervalSeconds: Int??, personId: ID?? = nil, actor: Principal
    ) async throws -> Device {
        var after = device
        if let personId { after.personId = personId }
        if let nickname { after.nickname = nickname }
        if let placement {
            after.buildingId = placement.buildingId
            after.unitId = placement.unitId
            after.householdId = placement.householdId
            after.location = placement.location
        }
        if let tags { after.tags = Device.encodeTags(tags) }
        if let reportIntervalSeconds { after.reportIntervalSeconds = reportIntervalSeconds }
        let updated = after
        try await write { db in
            try await Self.checkPlacement(
                db, communityId: updated.communityId, buildingId: updated.buildingId, unitId: updated.unitId,
                householdId: updated.householdId,
                personId: updated.personId)
            try await db.raw(
                """
                UPDATE devices SET nickname = \(bind: updated.nickname), building_id = \(bind: updated.buildingId), unit_id = \(bind: updated.unitId),
                household_id = \(bind: updated.householdId), location = \(bind: updated.location), tags = \(bind: updated.tags),
                report_interval_seconds = \(bind: updated.reportIntervalSeconds), person_id = \(bind: updated.personId) WHERE id = \(bind: updated.id)
                """
            ).run()
            var before = device
            var shown = updated
            before.secretCipher = "[hidden]"
            shown.secretCipher = "[hidden]"
            try await Change.record(
                db, actor: actor, communityId: updated.communityId, type: "device.updated", subjectType: "device",
                subjectId: updated.id, before: before, after: shown)
        }
        return updated
    }

    /// Disables a device (it can no longer sign in) or enables it again (it is offline until it does).
    public func setDeviceEnabled(_ device: Device, _ enabled: Bool, actor: Principal) async throws -> Device {
        var updated = device
        updated.status = enabled ? (device.status == .disabled ? .offline : device.status) : .disabled
        let status = updated.status
        try await write { db in
            try await db.raw("UPDATE devices SET status = \(bind: status.rawValue) WHERE id = \(bind: device.id)").run()
            try await Change.record(
                db, actor: actor, communityId: device.communityId, type: enabled ? "device.enabled" : "device.disabled",
                subjectType: "device",
                subjectId: device.id, before: ["status": device.status.rawValue], after: ["status": status.rawValue])
        }
        return updated
    }

    public func deviceSecret(_ device: Device) throws -> String { try cipher.decrypt(device.secretCipher) }

    /// Records that devices' secrets were given to a gateway (sub-device registration): who
    /// holds a secret is a security question, so each is on the audit log.
    public func recordSecretsIssued(_ devices: [Device], to gateway: Device, actor: Principal) async throws {
        guard !devices.isEmpty else { return }
        try await write { db in
            for device in devices {
                try await AuditLog.record(
                    db, actor: actor, action: "device.secret.issued", subjectType: "device", subjectId: device.id,
                    communityId: device.communityId, after: ["gateway": "\(gateway.productKey)/\(gateway.deviceName)"])
            }
        }
    }

    /// Online and offline transitions are domain events; the rules of a later issue watch them.
    /// A disabled device stays disabled when its last connection ends. Returns once the change is
    /// committed; changes made at the same moment share a transaction (`CommitQueue`).
    public func setDeviceStatus(_ device: Device, _ status: DeviceStatus) async throws {
        try await statusChanges.commit(StatusChange(device: device, status: status, at: nowMillis())) { changes in
            try await write { db in
                for change in changes {
                    let device = change.device
                    try await db.raw(
                        """
                        UPDATE devices SET status = \(bind: change.status.rawValue), last_seen_at = \(bind: change.at)
                        WHERE id = \(bind: device.id) AND status <> 'disabled'
                        """
                    ).run()
                    try await EventLog.append(
                        db, communityId: device.communityId, type: "device.\(change.status.rawValue)",
                        subjectType: "device", subjectId: device.id,
                        actor: .system, payload: ["productKey": device.productKey, "deviceName": device.deviceName])
                }
            }
        }
    }

    /// At start, before the broker listens, no device is connected: any the registry still shows
    /// online (the last run was killed, or stopped before every sign-out was written) is set
    /// offline, with its `device.offline` event like any other. Returns how many.
    @discardableResult
    public func settleDevicesLeftOnline() async throws -> Int {
        try await write { db in
            struct Row: Decodable {
                package var id: ID
                package var communityId: ID
                package var productKey: String
                package var deviceName: String
            }
            let rows = try await db.raw(
                """
                SELECT id, community_id AS "communityId", product_key AS "productKey", device_name AS "deviceName"
                FROM devices WHERE status = 'online'
                """
            ).all(decoding: Row.self)
            for row in rows {
                try await db.raw(
                    "UPDATE devices SET status = 'offline' WHERE id = \(bind: row.id) AND status = 'online'"
                ).run()
                try await EventLog.append(
                    db, communityId: row.communityId, type: "device.offline", subjectType: "device", subjectId: row.id,
                    actor: .system,
                    payload: [
                        "productKey": row.productKey, "deviceName": row.deviceName, "reason": "the server restarted",
                    ])
            }
            return rows.count
        }
    }

    /// The firmware version a device reports (Alink's OTA inform).
    public func setDeviceFirmware(_ device: Device, _ version: String) async throws {
        guard version != device.firmware else { return }
        try await write { db in
            try await db.raw("UPDATE devices SET firmware = \(bind: version) WHERE id = \(bind: device.id)").run()
            try await EventLog.append(
                db, communityId: device.communityId, type: "device.firmware", subjectType: "device",
                subjectId: device.id,
                actor: .system, payload: ["from": device.firmware, "to": version])
        }
    }

    /// Sets and takes out labels a device states about itself; the labels after. More than
    /// `limit` labels in all is refused, and nothing changes.
    @discardableResult
    public func changeDeviceLabels(_ device: Device, set: [(key: String, value: String)], remove: [String], limit: Int)
        async throws -> [String: String]
    {
        let lock = rowLock
        return try await write { db in
            struct Row: Decodable { var labels: String }
            let stored =
                try await db.raw("SELECT labels FROM devices WHERE id = \(bind: device.id)\(lock)").first(
                    decoding: Row.self)?.labels ?? "{}"
            let before = (try? JSONDecoder().decode([String: String].self, from: Data(stored.utf8))) ?? [:]
            var after = before
            for (key, value) in set { after[key] = value }
            for key in remove { after[key] = nil }
            guard after.count <= limit else {
                throw StoreError.conflict(
                    field: "labels", reason: "a device holds at most \(limit) labels; it would hold \(after.count)")
            }
            guard after != before else { return after }
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            let json = String(decoding: try encoder.encode(after), as: UTF8.self)
            try await db.raw("UPDATE devices SET labels = \(bind: json) WHERE id = \(bind: device.id)").run()
            let changed = Set(after.keys).union(before.keys).filter { after[$0] != before[$0] }.sorted()
            try await EventLog.append(
                db, communityId: device.communityId, type: "device.labels", subjectType: "device", subjectId: device.id,
                actor: .system, payload: ["changed": changed.joined(separator: ",")])
            return after
        }
    }

    /// Keeps the registry's last-seen times current to the minute without a write per message:
    /// the telemetry writer calls this for devices whose stored time has grown stale.
    public func touchDevices(_ seen: [ID: Millis]) async throws {
        guard !seen.isEmpty else { return }
        try await database.write { db in
            for (id, at) in seen.sorted(by: { $0.key < $1.key }) {
                try await db.raw(
                    "UPDATE devices SET last_seen_at = \(bind: at) WHERE id = \(bind: id) AND (last_seen_at IS NULL OR last_seen_at < \(bind: at))"
                ).run()
            }
        }
    }
}

// MARK: gateways and sub-devices

extension Store {
    /// Attaches sub-devices to a gateway in one transaction, replacing any earlier gateway of theirs.
    /// The caller has checked that each is in the gateway's community and proved by its signature.
    public func attachSubDevices(_ subDevices: [Device], to gateway: Device, actor: Principal) async throws {
        guard !subDevices.isEmpty else { return }
        try await write { db in
            for sub in subDevices {
                try await db.raw(
                    "UPDATE devices SET gateway_id = \(bind: gateway.id) WHERE id = \(bind: sub.id) AND community_id = \(bind: gateway.communityId)"
                ).run()
                guard sub.gatewayId != gateway.id else { continue }
                try await Change.record(
                    db, actor: actor, communityId: sub.communityId, type: "device.topology.added",
                    subjectType: "device", subjectId: sub.id,
                    before: sub.gatewayId.map { ["gatewayId": $0] },
                    after: ["gatewayId": gateway.id, "gateway": "\(gateway.productKey)/\(gateway.deviceName)"])
            }
        }
    }

    /// Detaches sub-devices from a gateway; those attached elsewhere are left as they are.
    /// Returns the ones that were detached.
    @discardableResult
    public func detachSubDevices(_ subDevices: [Device], from gateway: Device, actor: Principal) async throws
        -> [Device]
    {
        try await write { db in
            var detached: [Device] = []
            for sub in subDevices {
                let rows = try await db.all(
                    Device.self,
                    "UPDATE devices SET gateway_id = NULL WHERE id = \(bind: sub.id) AND gateway_id = \(bind: gateway.id) RETURNING *"
                )
                guard let row = rows.first else { continue }
                detached.append(row)
                try await Change.record(
                    db, actor: actor, communityId: sub.communityId, type: "device.topology.removed",
                    subjectType: "device", subjectId: sub.id,
                    before: ["gatewayId": gateway.id, "gateway": "\(gateway.productKey)/\(gateway.deviceName)"])
            }
            return detached
        }
    }

    /// The devices attached to a gateway, by product key and name.
    public func subDevices(of gateway: Device) async throws -> [Device] {
        try await read { db in
            try await db.all(
                Device.self,
                "SELECT * FROM devices WHERE gateway_id = \(bind: gateway.id) ORDER BY product_key, device_name")
        }
    }

    public func device(id: ID) async throws -> Device? {
        try await read { db in try await db.all(Device.self, "SELECT * FROM devices WHERE id = \(bind: id)").first }
    }
}

/// A device going online or offline, as the broker saw it.
package struct StatusChange: Sendable {
    package var device: Device
    package var status: DeviceStatus
    package var at: Millis
}
