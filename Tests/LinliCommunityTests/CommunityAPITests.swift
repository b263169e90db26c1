import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliStorage

@Suite("Community HTTP API")
struct CommunityAPITests {
    @Test func residentsMoveInAndOutWithHistoryAndEvents() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = HTTPFields.json.merging(fixture.bearer("staff"))
            let person = try await client.execute(
                uri: "/api/v1/communities/\(c)/people", method: .post, headers: staff,
                body: jsonBody([
                    "name": "新租客", "phone": "13600001111",
                    "identityNumber": IdentityNumber.withCheckDigit("33010620000101777"), "careTags": ["key_care"],
                ])
            ) { r in
                #expect(r.status == .created)
                return try r.json()
            }
            let personId = try #require(person["id"] as? String)
            #expect((person["identityNumber"] as? String)?.contains("*") == true)
            let residency = try await client.execute(
                uri: "/api/v1/residencies", method: .post, headers: staff,
                body: jsonBody([
                    "personId": personId, "householdId": fixture.outsideHousehold, "role": "tenant",
                    "leaseStart": "2025-01-01", "leaseEnd": "2030-01-01",
                ])
            ) { r in
                #expect(r.status == .created)
                return try r.json()
            }
            let residencyId = try #require(residency["id"] as? String)
            let again = try await client.execute(
                uri: "/api/v1/residencies", method: .post, headers: staff,
                body: jsonBody(["personId": personId, "householdId": fixture.outsideHousehold, "role": "tenant"])
            ) { $0.status }
            #expect(again == .conflict)
            let early = try await client.execute(
                uri: "/api/v1/residencies/\(residencyId)/move-out", method: .post, headers: staff,
                body: jsonBody(["movedOut": "2024-01-01"])
            ) { $0.status }
            #expect(early == .unprocessableContent)
            let out = try await client.execute(
                uri: "/api/v1/residencies/\(residencyId)/move-out", method: .post, headers: staff
            ) { r in
                #expect(r.status == .ok)
                return try r.json()
            }
            #expect(out["movedOut"] as? String == Day.today())
            let residents = try await client.execute(
                uri: "/api/v1/households/\(fixture.outsideHousehold)/residents", method: .get, headers: staff
            ) { try $0.json()["items"] as? [[String: Any]] ?? [] }
            let mine = residents.first { $0["personId"] as? String == personId }
            #expect(mine?["current"] as? Bool == false, "moving out keeps the history")
            let events = try await client.execute(
                uri: "/api/v1/events?limit=500", method: .get, headers: fixture.bearer("admin")
            ) { try $0.json()["items"] as? [[String: Any]] ?? [] }
            let types = events.filter { ($0["subjectId"] as? String) == residencyId }.compactMap {
                $0["type"] as? String
            }
            #expect(types == ["residency.moved_in", "residency.moved_out"])
            let audit = try await client.execute(
                uri: "/api/v1/audit?subjectId=\(residencyId)", method: .get, headers: fixture.bearer("manager")
            ) { try $0.json()["items"] as? [[String: Any]] ?? [] }
            #expect(audit.count == 2 && audit.allSatisfy { $0["actorName"] as? String == "staff" })
            let moveOut = audit.first { $0["action"] as? String == "residency.moved_out" }
            #expect(
                (moveOut?["beforeJson"] as? String)?.contains("\"movedOut\"") == false
                    && (moveOut?["afterJson"] as? String)?.contains(Day.today()) == true)
        }
    }

    @Test func revealingAnIdentityNumberIsAudited() async throws {
        try await withApp { client, fixture in
            let revealed = try await client.execute(
                uri: "/api/v1/people/\(fixture.personWithIdentity)/identity-number/reveal", method: .post,
                headers: fixture.bearer("manager")
            ) { try $0.json() }
            let number = try #require(revealed["identityNumber"] as? String)
            #expect(IdentityNumber.isValid(number))
            let audit = try await client.execute(
                uri: "/api/v1/audit?action=person.identity.read", method: .get, headers: fixture.bearer("admin")
            ) { try $0.json()["items"] as? [[String: Any]] ?? [] }
            #expect(
                audit.count == 1 && audit[0]["actorName"] as? String == "manager"
                    && audit[0]["subjectId"] as? String == fixture.personWithIdentity)
        }
    }

    @Test func importThroughTheAPIRefusesBadSheetsWhole() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let csv = "building,unit,room,name,identity_number\n7号楼,1单元,101,甲,\n7号楼,1单元,102,乙,123\n"
            let refused = try await client.execute(
                uri: "/api/v1/communities/\(c)/households/import", method: .post, headers: fixture.bearer("staff"),
                body: ByteBuffer(string: csv)
            ) { r in
                #expect(r.status == .unprocessableContent)
                return try r.json()
            }
            let errors = refused["errors"] as? [[String: Any]] ?? []
            #expect(errors.compactMap { $0["field"] as? String } == ["line 3: identity_number"])
            // A sheet that is neither UTF-8 nor GB18030 is refused, not stored as U+FFFD (a GBK
            // sheet is read: see ImportSheetTests).
            let gbk = Array("building,unit,room\n".utf8) + [0x37, 0xFF, 0xFF, 0xFF] + Array(",1,101\n".utf8)
            let notUTF8 = try await client.execute(
                uri: "/api/v1/communities/\(c)/households/import", method: .post, headers: fixture.bearer("staff"),
                body: ByteBuffer(bytes: gbk)
            ) { r in
                #expect(r.status == .badRequest)
                return try r.json()
            }
            #expect((notUTF8["detail"] as? String)?.contains("line 2") == true)
            let partial = try await client.execute(
                uri: "/api/v1/communities/\(c)/households/import?mode=valid", method: .post,
                headers: fixture.bearer("staff"), body: ByteBuffer(string: csv)
            ) { try $0.json() }
            #expect(partial["imported"] as? Bool == true && partial["householdsCreated"] as? Int == 1)
            let export = try await client.execute(
                uri: "/api/v1/communities/\(c)/households/export", method: .get, headers: fixture.bearer("staff")
            ) { $0 }
            #expect(export.headers[.contentType]?.hasPrefix("text/csv") == true && export.text.contains("7号楼,1单元,101"))
        }
    }

    @Test func accountsAndRolesAreManagedWithinTheCommunity() async throws {
        try await withApp { client, fixture in
            let manager = HTTPFields.json.merging(fixture.bearer("manager"))
            let weak = try await client.execute(
                uri: "/api/v1/accounts", method: .post, headers: manager,
                body: jsonBody(["username": "new guard", "displayName": "", "password": "short"])
            ) { try $0.json() }
            let fields = (weak["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
            #expect(Set(fields) == ["username", "displayName", "password"])
            let account = try await client.execute(
                uri: "/api/v1/accounts", method: .post, headers: manager,
                body: jsonBody(["username": "night-guard", "displayName": "夜班门岗", "password": "a long enough password"])
            ) { r in
                #expect(r.status == .created)
                return try r.json()
            }
            let id = try #require(account["id"] as? String)
            #expect(account["passwordHash"] == nil)
            let taken = try await client.execute(
                uri: "/api/v1/accounts", method: .post, headers: manager,
                body: jsonBody(["username": "night-guard", "displayName": "x", "password": "a long enough password"])
            ) { $0.status }
            #expect(taken == .conflict)
            let platform = try await client.execute(
                uri: "/api/v1/accounts/\(id)/roles", method: .post, headers: manager,
                body: jsonBody(["role": "platform_admin"])
            ) { $0.status }
            #expect(platform == .forbidden, "a community administrator cannot make a platform administrator")
            let elsewhere = try await client.execute(
                uri: "/api/v1/accounts/\(id)/roles", method: .post, headers: manager,
                body: jsonBody(["role": "guard", "communityId": fixture.other.id])
            ) { $0.status }
            #expect(elsewhere == .forbidden)
            let foreignHousehold = try await client.execute(
                uri: "/api/v1/accounts/\(id)/roles", method: .post,
                headers: fixture.bearer("other-manager").merging(.json),
                body: jsonBody([
                    "role": "resident", "communityId": fixture.other.id, "householdId": fixture.residentHousehold,
                ])
            ) { $0.status }
            #expect(
                foreignHousehold == .notFound || foreignHousehold == .unprocessableContent,
                "a binding cannot reach into another community")
            let granted = try await client.execute(
                uri: "/api/v1/accounts/\(id)/roles", method: .post, headers: manager,
                body: jsonBody(["role": "guard", "communityId": fixture.community.id])
            ) { $0.status }
            #expect(granted == .created)
            let listed = try await client.execute(uri: "/api/v1/accounts", method: .get, headers: manager) {
                try $0.json()["items"] as? [[String: Any]] ?? []
            }
            #expect(listed.contains { $0["username"] as? String == "night-guard" })
            #expect(!listed.contains { $0["username"] as? String == "other-manager" })
        }
    }
}
