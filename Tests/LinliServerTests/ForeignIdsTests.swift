import Foundation
import HTTPTypes
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliHTTP

/// Every id in a write must belong to the community the write is in. A platform administrator may
/// reach both communities, so scope alone does not catch a building of one named in a notice of the
/// other: each write is tried with the second community's ids and must answer 422 naming the field.
/// The walk covers every write operation of the OpenAPI document: one added later fails here
/// until it is walked or said to carry no community's ids.
@Suite("Ids from another community")
struct ForeignIdsTests {
    /// Write operations whose bodies name nothing of a community (or only things checked by how
    /// they are reached: the path's own resource, a product key).
    static let noCommunityIds: Set<String> = [
        "POST /api/v1/communities/{cid}/rules", "POST /api/v1/communities/{cid}/rules/test", "PUT /api/v1/rules/{id}",
        "DELETE /api/v1/rules/{id}", "POST /api/v1/me/notifications/read-all",
        "POST /api/v1/me/notifications/{id}/read",
        "POST /api/v1/alarms/{id}/acknowledge", "POST /api/v1/alarms/{id}/clear", "POST /api/v1/alarms/{id}/comments",
        "POST /api/v1/communities/{cid}/products", "POST /api/v1/products/{pk}/firmware",
        "POST /api/v1/products/{pk}/firmware/{id}/upgrades", "POST /api/v1/communities/{cid}/devices/import",
        "PUT /api/v1/devices/{pk}/{dn}/shadow/desired", "PATCH /api/v1/devices/{pk}/{dn}/shadow/document",
        "POST /api/v1/devices/{pk}/{dn}/properties", "POST /api/v1/devices/{pk}/{dn}/services/{service}",
        "POST /api/v1/accounts", "DELETE /api/v1/role-bindings/{id}", "POST /api/v1/communities",
        "POST /api/v1/communities/{cid}/buildings", "POST /api/v1/buildings/{id}/units",
        "PATCH /api/v1/households/{id}",
        "POST /api/v1/communities/{cid}/households/import", "POST /api/v1/communities/{cid}/people",
        "PATCH /api/v1/people/{id}", "POST /api/v1/people/{id}/identity-number/reveal",
        "POST /api/v1/residencies/{id}/move-out", "POST /api/v1/communities/{cid}/organisations",
        // Accounts belong to no community; a staff member's account is anyone's.
        "POST /api/v1/organisations/{id}/staff", "POST /api/v1/session", "DELETE /api/v1/session",
        "POST /api/v1/tokens",
        "DELETE /api/v1/tokens/{id}", "PUT /api/v1/me/notification-preferences", "POST /api/v1/me/notices/{id}/read",
        "POST /api/v1/me/notices/{id}/answer", "POST /api/v1/work-orders/{id}/photos",
        // No body: the notice is found only within the caller's communities (another's is a 404).
        "POST /api/v1/notices/{id}/cancel",
    ]

    /// The write operations of the OpenAPI document, as `METHOD path`.
    static func writeOperations(_ document: String) -> Set<String> {
        var found: Set<String> = []
        var path: String?
        for line in document.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if !line.hasPrefix("   "), !line.hasPrefix("  /") {
                path = nil
            }
            guard let path, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") else { continue }
            let method = line.trimmingCharacters(in: .whitespaces).dropLast().uppercased()
            if ["POST", "PUT", "PATCH", "DELETE"].contains(method) { found.insert("\(method) \(path)") }
        }
        return found
    }

    @Test func everyWriteRefusesAnotherCommunitysIds() async throws {
        try await withApp { client, fixture in
            let admin = APIUser(client, fixture, as: "admin")
            let (c1, c2) = (fixture.community.id, fixture.other.id)
            func id(_ object: [String: Any]) throws -> String { try #require(object["id"] as? String) }
            // The second community's places, grid and organisation.
            let b2 = try id(
                try await admin.call(
                    "/api/v1/communities/\(c2)/buildings", .post, ["name": "外楼", "floors": 3], expect: .created))
            let u2 = try id(
                try await admin.call("/api/v1/buildings/\(b2)/units", .post, ["name": "1单元"], expect: .created))
            let h2 = try id(
                try await admin.call(
                    "/api/v1/communities/\(c2)/households", .post,
                    ["unitId": u2, "room": "101", "floor": 1, "occupancy": "vacant"],
                    expect: .created))
            let g2 = try id(
                try await admin.call(
                    "/api/v1/communities/\(c2)/grids", .post, ["name": "外网格", "buildingIds": [b2]], expect: .created))
            let o2 = try id(
                try await admin.call(
                    "/api/v1/communities/\(c2)/organisations", .post, ["name": "外物业", "kind": "property_company"],
                    expect: .created))
            let p2 = fixture.otherPerson
            // The first community's own.
            let households = try await admin.call("/api/v1/communities/\(c1)/households?limit=1")
            let h1 = try #require((households["items"] as? [[String: Any]])?.first?["id"] as? String)
            let people = try await admin.call("/api/v1/communities/\(c1)/people?limit=1")
            let p1 = try #require((people["items"] as? [[String: Any]])?.first?["id"] as? String)
            let product = try await admin.call(
                "/api/v1/communities/\(c1)/products", .post, ["library": "door_contact"], expect: .created)
            let pk = try #require(product["productKey"] as? String)
            try await admin.call(
                "/api/v1/communities/\(c1)/devices", .post, ["productKey": pk, "deviceName": "door-9"], expect: .created
            )
            let account = try await admin.call(
                "/api/v1/accounts", .post,
                ["username": "walker", "displayName": "巡查员", "password": "walker-password-1"], expect: .created)
            let a = try id(account)
            let order = try id(
                try await admin.call(
                    "/api/v1/communities/\(c1)/work-orders", .post, ["category": "repair", "title": "门坏了"],
                    expect: .created))

            let walk:
                [(operation: String, uri: String, method: HTTPRequest.Method, body: [String: Any], field: String)] =
                    [
                        (
                            "POST /api/v1/communities/{cid}/devices", "/api/v1/communities/\(c1)/devices", .post,
                            ["productKey": pk, "deviceName": "door-x", "buildingId": b2], "buildingId"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/devices", "/api/v1/communities/\(c1)/devices", .post,
                            ["productKey": pk, "deviceName": "door-y", "unitId": u2], "unitId"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/devices", "/api/v1/communities/\(c1)/devices", .post,
                            ["productKey": pk, "deviceName": "door-z", "householdId": h2], "householdId"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/devices", "/api/v1/communities/\(c1)/devices", .post,
                            ["productKey": pk, "deviceName": "door-w", "personId": p2], "personId"
                        ),
                        (
                            "PATCH /api/v1/devices/{pk}/{dn}", "/api/v1/devices/\(pk)/door-9", .patch,
                            ["buildingId": b2], "buildingId"
                        ),
                        (
                            "PATCH /api/v1/devices/{pk}/{dn}", "/api/v1/devices/\(pk)/door-9", .patch,
                            ["householdId": h2], "householdId"
                        ),
                        (
                            "PATCH /api/v1/devices/{pk}/{dn}", "/api/v1/devices/\(pk)/door-9", .patch, ["personId": p2],
                            "personId"
                        ),
                        (
                            "POST /api/v1/accounts/{id}/roles", "/api/v1/accounts/\(a)/roles", .post,
                            ["role": "grid_worker", "communityId": c1, "gridId": g2], "gridId"
                        ),
                        (
                            "POST /api/v1/accounts/{id}/roles", "/api/v1/accounts/\(a)/roles", .post,
                            ["role": "resident", "communityId": c1, "householdId": h2], "householdId"
                        ),
                        (
                            "POST /api/v1/accounts/{id}/roles", "/api/v1/accounts/\(a)/roles", .post,
                            ["role": "property_staff", "communityId": c1, "organisationId": o2], "organisationId"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/households", "/api/v1/communities/\(c1)/households", .post,
                            ["unitId": u2, "room": "909", "floor": 9, "occupancy": "vacant"], "unitId"
                        ),
                        (
                            "POST /api/v1/residencies", "/api/v1/residencies", .post,
                            ["personId": p1, "householdId": h2, "role": "tenant"], "personId"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/vehicles", "/api/v1/communities/\(c1)/vehicles", .post,
                            ["plate": "浙A12345", "householdId": h2], "householdId"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/vehicles", "/api/v1/communities/\(c1)/vehicles", .post,
                            ["plate": "浙A12346", "personId": p2], "personId"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/grids", "/api/v1/communities/\(c1)/grids", .post,
                            ["name": "越界网格", "buildingIds": [b2]], "buildingIds"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/notices", "/api/v1/communities/\(c1)/notices", .post,
                            ["title": "停水", "body": "明天停水", "audience": ["buildings": [b2]]], "audience.buildings[0]"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/notices", "/api/v1/communities/\(c1)/notices", .post,
                            ["title": "停水", "body": "明天停水", "audience": ["units": [u2]]], "audience.units[0]"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/notices", "/api/v1/communities/\(c1)/notices", .post,
                            ["title": "停水", "body": "明天停水", "audience": ["households": [h1, h2]]],
                            "audience.households[1]"
                        ),
                        (
                            "PUT /api/v1/communities/{cid}/work-order-settings/{category}",
                            "/api/v1/communities/\(c1)/work-order-settings/repair", .put,
                            ["organisationId": o2, "deadlineHours": 24],
                            "organisationId"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/work-orders", "/api/v1/communities/\(c1)/work-orders",
                            .post,
                            ["category": "repair", "title": "x", "buildingId": b2], "buildingId"
                        ),
                        (
                            "POST /api/v1/communities/{cid}/work-orders", "/api/v1/communities/\(c1)/work-orders",
                            .post,
                            ["category": "repair", "title": "x", "householdId": h2], "householdId"
                        ),
                        (
                            "POST /api/v1/work-orders/{id}/steps", "/api/v1/work-orders/\(order)/steps", .post,
                            ["step": "transfer", "organisationId": o2, "note": "转外单位"], "organisationId"
                        ),
                    ]
            let operations = Self.writeOperations(fixture.services.openAPIDocument)
            #expect(operations.count > 40, "the document's write operations were read")
            let unwalked = operations.subtracting(Self.noCommunityIds).subtracting(walk.map(\.operation))
            #expect(
                unwalked.isEmpty, "write operations neither walked nor said to carry no community's ids: \(unwalked)")
            for attempt in walk {
                let answer = try await admin.call(
                    attempt.uri, attempt.method, attempt.body, expect: .unprocessableContent)
                let fields = (answer["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
                #expect(fields.contains(attempt.field), "\(attempt.method) \(attempt.uri) \(attempt.body): \(answer)")
            }
        }
    }
}
