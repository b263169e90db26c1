import Foundation
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliServer
import LinliStorage
import Logging
import SQLKit
import Testing

/// The engines every storage test runs on: SQLite always, PostgreSQL when
/// LINLI_TEST_POSTGRES_URL is set (as .ci/run sets it). Each test gets an empty database: a new
/// SQLite file, or a new PostgreSQL schema.
package enum TestEngine: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    package static var available: [TestEngine] {
        ProcessInfo.processInfo.environment["LINLI_TEST_POSTGRES_URL"].map {
            $0.isEmpty ? [.sqlite] : [.sqlite, .postgres]
        } ?? [.sqlite]
    }

    package var testDescription: String { rawValue }

    package static let logger: Logger = {
        var l = Logger(label: "test")
        l.logLevel = .warning
        return l
    }()

    package func open() async throws -> Store {
        let store = try await openUnmigrated()
        try await Migrations.migrate(store, schema: .linli)
        return store
    }

    /// A store over an empty database, before any migration.
    package func openUnmigrated() async throws -> Store {
        let database: any Database
        switch self {
        case .sqlite:
            let path = NSTemporaryDirectory() + "linli-test-\(UUID().uuidString).sqlite"
            database = try await SQLiteStore.open(path: path, readers: 2, logger: Self.logger)
        case .postgres:
            let url = ProcessInfo.processInfo.environment["LINLI_TEST_POSTGRES_URL"]!
            let schema = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
            let admin = try await PostgresStore.open(url: url, logger: Self.logger)
            try await admin.write { db in try await db.raw("CREATE SCHEMA \(unsafeRaw: schema)").run() }
            await admin.close()
            database = try await PostgresStore.open(url: url, searchPath: schema, logger: Self.logger)
        }
        return Store(database: database, cipher: try FieldCipher(secret: FieldCipher.randomSecret()))
    }
}

/// Runs `body` with a fresh store on `engine`, closing it afterwards.
package func withStore(_ engine: TestEngine, _ body: (Store) async throws -> Void) async throws {
    let store = try await engine.open()
    do {
        try await body(store)
    } catch {
        await store.database.close()
        throw error
    }
    await store.database.close()
}

package let tester = Principal(accountId: nil, name: "test")

/// A small community: one building, one unit, two households.
package struct Place {
    package var community: Community
    package var building: Building
    package var unit: BuildingUnit
    package var households: [Household]

    package static func make(_ store: Store, name: String = "测试小区") async throws -> Place {
        let community = Community(
            name: name, cityCode: "330100", districtCode: "330106", streetCode: "330106001", address: "测试路 1 号")
        try await store.createCommunity(community, actor: tester)
        let building = Building(communityId: community.id, name: "1号楼", floors: 6)
        try await store.createBuilding(building, actor: tester)
        let unit = BuildingUnit(communityId: community.id, buildingId: building.id, name: "1单元")
        try await store.createUnit(unit, actor: tester)
        var households: [Household] = []
        for room in ["101", "102"] {
            let h = Household(
                communityId: community.id, buildingId: building.id, unitId: unit.id, room: room, floor: 1, area: 88.5,
                occupancy: .ownerOccupied)
            try await store.createHousehold(h, actor: tester)
            households.append(h)
        }
        return Place(community: community, building: building, unit: unit, households: households)
    }
}

package func scope(community: ID) -> Scope {
    var s = Scope()
    s.communities = [community]
    return s
}
