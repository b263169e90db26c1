import Foundation
import LinliCore
import LinliTestSupport
import SQLKit
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliStorage

@Suite("Community storage on every engine")
struct CommunityStoreTests {
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
    func phonesAreEncryptedAtRestAndFoundByTheWholeNumber(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let person = try await store.createPerson(
                communityId: place.community.id,
                PersonInput(name: "李强", phone: "13912345678", identityNumber: nil, careTags: []), actor: tester)
            func stored(_ id: ID) async throws -> (phone: String, cipher: String?) {
                let row = try await store.read { db in
                    try await db.raw("SELECT phone, phone_cipher FROM people WHERE id = \(bind: id)").first()
                }
                return (
                    try #require(try row?.decode(column: "phone", as: String.self)),
                    try row?.decode(column: "phone_cipher", as: String?.self)
                )
            }
            let (masked, sealed) = try await stored(person.id)
            #expect(masked == "139****5678")
            #expect(sealed?.hasPrefix("v1:") == true && sealed?.contains("12345678") == false)
            let everyone = scope(community: place.community.id)
            let order = try ListOrder(nil, allowed: [:], default: "p.id")
            func search(_ q: String, full: Bool = false) async throws -> [PersonView] {
                try await store.people(
                    communityId: place.community.id, filter: PeopleFilter(query: q), sort: order, page: PageRequest(),
                    scope: everyone, fullPhone: full
                ).items
            }
            #expect(try await search("13912345678").map(\.id) == [person.id], "found by the whole number")
            #expect(try await search("5678").map(\.id) == [person.id], "and by its last four digits")
            #expect(try await search("13912345679").isEmpty)
            #expect(try await search("13912345678", full: true).first?.phone == "13912345678")
            #expect(try await store.person(person.id, scope: everyone, fullPhone: false).phone == "139****5678")
            // Changed: sealed again.
            try await store.updatePerson(
                person.id, scope: everyone, name: nil, phone: "13700001111", careTags: nil, actor: tester)
            #expect(try await stored(person.id).phone == "137****1111")
            #expect(try await store.person(person.id, scope: everyone, fullPhone: true).phone == "13700001111")
            // A row an older version wrote in plain text is sealed after the migrations, once.
            try await store.write { db in
                try await db.raw(
                    """
                    INSERT INTO people (id, community_id, name, phone, care_tags, created_at)
                    VALUES ('old-1', \(bind: place.community.id), '旧居民', '13055556666', ',', 0)
                    """
                ).run()
            }
            #expect(try await store.sealPhones() == 1)
            #expect(try await store.sealPhones() == 0)
            #expect(try await stored("old-1").phone == "130****6666")
            #expect(try await store.person("old-1", scope: everyone, fullPhone: true).phone == "13055556666")
            // Nothing in the event log holds the whole number.
            let logged = try await store.read { db in
                try await db.raw("SELECT payload FROM events").all().map {
                    try $0.decode(column: "payload", as: String.self)
                }
            }
            #expect(!logged.joined().contains("13912345678") && !logged.joined().contains("13700001111"))
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
}
