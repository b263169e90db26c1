import Foundation
import LinliCore
import LinliTestSupport
import SQLKit
import Testing

@testable import LinliCommunity
@testable import LinliStorage

/// The store's writes behind the console's forms, on every engine: a building's, a unit's and a
/// vehicle's details changed with their event and audit line (before and after), a resident
/// registered with their residency together or not at all, and look-ups kept within a scope.
@Suite("Editing the data core in storage")
struct EditingStoreTests {
    static func recorded(_ store: Store, _ type: String, _ subject: ID) async throws -> (events: Int, audit: Int) {
        try await store.read { db in
            (
                try await db.count(
                    "SELECT COUNT(*) AS n FROM events WHERE type = \(bind: type) AND subject_id = \(bind: subject)"),
                try await db.count(
                    "SELECT COUNT(*) AS n FROM audit_log WHERE action = \(bind: type) AND subject_id = \(bind: subject) AND before_json IS NOT NULL"
                )
            )
        }
    }

    @Test(arguments: TestEngine.available)
    func buildingsUnitsAndVehiclesAreChangedAndRecorded(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let here = scope(community: place.community.id)
            var building = place.building
            building.name = "一号楼"
            building.floors = 9
            try await store.updateBuilding(building, actor: tester)
            #expect(try await store.building(building.id, scope: here) == building)
            #expect(try await Self.recorded(store, "building.updated", building.id) == (1, 1))

            var unit = place.unit
            unit.name = "东单元"
            try await store.updateUnit(unit, actor: tester)
            #expect(try await store.unit(unit.id, scope: here).name == "东单元")
            #expect(try await Self.recorded(store, "unit.updated", unit.id) == (1, 1))

            // A second unit may not take the first one's name.
            let second = BuildingUnit(communityId: place.community.id, buildingId: building.id, name: "2单元")
            try await store.createUnit(second, actor: tester)
            var clash = second
            clash.name = "东单元"
            await #expect(throws: (any Error).self) { try await store.updateUnit(clash, actor: tester) }
            #expect(try await store.unit(second.id, scope: here).name == "2单元")

            var vehicle = Vehicle(
                communityId: place.community.id, plate: "浙A12345", householdId: place.households[0].id,
                personId: nil, description: "白色")
            try await store.createVehicle(vehicle, actor: tester)
            vehicle.description = "黑色"
            try await store.updateVehicle(vehicle, actor: tester)
            #expect(try await store.vehicle(vehicle.id, scope: here) == vehicle)
            #expect(try await Self.recorded(store, "vehicle.updated", vehicle.id) == (1, 1))

            // Another community's scope finds none of them.
            let there = try await Place.make(store, name: "别的小区")
            let elsewhere = scope(community: there.community.id)
            await #expect(throws: StoreError.notFound("vehicle")) {
                try await store.vehicle(vehicle.id, scope: elsewhere)
            }
            await #expect(throws: StoreError.notFound("building")) {
                try await store.updateBuilding(
                    Building(communityId: there.community.id, name: "无", floors: 1), actor: tester)
            }
        }
    }

    @Test(arguments: TestEngine.available)
    func aResidentIsRegisteredWithTheirResidencyOrNotAtAll(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let here = scope(community: place.community.id)
            let number = IdentityNumber.withCheckDigit("33010619800101123")
            let person = try store.makePerson(
                communityId: place.community.id,
                PersonInput(name: "王五", phone: "13900000000", identityNumber: number, careTags: [.elderlyAlone]))
            let residency = Residency(
                communityId: place.community.id, personId: person.id, householdId: place.households[0].id,
                role: .owner, movedIn: "2026-01-01")
            try await store.createResident(person, residency, actor: tester)
            #expect(try await store.residency(residency.id, scope: here) == residency)
            let elsewhere = scope(community: try await Place.make(store, name: "别的小区").community.id)
            await #expect(throws: StoreError.notFound("residency")) {
                try await store.residency(residency.id, scope: elsewhere)
            }

            // The same identity number again: neither the person nor the residency is stored.
            let twin = try store.makePerson(
                communityId: place.community.id,
                PersonInput(name: "王六", phone: "", identityNumber: number, careTags: []))
            let second = Residency(
                communityId: place.community.id, personId: twin.id, householdId: place.households[1].id, role: .owner,
                movedIn: "2026-01-01")
            await #expect(throws: (any Error).self) { try await store.createResident(twin, second, actor: tester) }
            let left = try await store.read { db in
                (
                    try await db.count("SELECT COUNT(*) AS n FROM people WHERE id = \(bind: twin.id)"),
                    try await db.count("SELECT COUNT(*) AS n FROM residencies WHERE id = \(bind: second.id)")
                )
            }
            #expect(left == (0, 0))
        }
    }
}
