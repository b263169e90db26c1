import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliDemo
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliDevices
@testable import LinliHTTP
@testable import LinliLinkage
@testable import LinliMessaging
@testable import LinliServer
@testable import LinliStorage
@testable import LinliWorkOrders

/// Every role against every endpoint family: allowed or denied as designed, including attempts on
/// another community and on another household. Deny is 401 (anonymous), 403 (role lacks the
/// capability) or 404 (outside the caller's reach: nothing about it leaks).
@Suite("Authorisation matrix")
struct AccessMatrixTests {
    static let callers = [
        "admin", "manager", "staff", "grid", "guard", "police", "resident", "other-manager", "anonymous",
    ]

    struct Family {
        var name: String
        var method: HTTPRequest.Method
        var uri: @Sendable (Fixture) -> String
        var body: (@Sendable (Fixture) -> ByteBuffer)? = nil
        var contentType = "application/json"
        /// Expected status per caller; callers not listed expect `otherwise`.
        var expect: [String: Int]
        var otherwise: Int
    }

    static let goodCSV = "building,unit,room\n9号楼,1单元,101\n"

    static let families: [Family] = [
        Family(
            name: "community overview", method: .get, uri: { "/api/v1/communities/\($0.community.id)/overview" },
            expect: [
                "admin": 200, "manager": 200, "staff": 200, "grid": 200, "guard": 200, "resident": 200, "police": 403,
                "other-manager": 404, "anonymous": 401,
            ], otherwise: 0),
        Family(
            name: "list residents", method: .get, uri: { "/api/v1/communities/\($0.community.id)/people" },
            expect: [
                "admin": 200, "manager": 200, "staff": 200, "grid": 200, "guard": 200, "resident": 200, "police": 403,
                "other-manager": 404, "anonymous": 401,
            ], otherwise: 0),
        Family(
            name: "register a resident", method: .post, uri: { "/api/v1/communities/\($0.community.id)/people" },
            body: { _ in jsonBody(["name": "新住户", "phone": "13600000000"]) },
            expect: ["admin": 201, "manager": 201, "staff": 201, "other-manager": 404, "anonymous": 401], otherwise: 403
        ),
        Family(
            name: "reveal identity number", method: .post,
            uri: { "/api/v1/people/\($0.personWithIdentity)/identity-number/reveal" },
            expect: ["admin": 200, "manager": 200, "other-manager": 404, "anonymous": 401], otherwise: 403),
        Family(
            name: "another community's person", method: .get, uri: { "/api/v1/people/\($0.otherPerson)" },
            expect: ["admin": 200, "other-manager": 200, "police": 403, "anonymous": 401], otherwise: 404),
        Family(
            name: "own household", method: .get, uri: { "/api/v1/households/\($0.residentHousehold)" },
            expect: [
                "admin": 200, "manager": 200, "staff": 200, "guard": 200, "resident": 200, "grid": -1, "police": 403,
                "other-manager": 404, "anonymous": 401,
            ], otherwise: 0),
        Family(
            name: "a household in the grid", method: .get, uri: { "/api/v1/households/\($0.gridHousehold)" },
            expect: [
                "admin": 200, "manager": 200, "staff": 200, "guard": 200, "grid": 200, "resident": 404, "police": 403,
                "other-manager": 404, "anonymous": 401,
            ], otherwise: 0),
        Family(
            name: "a household outside the grid", method: .get, uri: { "/api/v1/households/\($0.outsideHousehold)" },
            expect: [
                "admin": 200, "manager": 200, "staff": 200, "guard": 200, "grid": 404, "resident": 404, "police": 403,
                "other-manager": 404, "anonymous": 401,
            ], otherwise: 0),
        Family(
            name: "change a household", method: .patch, uri: { "/api/v1/households/\($0.residentHousehold)" },
            body: { _ in jsonBody(["occupancy": "rented"]) },
            expect: ["admin": 200, "manager": 200, "staff": 200, "other-manager": 404, "anonymous": 401], otherwise: 403
        ),
        Family(
            name: "vehicles", method: .get, uri: { "/api/v1/communities/\($0.community.id)/vehicles" },
            expect: [
                "admin": 200, "manager": 200, "staff": 200, "grid": 200, "guard": 200, "resident": 200, "police": 403,
                "other-manager": 404, "anonymous": 401,
            ], otherwise: 0),
        Family(
            name: "organisations", method: .get, uri: { "/api/v1/communities/\($0.community.id)/organisations" },
            expect: [
                "admin": 200, "manager": 200, "staff": 200, "grid": 200, "police": 200, "guard": 403, "resident": 403,
                "other-manager": 404, "anonymous": 401,
            ], otherwise: 0),
        Family(
            name: "create an organisation", method: .post,
            uri: { "/api/v1/communities/\($0.community.id)/organisations" },
            body: { _ in jsonBody(["name": "新商户", "kind": "merchant"]) },
            expect: ["admin": 201, "manager": 201, "other-manager": 404, "anonymous": 401], otherwise: 403),
        Family(
            name: "import households (dry run)", method: .post,
            uri: { "/api/v1/communities/\($0.community.id)/households/import?dryRun=true" },
            body: { _ in ByteBuffer(string: goodCSV) }, contentType: "text/csv",
            expect: ["admin": 200, "manager": 200, "staff": 200, "other-manager": 404, "anonymous": 401], otherwise: 403
        ),
        Family(
            name: "export households", method: .get,
            uri: { "/api/v1/communities/\($0.community.id)/households/export" },
            expect: ["admin": 200, "manager": 200, "staff": 200, "other-manager": 404, "anonymous": 401], otherwise: 403
        ),
        Family(
            name: "accounts", method: .get, uri: { _ in "/api/v1/accounts" },
            expect: ["admin": 200, "manager": 200, "other-manager": 200, "anonymous": 401], otherwise: 403),
        Family(
            name: "audit log", method: .get, uri: { _ in "/api/v1/audit" },
            expect: ["admin": 200, "manager": 200, "other-manager": 200, "anonymous": 401], otherwise: 403),
        Family(
            name: "event log", method: .get, uri: { _ in "/api/v1/events" },
            expect: ["admin": 200, "manager": 200, "staff": 200, "other-manager": 200, "anonymous": 401], otherwise: 403
        ),
        Family(
            name: "create a community", method: .post, uri: { _ in "/api/v1/communities" },
            body: { _ in
                jsonBody([
                    "name": "新小区", "cityCode": "330100", "districtCode": "330106", "streetCode": "330106009",
                    "address": "新路 1 号",
                ])
            },
            expect: ["admin": 201, "anonymous": 401], otherwise: 403),
        Family(
            name: "grant a role in the community", method: .post, uri: { _ in "/api/v1/accounts/nobody/roles" },
            body: { f in jsonBody(["role": "guard", "communityId": f.community.id]) },
            expect: ["admin": 404, "manager": 404, "other-manager": 403, "anonymous": 401], otherwise: 403),
    ]

    @Test("every role × every endpoint family", arguments: families.indices)
    func matrix(index: Int) async throws {
        let family = Self.families[index]
        try await withApp { client, fixture in
            for caller in Self.callers {
                let expected = family.expect[caller] ?? family.otherwise
                if expected == -1 { continue }  // depends on where the demo put the resident
                var headers = fixture.bearer(caller)
                headers[.contentType] = family.contentType
                let status = try await client.execute(
                    uri: family.uri(fixture), method: family.method, headers: headers, body: family.body?(fixture)
                ) { $0.status.code }
                #expect(status == expected, "\(family.name): \(caller) got \(status), expected \(expected)")
            }
        }
    }

    @Test func listingsAreFilteredToTheCallersReach() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            func total(_ who: String, _ path: String) async throws -> Int {
                try await client.execute(uri: path, method: .get, headers: fixture.bearer(who)) {
                    try $0.json()["total"] as? Int ?? -1
                }
            }
            let all = try await total("manager", "/api/v1/communities/\(c)/households?limit=500")
            #expect(all >= 150)
            #expect(try await total("resident", "/api/v1/communities/\(c)/households") == 1)
            let grid = try await total("grid", "/api/v1/communities/\(c)/households?limit=500")
            #expect(grid > 0 && grid < all)
            let people = try await total("manager", "/api/v1/communities/\(c)/people")
            let residentSees = try await total("resident", "/api/v1/communities/\(c)/people")
            #expect(residentSees >= 1 && residentSees < 8 && people > 300)
            // The other community's administrator sees their community only, and none of this one's audit.
            let communities = try await client.execute(
                uri: "/api/v1/communities", method: .get, headers: fixture.bearer("other-manager")
            ) { try $0.json()["items"] as? [[String: Any]] ?? [] }
            #expect(communities.map { $0["id"] as? String } == [fixture.other.id])
            let audit = try await client.execute(
                uri: "/api/v1/audit?limit=500", method: .get, headers: fixture.bearer("other-manager")
            ) { try $0.json()["items"] as? [[String: Any]] ?? [] }
            #expect(audit.allSatisfy { ($0["communityId"] as? String) == fixture.other.id })
            // A guard sees phone numbers masked; staff see them whole.
            let guardPhones = try await client.execute(
                uri: "/api/v1/communities/\(c)/people?limit=5", method: .get, headers: fixture.bearer("guard")
            ) { try $0.json()["items"] as? [[String: Any]] ?? [] }
            #expect(
                guardPhones.compactMap { $0["phone"] as? String }.filter { !$0.isEmpty }.allSatisfy {
                    $0.contains("****")
                })
            let staffPhones = try await client.execute(
                uri: "/api/v1/communities/\(c)/people?limit=5", method: .get, headers: fixture.bearer("staff")
            ) { try $0.json()["items"] as? [[String: Any]] ?? [] }
            #expect(staffPhones.compactMap { $0["phone"] as? String }.contains { !$0.isEmpty && !$0.contains("*") })
        }
    }
}
