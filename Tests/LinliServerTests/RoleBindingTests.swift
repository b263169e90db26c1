import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliServer
import LinliTestSupport
import SQLKit
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliStorage

@Suite("Role bindings: one row per grant, every place in the community")
struct RoleBindingTests {
    @Test(arguments: TestEngine.available)
    func anIdenticalBindingIsRefusedAndPlacesMustBeOfTheCommunity(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let here = try await Place.make(store)
            let there = try await Place.make(store, name: "别的小区")
            let grid = Grid(communityId: here.community.id, name: "一网格", workerAccountId: nil)
            try await store.createGrid(grid, buildingIds: [here.building.id], actor: tester)
            let foreignGrid = Grid(communityId: there.community.id, name: "外网格", workerAccountId: nil)
            try await store.createGrid(foreignGrid, buildingIds: [there.building.id], actor: tester)
            let account = Account(username: "worker", displayName: "网格员", passwordHash: "x")
            try await store.createAccount(account, actor: tester)

            let first = RoleBinding(
                accountId: account.id, role: .gridWorker, communityId: here.community.id, gridId: grid.id)
            try await store.bindRole(first, actor: tester)
            var again = first
            again.id = newID()
            await #expect(
                throws: StoreError.conflict(
                    field: "role", reason: "is already granted to this account with the same scope")
            ) {
                try await store.bindRole(again, actor: tester)
            }
            // The same role with another reach, and another role with the same reach, are grants of their own.
            try await store.bindRole(
                RoleBinding(accountId: account.id, role: .gridWorker, communityId: here.community.id), actor: tester)
            try await store.bindRole(
                RoleBinding(accountId: account.id, role: .guardOnDuty, communityId: here.community.id, gridId: grid.id),
                actor: tester)
            #expect(try await store.bindings(accountId: account.id).count == 3)

            func refused(_ binding: RoleBinding) async -> [String] {
                do {
                    try await store.bindRole(binding, actor: tester)
                    return []
                } catch let failure as ValidationFailure {
                    return failure.issues.map(\.field)
                } catch {
                    return ["unexpected \(error)"]
                }
            }
            #expect(
                await refused(
                    RoleBinding(
                        accountId: account.id, role: .resident, communityId: here.community.id, householdId: newID()))
                    == ["householdId"], "a household that does not exist")
            #expect(
                await refused(
                    RoleBinding(
                        accountId: account.id, role: .resident, communityId: here.community.id,
                        householdId: there.households[0].id)) == ["householdId"], "a household of another community")
            #expect(
                await refused(
                    RoleBinding(
                        accountId: account.id, role: .gridWorker, communityId: here.community.id,
                        gridId: foreignGrid.id)) == ["gridId"], "a grid of another community")
            #expect(
                await refused(
                    RoleBinding(
                        accountId: account.id, role: .departmentAgent, communityId: here.community.id,
                        organisationId: newID())) == ["organisationId"])
            #expect(
                await refused(RoleBinding(accountId: account.id, role: .guardOnDuty, communityId: newID()))
                    == ["communityId"])
            #expect(
                await refused(
                    RoleBinding(accountId: account.id, role: .platformAdmin, communityId: nil, gridId: grid.id))
                    == ["gridId"], "a platform administrator's binding names no place")
            #expect(try await store.bindings(accountId: account.id).count == 3, "nothing refused was stored")
        }
    }

    @Test(arguments: TestEngine.available)
    func theMigrationKeepsTheEarliestOfIdenticalBindingsThenRefusesAnother(engine: TestEngine) async throws {
        let store = try await engine.openUnmigrated()
        do {
            let before = Schema(
                core: Schema.linli.core.filter { $0.version < 22 }, telemetry: Schema.linli.telemetry)
            try await Migrations.migrate(store, schema: before)
            let here = try await Place.make(store)
            let account = Account(username: "twice", displayName: "两次", passwordHash: "x")
            // As an account of that version was stored: without the later `language` column.
            try await store.write { db in
                try await db.raw(
                    """
                    INSERT INTO accounts (id, username, display_name, password_hash, status, created_at, password_changed_at)
                    VALUES (\(bind: account.id), \(bind: account.username), \(bind: account.displayName),
                    \(bind: account.passwordHash), 'active', \(bind: account.createdAt), \(bind: account.createdAt))
                    """
                ).run()
            }
            // What an earlier version let through: the same grant three times, beside two that differ.
            let rows: [(id: String, role: Role, community: ID?, at: Millis)] = [
                ("b", .guardOnDuty, here.community.id, 200),
                ("a", .guardOnDuty, here.community.id, 100),
                ("c", .guardOnDuty, here.community.id, 100),
                ("d", .propertyStaff, here.community.id, 100),
                ("e", .platformAdmin, nil, 100),
                ("f", .platformAdmin, nil, 300),
            ]
            try await store.write { db in
                for row in rows {
                    try await db.insert(
                        RoleBinding(
                            id: row.id, accountId: account.id, role: row.role, communityId: row.community,
                            createdAt: row.at))
                }
            }
            try await Migrations.migrate(store, schema: .linli)
            let kept = try await store.bindings(accountId: account.id).map(\.id).sorted()
            #expect(kept == ["a", "d", "e"], "the earliest of each grant, ties to the smaller id")
            let again = RoleBinding(id: "g", accountId: account.id, role: .guardOnDuty, communityId: here.community.id)
            await #expect(throws: (any Error).self, "the database itself refuses a second identical row") {
                try await store.write { db in try await db.insert(again) }
            }
            let admin = RoleBinding(id: "h", accountId: account.id, role: .platformAdmin, communityId: nil)
            await #expect(throws: (any Error).self, "NULL scopes compare equal in the index") {
                try await store.write { db in try await db.insert(admin) }
            }
        } catch {
            await store.database.close()
            throw error
        }
        await store.database.close()
    }

    @Test func theAPIAnswersADuplicateWith409AndAMissingPlaceWith422() async throws {
        try await withApp { client, fixture in
            let manager = HTTPFields.json.merging(fixture.bearer("manager"))
            let account = try await client.execute(
                uri: "/api/v1/accounts", method: .post, headers: manager,
                body: jsonBody(["username": "gate-2", "displayName": "二号门岗", "password": "a long enough password"])
            ) { try $0.json() }
            let id = try #require(account["id"] as? String)
            let grant = ["role": "guard", "communityId": fixture.community.id]
            let first = try await client.execute(
                uri: "/api/v1/accounts/\(id)/roles", method: .post, headers: manager, body: jsonBody(grant)
            ) { $0.status }
            #expect(first == .created)
            let second = try await client.execute(
                uri: "/api/v1/accounts/\(id)/roles", method: .post, headers: manager, body: jsonBody(grant)
            ) { r in (r.status, try r.json()) }
            #expect(second.0 == .conflict)
            #expect((second.1["type"] as? String)?.hasSuffix("/conflict") == true)
            let fields = (second.1["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
            #expect(fields == ["role"])
            let missing = try await client.execute(
                uri: "/api/v1/accounts/\(id)/roles", method: .post, headers: manager,
                body: jsonBody(["role": "resident", "communityId": fixture.community.id, "householdId": "no-such-home"])
            ) { r in (r.status, try r.json()) }
            #expect(missing.0 == .unprocessableContent)
            #expect(
                (missing.1["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
                    == ["householdId"])
            let platform = try await client.execute(
                uri: "/api/v1/accounts/\(id)/roles", method: .post,
                headers: HTTPFields.json.merging(fixture.bearer("admin")),
                body: jsonBody(["role": "platform_admin", "householdId": fixture.residentHousehold])
            ) { r in (r.status, try r.json()) }
            #expect(platform.0 == .unprocessableContent)
            #expect(
                (platform.1["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
                    == ["householdId"])
            let roles = try await fixture.store.bindings(accountId: id)
            #expect(roles.count == 1, "only the first grant was stored")
        }
    }
}
