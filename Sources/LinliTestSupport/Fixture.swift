import Foundation
import Hummingbird
import HummingbirdTesting
import LinliCommunity
import LinliCore
import LinliDemo
import LinliHTTP
import LinliServer
import LinliStorage
import Logging
import SQLKit

/// The demo community plus a second community, with an API token for every demo account and for the
/// second community's administrator. Every test gets its own SQLite file.
package struct Fixture: Sendable {
    package let services: AppServices
    package let community: Community
    package let other: Community
    package let otherPerson: ID
    package let tokens: [String: String]
    /// The signed-in resident's household, a household in the grid worker's grid that is not the
    /// resident's, and one outside the grid.
    package let residentHousehold: ID
    package let gridHousehold: ID
    package let outsideHousehold: ID
    package let personWithIdentity: ID
    package let policeOrganisation: ID
    package static let password = "fixture-password-42"
    package static let passwordHash: String = Bcryptless.hash

    package var store: Store { services.store }

    package func bearer(_ who: String) -> HTTPFields {
        guard let token = tokens[who] else { return [:] }
        return [.authorization: "Bearer \(token)"]
    }
}

/// One real bcrypt hash computed once: seeding many fixtures must not pay for bcrypt each time.
enum Bcryptless {
    static let hash = Passwords.hashBlocking(Fixture.password)
}

package let quietLogger: Logger = {
    var l = Logger(label: "linli-test")
    l.logLevel = .critical
    return l
}()

package func makeFixture() async throws -> Fixture {
    Telemetry.bootstrap()
    let path = NSTemporaryDirectory() + "linli-app-\(UUID().uuidString).sqlite"
    let database = try await SQLiteStore.open(path: path, readers: 2, logger: quietLogger)
    let store = Store(database: database, cipher: try FieldCipher(secret: FieldCipher.randomSecret()))
    try await Migrations.migrate(store, schema: .linli)
    let hash = Fixture.passwordHash
    _ = try await DemoCommunity.seed(store, hashPassword: { _ in hash }, generatePassword: { Fixture.password })
    let community = try await store.communities(scope: .everything, memberships: []).first!
    let system = Principal.system

    // A second community with its own administrator and one person.
    let other = Community(
        name: "对照小区", cityCode: "330100", districtCode: "330105", streetCode: "330105002", address: "别处 2 号")
    try await store.createCommunity(other, actor: system)
    let otherAdmin = Account(username: "other-manager", displayName: "Other", passwordHash: hash)
    try await store.createAccount(otherAdmin, actor: system)
    try await store.bindRole(
        RoleBinding(accountId: otherAdmin.id, role: .communityAdmin, communityId: other.id), actor: system)
    let otherPerson = try await store.createPerson(
        communityId: other.id,
        PersonInput(
            name: "外人", phone: "13700000000", identityNumber: IdentityNumber.withCheckDigit("33010519900101123"),
            careTags: []), actor: system)

    var tokens: [String: String] = [:]
    for username in ["admin", "manager", "staff", "grid", "guard", "police", "resident", "other-manager"] {
        let account = try await store.account(username: username)!
        tokens[username] = try await store.createToken(accountId: account.id, name: "test", actor: system).token
    }
    let residentAccount = try await store.account(username: "resident")!
    let residentHousehold = try await store.bindings(accountId: residentAccount.id).first!.householdId!
    let gridAccount = try await store.account(username: "grid")!
    let gridId = try await store.bindings(accountId: gridAccount.id).first!.gridId!
    let gridBuildings = try await store.gridBuildings([gridId])[gridId]!
    let all = try await store.households(
        communityId: community.id, filter: HouseholdFilter(), sort: try ListOrder(nil, allowed: [:], default: "h.id"),
        page: PageRequest(limit: 500), scope: .everything
    ).items
    let gridHousehold = all.first { gridBuildings.contains($0.buildingId) && $0.id != residentHousehold }!.id
    let outsideHousehold = all.first { !gridBuildings.contains($0.buildingId) && $0.id != residentHousehold }!.id
    let personWithIdentity = try await store.read { db in
        try await db.raw(
            "SELECT id FROM people WHERE community_id = \(bind: community.id) AND identity_cipher IS NOT NULL ORDER BY name LIMIT 1"
        ).first()!.decode(column: "id", as: String.self)
    }
    let police = try await store.organisations(communityId: community.id, scope: .everything).first {
        $0.kind == .policeStation
    }!.id
    var configuration = ServerConfiguration()
    // A folder of its own: the server clears half-written uploads from its data folder at start,
    // which in a folder shared by tests running at once would be another test's upload.
    configuration.dataDirectory = NSTemporaryDirectory() + "linli-app-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
    let services = try AppServices(store: store, configuration: configuration, logger: quietLogger)
    return Fixture(
        services: services, community: community, other: other, otherPerson: otherPerson.id, tokens: tokens,
        residentHousehold: residentHousehold, gridHousehold: gridHousehold, outsideHousehold: outsideHousehold,
        personWithIdentity: personWithIdentity, policeOrganisation: police)
}

/// Runs `body` against the router in-process, with a fresh fixture.
package func withApp(_ body: @escaping @Sendable (any TestClientProtocol, Fixture) async throws -> Void) async throws {
    let fixture = try await makeFixture()
    let app = buildApplication(fixture.services, logger: quietLogger)
    do {
        try await app.test(.router) { client in
            try await body(client, fixture)
        }
    } catch {
        // Closed all the same: an unclosed SQLite connection stops the whole test process.
        await fixture.store.database.close()
        throw error
    }
    await fixture.store.database.close()
}

extension TestResponse {
    package var text: String { String(buffer: body) }
    package func json() throws -> [String: Any] {
        (try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]) ?? [:]
    }
}

package func jsonBody(_ object: Any) -> ByteBuffer {
    ByteBuffer(bytes: try! JSONSerialization.data(withJSONObject: object))
}

extension HTTPFields {
    package static var json: HTTPFields { [.contentType: "application/json"] }
    package func merging(_ other: HTTPFields) -> HTTPFields {
        var copy = self
        for field in other { copy.append(field) }
        return copy
    }
}
