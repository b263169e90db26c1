import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import LinliThings
import SQLKit

/// Devices' shadow documents (Alibaba's device shadow), stored as the JSON the device protocol
/// reads and writes, with the document's version beside it so that a change can be made only
/// on top of the version it was computed from.
extension Store {
    /// A device's shadow document as stored; nil before its first change.
    public func shadowDocument(_ device: Device) async throws -> String? {
        struct Row: Decodable { var document: String }
        return try await read { db in
            try await db.raw("SELECT document FROM device_shadow_documents WHERE device_id = \(bind: device.id)").first(
                decoding: Row.self)?.document
        }
    }

    /// Changes a device's shadow document: `change` gets the stored JSON (nil before the first)
    /// and returns the new JSON and its version, or throws to refuse. When another change is
    /// committed between the read and the write, `change` runs again on top of it, so no change
    /// is lost and versions never go back. `actor`: who changed it, for the event and audit
    /// logs (a device's own reports are not logged: they are its state, not an action).
    @discardableResult
    public func changeShadowDocument(
        _ device: Device, actor: Principal?,
        _ change: @escaping @Sendable (String?) throws -> (json: String, version: Int64)
    ) async throws -> String {
        struct Row: Decodable {
            package var document: String
            package var version: Int64
        }
        let lock = rowLock
        for _ in 0..<16 {
            let written: String? = try await write { db in
                let current = try await db.raw(
                    "SELECT document, version FROM device_shadow_documents WHERE device_id = \(bind: device.id)\(lock)"
                ).first(decoding: Row.self)
                let next = try change(current?.document)
                let now = nowMillis()
                let rows: [any SQLRow]
                if let current {
                    rows = try await db.raw(
                        """
                        UPDATE device_shadow_documents SET document = \(bind: next.json), version = \(bind: next.version), updated_at = \(bind: now)
                        WHERE device_id = \(bind: device.id) AND version = \(bind: current.version) RETURNING version
                        """
                    ).all()
                } else {
                    rows = try await db.raw(
                        """
                        INSERT INTO device_shadow_documents (device_id, community_id, document, version, updated_at)
                        VALUES (\(bind: device.id), \(bind: device.communityId), \(bind: next.json), \(bind: next.version), \(bind: now))
                        ON CONFLICT (device_id) DO NOTHING RETURNING version
                        """
                    ).all()
                }
                guard !rows.isEmpty else { return nil }
                if let actor {
                    try await Change.record(
                        db, actor: actor, communityId: device.communityId, type: "device.shadow-document",
                        subjectType: "device",
                        subjectId: device.id, after: JSONValue.parse(Data(next.json.utf8)))
                }
                return next.json
            }
            if let written { return written }
        }
        throw StoreError.conflict(field: "version", reason: "the shadow document kept changing under this change")
    }
}
