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

    @Test func theFormReachesSeveralBuildingsAndUnitsAndPreviewsFirst() async throws {
        try await withApp { client, fixture in
            let session = try await WebTests.signIn(client, "staff")
            let c = fixture.community.id
            let buildings = try await fixture.store.buildings(communityId: c, scope: .everything)
            #expect(buildings.count >= 3)
            let unit = try #require(
                try await fixture.store.units(buildingId: buildings[2].id, scope: .everything).first)
            let headers: HTTPFields = [.cookie: session.cookie, .contentType: "application/x-www-form-urlencoded"]
            let page = try await client.execute(uri: "/console/c/\(c)/notices", method: .get, headers: headers) {
                $0.text
            }
            #expect(
                page.contains("<select name=\"buildings\" multiple") && page.contains("<select name=\"units\" multiple")
            )
            let audience = NoticeAudience(buildings: [buildings[0].id, buildings[1].id], units: [unit.id])
            let reach = try await fixture.store.noticeReach(communityId: c, audience)
            let fields: [(String, String)] = [
                ("_csrf", session.csrf), ("title", "电梯检修 Lift service"), ("body", "周三 Wednesday"), ("to", "places"),
                ("buildings", buildings[0].id), ("buildings", buildings[1].id), ("units", unit.id),
                ("question", "在家吗 Home?"), ("options", "在 yes / 不在 no"),
            ]
            // The preview: the resident's view and the reach, nothing sent, the choices kept.
            let before = try await fixture.store.notices(communityId: c, page: PageRequest()).total
            let preview = try await client.execute(
                uri: "/console/c/\(c)/notices", method: .post, headers: headers,
                body: Self.form(fields + [("intent", "preview")])
            ) { r in
                #expect(r.status == .ok)
                return r.text
            }
            #expect(preview.contains("id=\"notice-preview\"") && preview.contains("<h1>电梯检修 Lift service</h1>"))
            #expect(preview.contains("将发给 \(reach.households) 户"))
            #expect(preview.contains("disabled>在 yes</button>") && preview.contains("disabled>不在 no</button>"))
            #expect(
                preview.contains("value=\"\(buildings[1].id)\" selected")
                    && preview.contains("value=\"\(unit.id)\" selected"))
            #expect(try await fixture.store.notices(communityId: c, page: PageRequest()).total == before)
            // Sent: every household of both buildings and of the unit.
            let location = try await client.execute(
                uri: "/console/c/\(c)/notices", method: .post, headers: headers,
                body: Self.form(fields + [("intent", "send")])
            ) { r in
                #expect(r.status == .found || r.status == .seeOther)
                return r.headers[.location] ?? ""
            }
            let id = String(location.split(separator: "/").last ?? "")
            let notice = try #require(try await fixture.store.notice(id: id))
            #expect(notice.audienceValue == audience && notice.households == reach.households)
            #expect(reach.households > 0 && notice.vacantLeftOut == reach.vacant)
            // A building of another community is refused, naming the field.
            let foreign = Building(communityId: fixture.other.id, name: "外楼", floors: 3)
            try await fixture.store.createBuilding(foreign, actor: .system)
            let refused = try await client.execute(
                uri: "/console/c/\(c)/notices", method: .post, headers: headers,
                body: Self.form([
                    ("_csrf", session.csrf), ("title", "t"), ("body", "b"), ("to", "places"), ("buildings", foreign.id),
                ])
            ) { r in
                #expect(r.status == .unprocessableContent)
                return r.text
            }
            #expect(refused.contains("id=\"notice-error\"") && refused.contains("所选的楼栋或单元不属于本小区"))
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
                    "未回复 · \(try #require(sent["progress"] as? [String: Any])["households"] as! Int - 1) 户"))
            #expect(page.contains("<td data-label=\"房屋\">") && page.contains(home.room))
            #expect(page.contains("href=\"/api/v1/notices/\(id)/answers?format=csv\""))
        }
    }

    @Test func aNoticeScheduledInTheFormShowsItsTimeInUTC8AndCanBeCancelled() async throws {
        try await withApp { client, fixture in
            let session = try await WebTests.signIn(client, "staff")
            let c = fixture.community.id
            let headers: HTTPFields = [.cookie: session.cookie, .contentType: "application/x-www-form-urlencoded"]
            // Tomorrow at 09:30 in UTC+8, as the browser's datetime-local field sends it.
            let day = DateFormatter()
            day.dateFormat = "yyyy-MM-dd"
            day.timeZone = TimeZone(identifier: "Asia/Shanghai")
            let tomorrow = day.string(from: Date().addingTimeInterval(86_400))
            let fields: [(String, String)] = [
                ("_csrf", session.csrf), ("title", "明早停水 Water off"), ("body", "b"), ("to", "everyone"),
                ("intent", "send"),
            ]
            let refused = try await client.execute(
                uri: "/console/c/\(c)/notices", method: .post, headers: headers,
                body: Self.form(fields + [("sendAt", "2020-01-01T09:30")])
            ) { r in
                #expect(r.status == .unprocessableContent)
                return r.text
            }
            #expect(refused.contains("定时发送的时间要在今后 90 天以内"))
            let location = try await client.execute(
                uri: "/console/c/\(c)/notices", method: .post, headers: headers,
                body: Self.form(fields + [("sendAt", "\(tomorrow)T09:30")])
            ) { r in r.headers[.location] ?? "" }
            let id = String(location.split(separator: "/").last ?? "")
            let notice = try #require(try await fixture.store.notice(id: id))
            // Computed here independently of the page's own parser.
            let clock = DateFormatter()
            clock.dateFormat = "yyyy-MM-dd HH:mm"
            clock.timeZone = TimeZone(secondsFromGMT: 8 * 3600)
            let expected = Millis(try #require(clock.date(from: "\(tomorrow) 09:30")).timeIntervalSince1970 * 1000)
            #expect(notice.status == .scheduled && notice.sendAt == expected)
            let list = try await client.execute(uri: "/console/c/\(c)/notices", method: .get, headers: headers) {
                $0.text
            }
            #expect(list.contains("已排期 · \(tomorrow) 09:30（北京时间）"))
            let page = try await client.execute(uri: location, method: .get, headers: headers) { $0.text }
            #expect(page.contains("id=\"notice-scheduled\"") && page.contains("id=\"cancel-notice\""))
            #expect(!page.contains("id=\"progress\""))
            let back = try await client.execute(
                uri: "/console/notices/\(id)/cancel", method: .post, headers: headers,
                body: Self.form([("_csrf", session.csrf)])
            ) { r in r.headers[.location] ?? "" }
            #expect(back == location)
            #expect(try await fixture.store.notice(id: id)?.status == .cancelled)
            let after = try await client.execute(uri: location, method: .get, headers: headers) { $0.text }
            #expect(after.contains("id=\"notice-cancelled\"") && !after.contains("id=\"cancel-notice\""))
        }
    }
}
