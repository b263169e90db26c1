import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliMessaging
@testable import LinliStorage

/// The notice pages of the console, through the router with a real sign-in.
@Suite("Notice pages")
struct NoticePagesTests {
    static func form(_ fields: [(String, String)]) -> ByteBuffer {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-_.")
        return ByteBuffer(
            string: fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }
                .joined(separator: "&"))
    }

    @Test func theNoticePageSaysHowManyVacantHomesWereLeftOut() async throws {
        try await withApp { client, fixture in
            let session = try await WebTests.signIn(client, "staff")
            let sent = try await APIUser(client, fixture, as: "staff").call(
                "/api/v1/communities/\(fixture.community.id)/notices", .post,
                ["title": "停电 Power cut", "body": "b", "audience": ["everyone": true]], expect: .created)
            let vacant = try #require(sent["vacantLeftOut"] as? Int)
            #expect(vacant > 0)
            let page = try await client.execute(
                uri: "/console/notices/\(sent["id"] as? String ?? "")", method: .get, headers: [.cookie: session.cookie]
            ) { $0.text }
            #expect(page.contains("id=\"vacant-left-out\">另有 \(vacant) 户空置房屋未计入"))
        }
    }

    @Test func aQuestionsPageListsHouseholdsByAnswer() async throws {
        try await withApp { client, fixture in
            let session = try await WebTests.signIn(client, "staff")
            let sent = try await APIUser(client, fixture, as: "staff").call(
                "/api/v1/communities/\(fixture.community.id)/notices", .post,
                [
                    "title": "接种 Vaccination", "body": "b", "audience": ["everyone": true], "question": "q",
                    "options": ["已接种 done", "未接种 not yet"],
                ], expect: .created)
            let id = try #require(sent["id"] as? String)
            try await APIUser(client, fixture, as: "resident").call(
                "/api/v1/me/notices/\(id)/answer", .post, ["answer": "未接种 not yet"], expect: .noContent)
            let home = try await fixture.store.household(fixture.residentHousehold, scope: .everything)
            let page = try await client.execute(
                uri: "/console/notices/\(id)?partial=1", method: .get, headers: [.cookie: session.cookie]
            ) { $0.text }
            #expect(page.contains("已接种 done · 0 户") && page.contains("未接种 not yet · 1 户"))
            #expect(
                page.contains(
                    "未回答 No answer · \(try #require(sent["progress"] as? [String: Any])["households"] as! Int - 1) 户"))
            #expect(page.contains("<td data-label=\"Home\">") && page.contains(home.room))
            #expect(page.contains("href=\"/api/v1/notices/\(id)/answers?format=csv\""))
        }
    }
}
