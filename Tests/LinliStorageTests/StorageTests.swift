import Foundation
import LinliCore
import LinliServer
import LinliTestSupport
import SQLKit
import Testing

@testable import LinliCommunity
@testable import LinliStorage

@Suite("Storage on every engine")
struct StorageTests {
    @Test(arguments: TestEngine.available)
    func migrationsAreCurrentAndRefuseNewerDatabases(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            #expect(
                try await Migrations.currentVersion(store.database, ledger: Schema.linli.coreLedger)
                    == Schema.linli.latest)
            #expect(
                try await Migrations.migrate(store.database, ledger: Schema.linli.coreLedger).isEmpty,
                "a second run applies nothing")
            try await Migrations.requireCurrent(store.database, ledger: Schema.linli.coreLedger)
            try await store.write { db in
                try await db.raw(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'from the future', 0)"
                ).run()
            }
            await #expect(throws: MigrationError.self) {
                try await Migrations.requireCurrent(store.database, ledger: Schema.linli.coreLedger)
            }
            await #expect(throws: MigrationError.self) {
                try await Migrations.migrate(store.database, ledger: Schema.linli.coreLedger)
            }
        }
    }

    @Test(arguments: TestEngine.available)
    func eventLogIsOrderedScopedAndCheckpointed(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let a = try await Place.make(store, name: "甲")
            let b = try await Place.make(store, name: "乙")
            let all = try await store.read { db in try await EventLog.read(db, after: 0, limit: 100, scope: .everything)
            }
            #expect(all.count == 10, "community, building, unit and two households for each")
            #expect(all.map(\.seq) == all.map(\.seq).sorted())
            #expect(
                Set(all.map(\.type)) == ["community.created", "building.created", "unit.created", "household.created"])
            let onlyA = try await store.read { db in
                try await EventLog.read(db, after: 0, limit: 100, scope: scope(community: a.community.id))
            }
            #expect(onlyA.count == 5 && onlyA.allSatisfy { $0.communityId == a.community.id })
            _ = b
            try await store.write { db in try await EventLog.saveCheckpoint(db, consumer: "test", seq: all[3].seq) }
            try await store.write { db in try await EventLog.saveCheckpoint(db, consumer: "test", seq: all[4].seq) }
            #expect(try await store.read { db in try await EventLog.checkpoint(db, consumer: "test") } == all[4].seq)
            let rest = try await store.read { db in
                try await EventLog.read(db, after: all[4].seq, limit: 100, scope: .everything)
            }
            #expect(rest.count == 5)
            // A failed transaction leaves neither the change nor its event.
            let before = try await store.read { db in try await EventLog.latestSeq(db) }
            await #expect(throws: (any Error).self) {
                try await store.write { db in
                    try await EventLog.append(
                        db, communityId: a.community.id, type: "test.event", subjectType: "x", subjectId: "y",
                        actor: tester, payload: ["a": 1])
                    try await db.raw("INSERT INTO no_such_table VALUES (1)").run()
                }
            }
            #expect(try await store.read { db in try await EventLog.latestSeq(db) } == before)
        }
    }

    @Test(arguments: TestEngine.available)
    func eventSubscribersWakeOnCommitWithoutMissingOne(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            // A commit between noting the generation and waiting is not missed: the wait returns at once.
            let before = await store.signal.generation
            _ = try await Place.make(store)
            let start = ContinuousClock.now
            await store.signal.wait(since: before, timeout: .seconds(30))
            #expect(ContinuousClock.now - start < .seconds(5))
            // A waiter parked before the commit is woken by it.
            let now = await store.signal.generation
            async let waited: Void = store.signal.wait(since: now, timeout: .seconds(30))
            try await store.createBuilding(
                Building(
                    communityId: (try await store.communities(scope: .everything, memberships: [])).first!.id,
                    name: "唤醒楼", floors: 1), actor: tester)
            await waited
            #expect(ContinuousClock.now - start < .seconds(10))
        }
    }
}

@Suite("Event subscriptions")
struct EventSubscriptionTests {
    @Test(arguments: TestEngine.available)
    func durableConsumersResumeAfterTheirCheckpoint(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            _ = try await Place.make(store)  // five events
            var seen: [DomainEvent] = []
            for try await event in store.events(from: .checkpoint(consumer: "rules")) {
                seen.append(event)
                if seen.count == 3 { break }
            }
            #expect(seen.map(\.type) == ["community.created", "building.created", "unit.created"])
            try await store.acknowledge(consumer: "rules", through: seen[1].seq)
            // A new subscription (as after a restart) starts right after the acknowledged event.
            var iterator = store.events(from: .checkpoint(consumer: "rules")).makeAsyncIterator()
            #expect(try await iterator.next()?.seq == seen[2].seq)
            // And it waits for, then delivers, events committed later.
            _ = try await iterator.next()
            _ = try await iterator.next()
            async let later = iterator.next()
            try await Task.sleep(for: .milliseconds(50))
            let building = Building(communityId: seen[0].communityId!, name: "后来楼", floors: 2)
            try await store.createBuilding(building, actor: tester)
            let next = try await later
            #expect(next?.subjectId == building.id)
        }
    }
}
