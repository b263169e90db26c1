import Foundation
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliMessaging
import LinliStorage
import LinliThings
import LinliWorkOrders
import SQLKit

/// A rule as stored: the definition as JSON text.
package struct RuleRow: Codable, Sendable {
    package var id: ID
    package var communityId: ID
    package var name: String
    package var enabled: Bool
    package var definition: String
    package var createdAt: Millis
    package var updatedAt: Millis

    package init(_ rule: Rule) throws {
        id = rule.id
        communityId = rule.communityId
        name = rule.name
        enabled = rule.enabled
        definition = String(decoding: try EventLog.encoder.encode(rule.definition), as: UTF8.self)
        createdAt = rule.createdAt
        updatedAt = rule.updatedAt
    }

    package var rule: Rule {
        get throws {
            Rule(
                id: id, communityId: communityId, name: name, enabled: enabled,
                definition: try JSONDecoder().decode(RuleDefinition.self, from: Data(definition.utf8)),
                createdAt: createdAt, updatedAt: updatedAt)
        }
    }
}

extension RuleRow: Record { package static let table = "rules" }

package struct TriggerStateRow: Codable, Sendable {
    package var ruleId: ID
    package var triggerIndex: Int
    package var deviceId: ID
    package var since: Millis?
    package var holding: Bool
    package var fired: Bool
}

extension Store {
    public func createRule(_ rule: Rule, actor: Principal) async throws {
        let row = try RuleRow(rule)
        try await write { db in
            try await db.insert(into: RuleRow.table).model(
                row, keyEncodingStrategy: .convertToSnakeCase, nilEncodingStrategy: .asNil
            ).run()
            try await Change.record(
                db, actor: actor, communityId: rule.communityId, type: "rule.created", subjectType: "rule",
                subjectId: rule.id,
                after: ["name": rule.name, "enabled": "\(rule.enabled)"])
        }
    }

    /// Replaces a rule's name, definition and enablement; its trigger states start afresh.
    public func updateRule(_ rule: Rule, actor: Principal) async throws {
        var updated = rule
        updated.updatedAt = nowMillis()
        let row = try RuleRow(updated)
        try await write { db in
            try await db.raw(
                """
                UPDATE rules SET name = \(bind: row.name), enabled = \(bind: row.enabled), definition = \(bind: row.definition), updated_at = \(bind: row.updatedAt)
                WHERE id = \(bind: row.id)
                """
            ).run()
            try await db.raw("DELETE FROM rule_states WHERE rule_id = \(bind: rule.id)").run()
            // Deliveries wait for a rule that still wants them: disabled, it wants none; changed,
            // none to a URL it no longer calls.
            let calling =
                rule.enabled ? Set(rule.definition.actions.filter { $0.type == .webhook }.compactMap(\.url)) : []
            if calling.isEmpty {
                try await Self.cancelDeliveries(db, ruleId: rule.id)
            } else {
                try await Self.cancelDeliveries(db, ruleId: rule.id, keeping: calling)
            }
            try await Change.record(
                db, actor: actor, communityId: rule.communityId, type: "rule.updated", subjectType: "rule",
                subjectId: rule.id,
                after: ["name": rule.name, "enabled": "\(rule.enabled)"])
        }
    }

    public func deleteRule(_ rule: Rule, actor: Principal) async throws {
        try await write { db in
            try await db.raw("DELETE FROM rule_states WHERE rule_id = \(bind: rule.id)").run()
            try await Self.cancelDeliveries(db, ruleId: rule.id)
            try await db.raw("DELETE FROM rules WHERE id = \(bind: rule.id)").run()
            try await Change.record(
                db, actor: actor, communityId: rule.communityId, type: "rule.deleted", subjectType: "rule",
                subjectId: rule.id,
                before: ["name": rule.name])
        }
    }

    public func rule(id: ID) async throws -> Rule? {
        try await read { db in try await db.all(RuleRow.self, "SELECT * FROM rules WHERE id = \(bind: id)").first }.map
        { try $0.rule }
    }

    public func rules(communityId: ID) async throws -> [Rule] {
        try await read { db in
            try await db.all(
                RuleRow.self, "SELECT * FROM rules WHERE community_id = \(bind: communityId) ORDER BY name, id")
        }.map { try $0.rule }
    }

    /// Every enabled rule, for the engine at start.
    public func enabledRules() async throws -> [Rule] {
        try await read { db in
            try await db.all(RuleRow.self, "SELECT * FROM rules WHERE enabled = \(bind: true) ORDER BY id")
        }.map { try $0.rule }
    }

    public func triggerStates() async throws -> [TriggerState] {
        try await read { db in
            try await db.raw("SELECT * FROM rule_states").all(
                decoding: TriggerStateRow.self, keyDecodingStrategy: .snakeCase)
        }.map {
            TriggerState(
                ruleId: $0.ruleId, triggerIndex: $0.triggerIndex, deviceId: $0.deviceId, since: $0.since,
                holding: $0.holding, fired: $0.fired)
        }
    }

    /// Stores what the engine changed, in one transaction.
    public func saveTriggerStates(_ save: [TriggerState], delete: [(ruleId: ID, triggerIndex: Int, deviceId: ID)])
        async throws
    {
        guard !save.isEmpty || !delete.isEmpty else { return }
        try await write { db in
            for d in delete {
                try await db.raw(
                    "DELETE FROM rule_states WHERE rule_id = \(bind: d.ruleId) AND trigger_index = \(bind: d.triggerIndex) AND device_id = \(bind: d.deviceId)"
                ).run()
            }
            for s in save {
                try await db.raw(
                    """
                    INSERT INTO rule_states (rule_id, trigger_index, device_id, since, holding, fired)
                    VALUES (\(bind: s.ruleId), \(bind: s.triggerIndex), \(bind: s.deviceId), \(bind: s.since), \(bind: s.holding), \(bind: s.fired))
                    ON CONFLICT (rule_id, trigger_index, device_id) DO UPDATE SET since = excluded.since, holding = excluded.holding, fired = excluded.fired
                    """
                ).run()
            }
        }
    }

    /// Devices of a product in a community: what a rule's triggers watch. With no product, the
    /// community's devices that are in a household or someone's own (what the absence of a
    /// household or a person watches).
    public func devices(communityId: ID, productKey: String) async throws -> [Device] {
        try await read { db in
            productKey.isEmpty
                ? try await db.all(
                    Device.self,
                    "SELECT * FROM devices WHERE community_id = \(bind: communityId) AND (household_id IS NOT NULL OR person_id IS NOT NULL)"
                )
                : try await db.all(
                    Device.self,
                    "SELECT * FROM devices WHERE community_id = \(bind: communityId) AND product_key = \(bind: productKey)"
                )
        }
    }
}
