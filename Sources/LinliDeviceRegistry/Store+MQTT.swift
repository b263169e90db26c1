import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import LinliThings
import SQLKit

/// An account for another system that speaks MQTT to Linli's broker (an NVR publishing
/// `frigate/events`, a zigbee2mqtt bridge): a hashed password and the topics it may use.
public struct MQTTAccount: Codable, Sendable, Equatable {
    public var id: ID
    public var username: String
    public var passwordHash: String
    public var description: String
    /// Topic filters, one per line: where the account may publish, and what it may subscribe to.
    public var publishAcl: String
    public var subscribeAcl: String
    public var status: AccountStatus
    public var createdAt: Millis

    public init(
        id: ID = newID(), username: String, passwordHash: String, description: String, publish: [String],
        subscribe: [String], status: AccountStatus = .active, createdAt: Millis = nowMillis()
    ) {
        self.id = id
        self.username = username
        self.passwordHash = passwordHash
        self.description = description
        publishAcl = publish.joined(separator: "\n")
        subscribeAcl = subscribe.joined(separator: "\n")
        self.status = status
        self.createdAt = createdAt
    }

    public var publishFilters: [String] { publishAcl.split(separator: "\n").map(String.init) }
    public var subscribeFilters: [String] { subscribeAcl.split(separator: "\n").map(String.init) }
}

extension MQTTAccount: Record { public static let table = "mqtt_accounts" }

extension Store {
    public func createMQTTAccount(_ account: MQTTAccount, actor: Principal) async throws {
        try await write { db in
            let taken = try await db.count(
                "SELECT COUNT(*) AS n FROM mqtt_accounts WHERE username = \(bind: account.username)")
            if taken > 0 { throw StoreError.conflict(field: "username", reason: "is already taken") }
            try await db.insert(account)
            var shown = account
            shown.passwordHash = "[hidden]"
            try await Change.record(
                db, actor: actor, communityId: nil, type: "mqtt_account.created", subjectType: "mqtt_account",
                subjectId: account.id, after: shown)
        }
    }

    public func mqttAccount(username: String) async throws -> MQTTAccount? {
        try await read { db in
            try await db.all(MQTTAccount.self, "SELECT * FROM mqtt_accounts WHERE username = \(bind: username)").first
        }
    }

    /// A new password, or a new status, for an integration account. Its clients are checked against
    /// it at their next CONNECT (on every node: each sign-in reads the account, and what a node
    /// remembers of a verified password holds the hash it was verified against).
    public func updateMQTTAccount(
        username: String, passwordHash: String? = nil, status: AccountStatus? = nil, actor: Principal
    ) async throws {
        try await write { db in
            guard
                var account = try await db.all(
                    MQTTAccount.self, "SELECT * FROM mqtt_accounts WHERE username = \(bind: username)"
                ).first
            else { throw StoreError.notFound("MQTT account \(username)") }
            if let passwordHash { account.passwordHash = passwordHash }
            if let status { account.status = status }
            try await db.raw(
                """
                UPDATE mqtt_accounts SET password_hash = \(bind: account.passwordHash), status = \(bind: account.status.rawValue)
                WHERE id = \(bind: account.id)
                """
            ).run()
            try await Change.record(
                db, actor: actor, communityId: nil,
                type: passwordHash != nil ? "mqtt_account.password_changed" : "mqtt_account.status_changed",
                subjectType: "mqtt_account", subjectId: account.id, after: ["status": account.status.rawValue])
        }
    }
}
