import Foundation
import LinliCore
import LinliStorage
import SQLKit

/// The changes the console's forms make beyond what the API's writes already had: a building's,
/// a unit's and a vehicle's details, each recorded (event and audit line, before and after) in
/// the same transaction; and the look-ups of one residency and one vehicle within a scope.
extension Store {
    public func updateBuilding(_ building: Building, actor: Principal) async throws {
        try await replace(building, communityId: building.communityId, type: "building.updated", actor: actor)
    }

    public func updateUnit(_ unit: BuildingUnit, actor: Principal) async throws {
        try await replace(unit, communityId: unit.communityId, type: "unit.updated", actor: actor)
    }

    public func updateVehicle(_ vehicle: Vehicle, actor: Principal) async throws {
        try await replace(vehicle, communityId: vehicle.communityId, type: "vehicle.updated", actor: actor)
    }

    /// Writes `record` over its stored row; `type` is `subject.updated`.
    private func replace<R: Record>(_ record: R, communityId: ID, type: String, actor: Principal) async throws {
        let subject = String(type.prefix { $0 != "." })
        try await write { db in
            guard let before = try await db.find(R.self, record.id) else { throw StoreError.notFound(subject) }
            try await db.update(record)
            try await Change.record(
                db, actor: actor, communityId: communityId, type: type, subjectType: subject, subjectId: record.id,
                before: before, after: record)
        }
    }

    /// One residency, if its household is within `scope`.
    public func residency(_ id: ID, scope: Scope) async throws -> Residency {
        try await one(
            Residency.self, "residency",
            "SELECT r.* FROM residencies r JOIN households h ON h.id = r.household_id WHERE r.id = \(bind: id) AND \(Self.householdScope(scope, alias: "h"))"
        )
    }

    /// One vehicle, if it is within `scope`.
    public func vehicle(_ id: ID, scope: Scope) async throws -> Vehicle {
        try await one(
            Vehicle.self, "vehicle",
            "SELECT v.* FROM vehicles v WHERE v.id = \(bind: id) AND \(Self.vehicleScope(scope))")
    }

    /// A new person and their first residency, together or not at all.
    public func createResident(_ person: Person, _ residency: Residency, actor: Principal) async throws {
        try await write { db in
            try await self.insertPerson(db, person, actor: actor)
            try await self.insertResidency(db, residency, actor: actor)
        }
    }
}
