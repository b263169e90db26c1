import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import SQLKit
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliMessaging
@testable import LinliStorage

@Suite("Notices API")
struct NoticesAPITests {
    @Test func aQuestionReachesHouseholdsAndTheFollowUpListHasThePhones() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let resident = APIUser(client, fixture, as: "resident")
            try await staff.call(
                "/api/v1/communities/\(c)/notices", .post, ["title": "x", "body": "y", "audience": [:]],
                expect: .unprocessableContent)
            try await staff.call(
                "/api/v1/communities/\(c)/notices", .post,
                ["title": "x", "body": "y", "audience": ["everyone": true], "question": "q?", "options": ["only one"]],
                expect: .unprocessableContent)
            let sent = try await staff.call(
                "/api/v1/communities/\(c)/notices", .post,
                [
                    "title": "疫苗接种情况 Vaccination", "body": "请回复 Please answer", "audience": ["everyone": true],
                    "question": "接种情况 Vaccinated?", "options": ["第一针 first dose", "第二针 second dose", "未接种 not yet"],
                ], expect: .created)
            let id = try #require(sent["id"] as? String)
            let households = try #require((sent["progress"] as? [String: Any])?["households"] as? Int)
            #expect(households > 10)

            // The resident sees it for their home and answers; a wrong answer is refused.
            let mine = try await resident.call("/api/v1/me/notices")["items"] as? [[String: Any]] ?? []
            #expect(mine.count == 1 && mine[0]["householdId"] as? String == fixture.residentHousehold)
            try await resident.call(
                "/api/v1/me/notices/\(id)/answer", .post, ["answer": "maybe"], expect: .unprocessableContent)
            try await resident.call(
                "/api/v1/me/notices/\(id)/answer", .post, ["answer": "第二针 second dose"], expect: .noContent)
            let progress = try await staff.call("/api/v1/notices/\(id)")["progress"] as? [String: Any] ?? [:]
            #expect(
                progress["answered"] as? Int == 1 && progress["read"] as? Int == 1
                    && (progress["answers"] as? [String: Int])?["第二针 second dose"] == 1)
            // The follow-up list: every other household, with residents' phones; reading it is audited.
            let follow = try await staff.call("/api/v1/notices/\(id)/follow-up")["items"] as? [[String: Any]] ?? []
            #expect(
                follow.count == households - 1
                    && !follow.contains { $0["householdId"] as? String == fixture.residentHousehold })
            #expect(
                follow.contains {
                    (($0["residents"] as? [[String: Any]]) ?? []).contains {
                        ($0["phone"] as? String)?.isEmpty == false
                    }
                })
            try await client.execute(
                uri: "/api/v1/notices/\(id)/follow-up?format=csv", method: .get, headers: fixture.bearer("staff")
            ) { r in
                #expect(
                    r.status == .ok && r.headers[.contentType]?.hasPrefix("text/csv") == true
                        && String(buffer: r.body).contains("household,place,read,resident,phone"))
            }
            // Households by answer: the one who answered under their answer, the rest under none.
            let lists = try await staff.call("/api/v1/notices/\(id)/answers")["items"] as? [[String: Any]] ?? []
            #expect(lists.map { $0["answer"] as? String } == ["第一针 first dose", "第二针 second dose", "未接种 not yet", nil])
            #expect(
                (lists[1]["households"] as? [[String: Any]])?.map { $0["householdId"] as? String }
                    == [fixture.residentHousehold])
            #expect((lists[3]["households"] as? [[String: Any]])?.count == households - 1)
            try await staff.call("/api/v1/notices/\(id)/answers?format=xls", expect: .badRequest)
            try await client.execute(
                uri: "/api/v1/notices/\(id)/answers?format=csv", method: .get, headers: fixture.bearer("staff")
            ) { r in
                let bytes = Array(r.body.readableBytesView)
                let text = String(decoding: bytes, as: UTF8.self)
                #expect(r.status == .ok && r.headers[.contentType] == "text/csv; charset=utf-8")
                #expect(bytes.starts(with: [0xEF, 0xBB, 0xBF]), "a BOM, so Excel reads UTF-8")
                #expect(text.contains("回答 Answer,楼栋 Building,单元 Unit,房号 Room"))
                #expect(text.contains("第二针 second dose,"))
                #expect(text.contains("\n未回答 No answer,"))
            }
            try await APIUser(client, fixture, as: "other-manager").call(
                "/api/v1/notices/\(id)/answers", expect: .notFound)
            try await APIUser(client, fixture, as: "grid").call("/api/v1/notices/\(id)/answers", expect: .forbidden)
            let audit = try await APIUser(client, fixture, as: "manager").call("/api/v1/audit?subjectId=\(id)")
            #expect(
                Set((audit["items"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }) == [
                    "notice.published", "notice.answered", "notice.followup.viewed", "notice.followup.exported",
                    "notice.answers.viewed", "notice.answers.exported",
                ])
            // Who may not.
            try await APIUser(client, fixture, as: "grid").call("/api/v1/notices/\(id)/follow-up", expect: .forbidden)
            try await APIUser(client, fixture, as: "other-manager").call("/api/v1/notices/\(id)", expect: .notFound)
            try await resident.call("/api/v1/notices/\(id)", expect: .forbidden)
        }
    }

    @Test func householdsStillSilentAtTheDeadlineAreAnEventOnce() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            try await staff.call(
                "/api/v1/communities/\(c)/notices", .post,
                ["title": "t", "body": "b", "audience": ["everyone": true], "answerWithinHours": 0],
                expect: .unprocessableContent)
            let sent = try await staff.call(
                "/api/v1/communities/\(c)/notices", .post,
                [
                    "title": "燃气安全检查 Gas check", "body": "请确认 Please confirm", "audience": ["everyone": true],
                    "answerWithinHours": 24,
                ],
                expect: .created)
            let id = try #require(sent["id"] as? String)
            let answerBy = try #require(sent["answerBy"] as? Int64)
            #expect(abs(answerBy - nowMillis() - 24 * 3_600_000) < 60_000)
            try await APIUser(client, fixture, as: "resident").call(
                "/api/v1/me/notices/\(id)/answer", .post, ["answer": "confirmed"], expect: .noContent)
            #expect(try await fixture.store.markUnansweredNotices(now: answerBy - 1).isEmpty, "not before the deadline")
            let marked = try await fixture.store.markUnansweredNotices(now: answerBy)
            let households = try #require((sent["progress"] as? [String: Any])?["households"] as? Int)
            #expect(marked.count == 1 && marked[0].0.id == id && marked[0].unanswered == households - 1)
            #expect(try await fixture.store.markUnansweredNotices(now: answerBy + 1_000).isEmpty, "once")
            let events = try await staff.call("/api/v1/events?limit=500")["items"] as? [[String: Any]] ?? []
            #expect(
                events.filter { $0["type"] as? String == "notice.unanswered" && $0["subjectId"] as? String == id }.count
                    == 1)
        }
    }

    @Test func residentsCanBeTextedOnTheirRegisteredPhonesOncePerPhone() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            // This server has no SMS gateway: the option is refused by name.
            let refused = try await APIUser(client, fixture, as: "staff").call(
                "/api/v1/communities/\(c)/notices", .post,
                ["title": "t", "body": "b", "audience": ["everyone": true], "smsResidents": true],
                expect: .unprocessableContent)
            #expect((refused["errors"] as? [[String: Any]])?.compactMap { $0["field"] as? String } == ["smsResidents"])
            // The store queues one text per distinct phone of the households' current residents.
            let home = fixture.residentHousehold
            let residents = try await fixture.store.residents(householdId: home).filter(\.current)
            var phones = Set<String>()
            for r in residents {
                let p = try await fixture.store.person(r.personId, scope: .everything, fullPhone: true).phone
                if !p.isEmpty { phones.insert(p) }
            }
            let notice = try await fixture.store.publishNotice(
                communityId: c, title: "停电 Power cut", body: "b", audience: NoticeAudience(households: [home]),
                question: nil, options: ["confirmed"], smsResidents: true, actor: .system)
            let queued = try await fixture.store.outboundMessages(
                communityId: c, status: .pending, page: PageRequest(limit: 500)
            ).items.filter { $0.noticeId == notice.id }
            let texted = Set(try queued.map { try fixture.store.cipher.decrypt($0.addressCipher) })
            #expect(!phones.isEmpty && queued.count == phones.count && texted == phones)
            #expect(queued.allSatisfy { $0.accountId == nil && $0.personId != nil && $0.channel == .sms })
        }
    }

    @Test func audiencesNarrowToBuildingsAndCareTags() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let home = try await fixture.store.household(fixture.residentHousehold, scope: .everything)
            let building = try await staff.call(
                "/api/v1/communities/\(c)/notices", .post,
                ["title": "停水 water off", "body": "10:00–12:00", "audience": ["buildings": [home.buildingId]]],
                expect: .created)
            let all = try await staff.call(
                "/api/v1/communities/\(c)/notices", .post,
                ["title": "all", "body": "b", "audience": ["everyone": true]], expect: .created)
            let inBuilding = ((building["progress"] as? [String: Any])?["households"] as? Int) ?? 0
            let everywhere = ((all["progress"] as? [String: Any])?["households"] as? Int) ?? 0
            #expect(inBuilding > 0 && inBuilding < everywhere)
            // Only occupied homes are reached; the demo's vacant ones are counted apart.
            let (occupied, vacant) = try await fixture.store.read { db in
                (
                    try await db.count(
                        "SELECT COUNT(*) AS n FROM households WHERE community_id = \(bind: c) AND occupancy <> 'vacant'"
                    ),
                    try await db.count(
                        "SELECT COUNT(*) AS n FROM households WHERE community_id = \(bind: c) AND occupancy = 'vacant'")
                )
            }
            #expect(vacant > 0 && everywhere == occupied && all["vacantLeftOut"] as? Int == vacant)
            #expect((building["options"] as? [String]) == ["confirmed"], "without a question, households confirm")
            let tagged = try await staff.call(
                "/api/v1/communities/\(c)/notices", .post,
                ["title": "关爱 care", "body": "b", "audience": ["careTags": ["elderly_alone"]]], expect: .created)
            let careHouseholds = ((tagged["progress"] as? [String: Any])?["households"] as? Int) ?? -1
            // The demo has residents living alone in a few homes: some households, not all.
            #expect(careHouseholds > 0 && careHouseholds < everywhere)
            // The resident's inbox got the ones for their home.
            let inbox =
                try await APIUser(client, fixture, as: "resident").call("/api/v1/me/notifications")["items"]
                as? [[String: Any]] ?? []
            #expect(
                inbox.contains { $0["subjectId"] as? String == all["id"] as? String }
                    && inbox.contains { $0["subjectId"] as? String == building["id"] as? String })
        }
    }

    @Test func aNoticeCanBeScheduledAndCancelledBeforeItGoesOut() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let base: [String: Any] = ["title": "停水 Water off", "body": "b", "audience": ["everyone": true]]
            let past = try await staff.call(
                "/api/v1/communities/\(c)/notices", .post, base.merging(["sendAt": nowMillis() - 1]) { $1 },
                expect: .unprocessableContent)
            #expect((past["errors"] as? [[String: Any]])?.map { $0["field"] as? String } == ["sendAt"])
            let at = nowMillis() + 7_200_000
            let scheduled = try await staff.call(
                "/api/v1/communities/\(c)/notices", .post, base.merging(["sendAt": at]) { $1 }, expect: .created)
            let id = try #require(scheduled["id"] as? String)
            #expect(
                scheduled["status"] as? String == "scheduled" && (scheduled["sendAt"] as? NSNumber)?.int64Value == at)
            let mine = try await APIUser(client, fixture, as: "resident").call("/api/v1/me/notices")["items"] as? [Any]
            #expect(mine?.isEmpty == true, "nobody reached before its time")
            try await APIUser(client, fixture, as: "other-manager").call(
                "/api/v1/notices/\(id)/cancel", .post, expect: .notFound)
            let cancelled = try await staff.call("/api/v1/notices/\(id)/cancel", .post)
            #expect(cancelled["status"] as? String == "cancelled")
            try await staff.call("/api/v1/notices/\(id)/cancel", .post, expect: .conflict)
            #expect(try await fixture.store.sendDueNotices(now: at + 1).isEmpty)
        }
    }
}
