import Foundation
import LinliCore
import LinliDemo
import LinliServer
import SQLKit
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliDevices
@testable import LinliHTTP
@testable import LinliLinkage
@testable import LinliMessaging
@testable import LinliStorage
@testable import LinliWorkOrders

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
    func householdsListSortAndPageWithinScope(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let here = try await Place.make(store)
            let there = try await Place.make(store, name: "别的小区")
            let page = try await store.households(
                communityId: here.community.id, filter: HouseholdFilter(),
                sort: try ListOrder("-room", allowed: Store.householdSortColumns, default: "h.id"),
                page: PageRequest(limit: 1, offset: 0), scope: scope(community: here.community.id))
            #expect(page.total == 2)
            #expect(page.items.map(\.room) == ["102"])
            #expect(page.items[0].buildingName == "1号楼" && page.items[0].unitName == "1单元")
            #expect(page.items[0].area == 88.5)
            // Another community's scope sees nothing here, and the single read is a not-found.
            let foreign = try await store.households(
                communityId: here.community.id, filter: HouseholdFilter(),
                sort: try ListOrder(nil, allowed: [:], default: "h.id"),
                page: PageRequest(), scope: scope(community: there.community.id))
            #expect(foreign.total == 0 && foreign.items.isEmpty)
            await #expect(throws: StoreError.notFound("household")) {
                try await store.household(here.households[0].id, scope: scope(community: there.community.id))
            }
            // A resident's scope reaches their own household only.
            var own = Scope()
            own.households = [here.households[0].id]
            let mine = try await store.households(
                communityId: here.community.id, filter: HouseholdFilter(),
                sort: try ListOrder(nil, allowed: [:], default: "h.id"), page: PageRequest(), scope: own)
            #expect(mine.items.map(\.id) == [here.households[0].id])
            #expect(try await store.buildings(communityId: here.community.id, scope: own).count == 1)
        }
    }

    @Test(arguments: TestEngine.available)
    func duplicateRoomIsAConflictNotACrash(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let again = Household(
                communityId: place.community.id, buildingId: place.building.id, unitId: place.unit.id, room: "101",
                floor: 1, area: nil, occupancy: .vacant)
            do {
                try await store.createHousehold(again, actor: tester)
                Issue.record("a duplicate room was stored")
            } catch {
                #expect(error.isUniqueViolation)
            }
        }
    }

    @Test(arguments: TestEngine.available)
    func identityNumbersAreEncryptedAtRestAndFoundByExactNumber(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let number = IdentityNumber.withCheckDigit("33010619800101123")
            let person = try await store.createPerson(
                communityId: place.community.id,
                PersonInput(name: "王芳", phone: "13800138000", identityNumber: number, careTags: [.elderlyAlone]),
                actor: tester)
            let raw = try await store.read { db in
                try await db.raw("SELECT identity_cipher, identity_masked FROM people WHERE id = \(bind: person.id)")
                    .first()
            }
            let cipherText = try #require(try raw?.decode(column: "identity_cipher", as: String?.self))
            #expect(!cipherText.contains(number) && cipherText.hasPrefix("v1:"))
            #expect(try raw?.decode(column: "identity_masked", as: String?.self) == IdentityNumber.masked(number))
            // No identity number in the event log or the audit trail, not even encrypted.
            let logged = try await store.read { db in
                try await db.raw("SELECT payload FROM events").all().map {
                    try $0.decode(column: "payload", as: String.self)
                }
            }
            #expect(!logged.joined().contains(number) && !logged.joined().contains(cipherText))
            let found = try await store.people(
                communityId: place.community.id, filter: PeopleFilter(query: number),
                sort: try ListOrder(nil, allowed: [:], default: "p.id"),
                page: PageRequest(), scope: scope(community: place.community.id), fullPhone: false)
            #expect(found.items.map(\.id) == [person.id])
            #expect(found.items[0].phone == "138****8000")
            #expect(found.items[0].careTags == [.elderlyAlone])
            let revealed = try await store.revealIdentity(
                personId: person.id, scope: scope(community: place.community.id), actor: tester)
            #expect(revealed == number)
            let audit = try await store.read { db in
                try await AuditLog.list(
                    db, scope: .everything, action: "person.identity.read", subjectId: person.id, page: PageRequest())
            }
            #expect(audit.total == 1)
            // The same number twice in one community is a conflict.
            await #expect(throws: StoreError.self) {
                _ = try await store.createPerson(
                    communityId: place.community.id,
                    PersonInput(name: "王芳", phone: "", identityNumber: number, careTags: []), actor: tester)
            }
        }
    }

    @Test(arguments: TestEngine.available)
    func outboundCopiesWaitForQuietHoursButNotForCriticalAlarms(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let c = place.community.id
            let account = Account(username: "grid1", displayName: "网格员", passwordHash: "x")
            try await store.createAccount(account, actor: tester)
            let clock = DateFormatter()
            clock.dateFormat = "HH:mm"
            let now = nowMillis()
            let from = clock.string(from: Date(timeIntervalSince1970: Double(now) / 1000 - 3600))
            let to = clock.string(from: Date(timeIntervalSince1970: Double(now) / 1000 + 3600))
            try await store.setNotificationPreferences(
                accountId: account.id, sms: true, email: true, phone: "13800138000", address: "grid@example.org",
                quietFrom: from, quietTo: to, actor: tester)
            let who = [Recipient(accountId: account.id, name: "网格员")]
            try await store.notify(
                who, communityId: c, title: "垃圾桶满 Bin full", body: "b", severity: "minor", link: nil, subjectType: nil,
                subjectId: nil, actor: tester)
            try await store.notify(
                who, communityId: c, title: "烟雾 Smoke", body: "b", severity: "critical", link: nil, subjectType: nil,
                subjectId: nil, actor: tester)
            let pending = try await store.outboundMessages(communityId: c, status: .pending, page: PageRequest()).items
            #expect(pending.count == 4 && Set(pending.map(\.addressMasked)) == ["138****8000", "g***@example.org"])
            #expect(
                pending.filter { $0.severity == "critical" }.allSatisfy { $0.dueAt <= now + 5_000 },
                "critical alarms do not wait")
            #expect(
                pending.filter { $0.severity == "minor" }.allSatisfy { $0.dueAt >= now + 58 * 60_000 },
                "the rest waits for the end of the quiet hours")
            // Only the critical copies are due; claimed, they are not handed out twice.
            let due = try await store.claimDueOutbound(now: nowMillis(), limit: 10)
            #expect(Set(due.map(\.channel)) == [.sms, .email] && due.allSatisfy { $0.subject == "烟雾 Smoke" })
            #expect(try await store.claimDueOutbound(now: nowMillis(), limit: 10).isEmpty)
            let sms = try #require(due.first { $0.channel == .sms })
            let retry = try await store.recordOutbound(sms, error: "HTTP 503", now: now)
            #expect(retry.status == .pending && retry.attempts == 1 && retry.dueAt == now + 30_000)
            var last = retry
            for _ in Store.outboundBackoff { last = try await store.recordOutbound(last, error: "HTTP 503", now: now) }
            #expect(last.status == .failed)
            #expect(
                try await store.recordOutbound(try #require(due.first { $0.channel == .email }), error: nil).status
                    == .sent)
            let events = try await store.read { db in
                try await EventLog.read(db, after: 0, limit: 500, scope: .everything)
            }
            #expect(
                events.filter { $0.type == "notification.delivered" }.count == 1
                    && events.filter { $0.type == "notification.undelivered" }.count == 1)
            // The phone and address are kept encrypted.
            let row = try #require(
                try await store.read { db in
                    try await db.raw("SELECT phone_cipher, email_cipher FROM notification_preferences").first()
                })
            let phone = try row.decode(column: "phone_cipher", as: String.self)
            let address = try row.decode(column: "email_cipher", as: String.self)
            #expect(!phone.contains("13800138000") && !address.contains("grid@example.org"))
            #expect(
                try store.cipher.decrypt(phone) == "13800138000" && store.cipher.decrypt(address) == "grid@example.org")
            #expect(try await store.notificationPreferences(accountId: account.id).quietHours != nil)
        }
    }

    @Test(arguments: TestEngine.available)
    func residencyHistoryAndEndedLeases(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let s = scope(community: place.community.id)
            let owner = try await store.createPerson(
                communityId: place.community.id,
                PersonInput(name: "李强", phone: "13900000001", identityNumber: nil, careTags: []), actor: tester)
            let tenant = try await store.createPerson(
                communityId: place.community.id,
                PersonInput(name: "赵敏", phone: "13900000002", identityNumber: nil, careTags: []), actor: tester)
            let oldTenant = try await store.createPerson(
                communityId: place.community.id,
                PersonInput(name: "钱多", phone: "13900000003", identityNumber: nil, careTags: []), actor: tester)
            let h = place.households[0].id
            try await store.moveIn(
                Residency(
                    communityId: place.community.id, personId: owner.id, householdId: h, role: .owner,
                    movedIn: "2020-01-01"), actor: tester)
            try await store.moveIn(
                Residency(
                    communityId: place.community.id, personId: tenant.id, householdId: h, role: .tenant,
                    leaseStart: "2024-01-01", leaseEnd: "2099-12-31", movedIn: "2024-01-01"), actor: tester)
            try await store.moveIn(
                Residency(
                    communityId: place.community.id, personId: oldTenant.id, householdId: h, role: .tenant,
                    leaseStart: "2022-01-01", leaseEnd: "2023-01-01", movedIn: "2022-01-01"), actor: tester)
            await #expect(throws: StoreError.self) {
                try await store.moveIn(
                    Residency(
                        communityId: place.community.id, personId: owner.id, householdId: h, role: .owner,
                        movedIn: "2021-01-01"), actor: tester)
            }
            let current = try await store.people(
                communityId: place.community.id, filter: PeopleFilter(currentOnly: true),
                sort: try ListOrder(nil, allowed: [:], default: "p.name"), page: PageRequest(), scope: s,
                fullPhone: true)
            #expect(
                Set(current.items.map(\.name)) == ["李强", "赵敏"],
                "a tenant whose lease has ended is not a current resident")
            let listing = try await store.household(h, scope: s)
            #expect(listing.residents == 2)
            // Moving out keeps the row as history.
            let ownerResidency = try #require(
                try await store.residents(householdId: h).first { $0.personId == owner.id })
            _ = try await store.moveOut(residencyId: ownerResidency.id, on: Day.today(), scope: s, actor: tester)
            let history = try await store.residents(householdId: h)
            #expect(history.count == 3)
            #expect(history.first { $0.personId == owner.id }?.current == false)
            await #expect(throws: StoreError.self) {
                _ = try await store.moveOut(residencyId: ownerResidency.id, on: Day.today(), scope: s, actor: tester)
            }
            let overview = try await store.overview(place.community, scope: s)
            #expect(overview.currentResidents == 1 && overview.endedLeases == 1 && overview.households == 2)
        }
    }

    @Test(arguments: TestEngine.available)
    func gridWorkerScopeReachesOnlyTheGridsBuildings(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let second = Building(communityId: place.community.id, name: "2号楼", floors: 6)
            try await store.createBuilding(second, actor: tester)
            let unit = BuildingUnit(communityId: place.community.id, buildingId: second.id, name: "1单元")
            try await store.createUnit(unit, actor: tester)
            let far = Household(
                communityId: place.community.id, buildingId: second.id, unitId: unit.id, room: "301", floor: 3,
                area: nil, occupancy: .rented)
            try await store.createHousehold(far, actor: tester)
            let near = try await store.createPerson(
                communityId: place.community.id, PersonInput(name: "近邻", phone: "", identityNumber: nil, careTags: []),
                actor: tester)
            let away = try await store.createPerson(
                communityId: place.community.id, PersonInput(name: "远邻", phone: "", identityNumber: nil, careTags: []),
                actor: tester)
            try await store.moveIn(
                Residency(
                    communityId: place.community.id, personId: near.id, householdId: place.households[0].id,
                    role: .owner, movedIn: "2020-01-01"), actor: tester)
            try await store.moveIn(
                Residency(
                    communityId: place.community.id, personId: away.id, householdId: far.id, role: .owner,
                    movedIn: "2020-01-01"), actor: tester)
            let grid = Grid(communityId: place.community.id, name: "网格一", workerAccountId: nil)
            try await store.createGrid(grid, buildingIds: [place.building.id], actor: tester)
            let buildings = try await store.gridBuildings([grid.id])
            var gridScope = Scope()
            gridScope.buildings = buildings[grid.id] ?? []
            let seen = try await store.people(
                communityId: place.community.id, filter: PeopleFilter(),
                sort: try ListOrder(nil, allowed: [:], default: "p.name"), page: PageRequest(), scope: gridScope,
                fullPhone: true)
            #expect(seen.items.map(\.name) == ["近邻"])
            #expect(try await store.buildings(communityId: place.community.id, scope: gridScope).map(\.name) == ["1号楼"])
            await #expect(throws: StoreError.self) {
                try await store.createGrid(
                    Grid(communityId: place.community.id, name: "x", workerAccountId: nil), buildingIds: ["nope"],
                    actor: tester)
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
