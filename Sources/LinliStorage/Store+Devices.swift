import Foundation
import LinliCore
import SQLKit

/// A kind of device in a community, with its thing model (TSL JSON).
public struct Product: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var productKey: String
    public var name: String
    public var libraryKey: String?
    public var tslJson: String
    public var createdAt: Millis

    public init(id: ID = newID(), communityId: ID, productKey: String, name: String, libraryKey: String?, tslJson: String, createdAt: Millis = nowMillis()) {
        self.id = id; self.communityId = communityId; self.productKey = productKey; self.name = name
        self.libraryKey = libraryKey; self.tslJson = tslJson; self.createdAt = createdAt
    }

    /// Eleven characters like Alibaba IoT's ProductKeys: letters and digits.
    public static func newKey() -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var g = SystemRandomNumberGenerator()
        return "a1" + String((0..<9).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &g)] })
    }
}

extension Product: Record { public static let table = "products" }

public enum DeviceStatus: String, Codable, Sendable {
    case inactive, online, offline, disabled
}

public struct Device: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var productId: ID
    public var productKey: String
    public var deviceName: String
    /// The device secret, encrypted; shown once when the device is registered.
    public var secretCipher: String
    public var status: DeviceStatus
    public var householdId: ID?
    public var location: String
    public var firmware: String
    public var lastSeenAt: Millis?
    public var createdAt: Millis
}

extension Device: Record { public static let table = "devices" }

extension Store {
    public func createProduct(_ product: Product, actor: Principal) async throws {
        try await write { db in
            try await db.insert(product)
            try await Change.record(db, actor: actor, communityId: product.communityId, type: "product.created", subjectType: "product", subjectId: product.id,
                                    after: ["productKey": product.productKey, "name": product.name])
        }
    }

    public func product(key: String) async throws -> Product? {
        try await read { db in try await db.all(Product.self, "SELECT * FROM products WHERE product_key = \(bind: key)").first }
    }

    /// Registers a device and returns it with its secret in clear, the only time it is shown.
    public func registerDevice(product: Product, deviceName: String, householdId: ID? = nil, location: String = "", actor: Principal) async throws -> (Device, secret: String) {
        let secret = Digest.randomToken(bytes: 24)
        let device = Device(id: newID(), communityId: product.communityId, productId: product.id, productKey: product.productKey, deviceName: deviceName,
                            secretCipher: try cipher.encrypt(secret), status: .inactive, householdId: householdId, location: location, firmware: "",
                            lastSeenAt: nil, createdAt: nowMillis())
        try await write { db in
            let taken = try await db.count("SELECT COUNT(*) AS n FROM devices WHERE product_key = \(bind: product.productKey) AND device_name = \(bind: deviceName)")
            if taken > 0 { throw StoreError.conflict(field: "deviceName", reason: "is already registered for this product") }
            try await db.insert(device)
            var shown = device
            shown.secretCipher = "[hidden]"
            try await Change.record(db, actor: actor, communityId: device.communityId, type: "device.registered", subjectType: "device", subjectId: device.id, after: shown)
        }
        return (device, secret)
    }

    public func device(productKey: String, deviceName: String) async throws -> Device? {
        try await read { db in
            try await db.all(Device.self, "SELECT * FROM devices WHERE product_key = \(bind: productKey) AND device_name = \(bind: deviceName)").first
        }
    }

    public func deviceSecret(_ device: Device) throws -> String { try cipher.decrypt(device.secretCipher) }

    /// Online and offline transitions are domain events; the rules of a later issue watch them.
    public func setDeviceStatus(_ device: Device, _ status: DeviceStatus) async throws {
        try await write { db in
            try await db.raw("UPDATE devices SET status = \(bind: status.rawValue), last_seen_at = \(bind: nowMillis()) WHERE id = \(bind: device.id)").run()
            try await EventLog.append(db, communityId: device.communityId, type: "device.\(status.rawValue)", subjectType: "device", subjectId: device.id,
                                      actor: .system, payload: ["productKey": device.productKey, "deviceName": device.deviceName])
        }
    }
}
