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
@testable import LinliWorkOrders

@Suite("Work orders API")
struct WorkOrdersAPITests {
    @Test func aResidentsReportGoesFromSubmittedToRatedAndEveryStepIsOnTheTimeline() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let resident = APIUser(client, fixture, as: "resident")
            let staff = APIUser(client, fixture, as: "staff")
            let grid = APIUser(client, fixture, as: "grid")
            let made = try await resident.call(
                "/api/v1/communities/\(c)/work-orders", .post,
                ["category": "repair", "title": "厨房水管漏水 kitchen pipe leaks", "description": "since this morning"],
                expect: .created)
            let id = try #require(made["id"] as? String)
            #expect(
                made["status"] as? String == "submitted" && made["source"] as? String == "resident"
                    && made["householdId"] as? String == fixture.residentHousehold)
            #expect((made["number"] as? String)?.hasPrefix("GD") == true && made["overdue"] as? Bool == false)
            // A resident reports only for their own home.
            try await resident.call(
                "/api/v1/communities/\(c)/work-orders", .post,
                ["category": "noise", "title": "x", "householdId": fixture.outsideHousehold],
                expect: .unprocessableContent)
            try await resident.call(
                "/api/v1/communities/\(c)/work-orders", .post, ["category": "teleport", "title": "x"],
                expect: .unprocessableContent)

            // Staff see it and dispatch it to the grid worker.
            #expect(try await staff.call("/api/v1/communities/\(c)/work-orders?status=open")["total"] as? Int == 1)
            let gridAccount = try #require(try await fixture.store.account(username: "grid"))
            try await staff.call("/api/v1/work-orders/\(id)/steps", .post, ["step": "accept"])
            let residentAccount = try #require(try await fixture.store.account(username: "resident"))
            try await staff.call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "assign", "assigneeId": residentAccount.id],
                expect: .unprocessableContent)
            let assigned = try await staff.call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "assign", "assigneeId": gridAccount.id])
            #expect(assigned["assigneeName"] as? String == gridAccount.displayName)
            // The wrong step at the wrong time is a conflict; a resolve needs a note.
            try await staff.call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "rate", "rating": 5], expect: .forbidden)
            try await staff.call("/api/v1/work-orders/\(id)/steps", .post, ["step": "resume"], expect: .conflict)
            try await staff.call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "resolve"], expect: .unprocessableContent)
            try await resident.call("/api/v1/work-orders/\(id)/steps", .post, ["step": "start"], expect: .forbidden)
            try await staff.call("/api/v1/work-orders/\(id)/steps", .post, ["step": "start"])
            try await staff.call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "resolve", "note": "换了阀门 valve replaced"])

            // The reporter rates it (closing it), and may reopen it within the week.
            try await resident.call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "rate", "rating": 6], expect: .unprocessableContent)
            let rated = try await resident.call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "rate", "rating": 4, "note": "快 quick"])
            #expect(rated["status"] as? String == "closed" && rated["rating"] as? Int == 4)
            try await staff.call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "visit", "note": "回访满意 follow-up call: satisfied"])
            let mine = try await resident.call("/api/v1/me/work-orders")
            #expect(mine["total"] as? Int == 1)
            let detail = try await resident.call("/api/v1/work-orders/\(id)")
            let steps = (detail["steps"] as? [[String: Any]] ?? []).compactMap { $0["step"] as? String }
            #expect(steps == ["submit", "accept", "assign", "start", "resolve", "rate", "visit"])
            let reopened = try await resident.call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "reopen", "note": "又漏了 leaking again"])
            #expect(
                reopened["status"] as? String == "submitted" && reopened["reopenCount"] as? Int == 1
                    && reopened["assigneeAccountId"] == nil)
            _ = grid
        }
    }

    @Test func transfersReachTheDepartmentAndNobodyElse() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let police = APIUser(client, fixture, as: "police")
            let made = try await staff.call(
                "/api/v1/communities/\(c)/work-orders", .post,
                ["category": "security", "title": "可疑人员 someone suspicious", "location": "北门 north gate"],
                expect: .created)
            let id = try #require(made["id"] as? String)
            #expect(made["source"] as? String == "staff")
            try await police.call("/api/v1/work-orders/\(id)", expect: .notFound)
            let policeAccount = try #require(try await fixture.store.account(username: "police"))
            let organisation = try #require(
                try await fixture.store.bindings(accountId: policeAccount.id).first?.organisationId)
            try await staff.call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "transfer", "organisationId": "nope"],
                expect: .unprocessableContent)
            try await staff.call(
                "/api/v1/work-orders/\(id)/steps", .post,
                ["step": "transfer", "organisationId": organisation, "note": "报警 for the police"])
            // Now the police station sees and handles it.
            #expect(try await police.call("/api/v1/communities/\(c)/work-orders")["total"] as? Int == 1)
            try await police.call("/api/v1/work-orders/\(id)/steps", .post, ["step": "grab"])
            let done = try await police.call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "resolve", "note": "已处置 dealt with"])
            #expect(done["status"] as? String == "resolved" && done["assigneeName"] as? String != nil)
            try await APIUser(client, fixture, as: "other-manager").call("/api/v1/work-orders/\(id)", expect: .notFound)
            try await APIUser(client, fixture, as: "resident").call("/api/v1/work-orders/\(id)", expect: .notFound)
        }
    }

    @Test func settingsDispatchInTurnAndOverdueOrdersAreMarkedOnce() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let manager = APIUser(client, fixture, as: "manager")
            let staffAccount = try #require(try await fixture.store.account(username: "staff"))
            let gridAccount = try #require(try await fixture.store.account(username: "grid"))
            try await manager.call(
                "/api/v1/communities/\(c)/work-order-settings/noise", .put,
                ["deadlineHours": 1, "dispatch": "round_robin", "team": []],
                expect: .unprocessableContent)
            try await manager.call(
                "/api/v1/communities/\(c)/work-order-settings/noise", .put,
                ["deadlineHours": 1, "dispatch": "round_robin", "team": [staffAccount.id, gridAccount.id]])
            var assignees: [String] = []
            for i in 0..<3 {
                let o = try await manager.call(
                    "/api/v1/communities/\(c)/work-orders", .post, ["category": "noise", "title": "噪音 \(i)"],
                    expect: .created)
                #expect(o["status"] as? String == "assigned")
                assignees.append(o["assigneeAccountId"] as? String ?? "")
            }
            #expect(assignees == [staffAccount.id, gridAccount.id, staffAccount.id])
            let settings =
                try await manager.call("/api/v1/communities/\(c)/work-order-settings")["items"] as? [[String: Any]]
                ?? []
            #expect(
                settings.count == 8
                    && settings.first { $0["category"] as? String == "noise" }?["deadlineHours"] as? Int == 1)
            // Two hours later all three are overdue, and marked so only once.
            let later = nowMillis() + 2 * 3_600_000
            #expect(try await fixture.store.markOverdueWorkOrders(now: later).count == 3)
            #expect(try await fixture.store.markOverdueWorkOrders(now: later + 1000).isEmpty)
            let events = try await fixture.store.read { db in
                try await EventLog.read(db, after: 0, limit: 500, scope: .everything)
            }
            #expect(events.filter { $0.type == "workorder.overdue" }.count == 3)
            #expect(try await manager.call("/api/v1/communities/\(c)/work-orders?overdue=true")["total"] as? Int == 3)
            try await APIUser(client, fixture, as: "grid").call(
                "/api/v1/communities/\(c)/work-order-settings/noise", .put, ["deadlineHours": 2], expect: .forbidden)
        }
    }

    @Test func photosAreCheckedByTheirBytesAndServedToThoseWhoSeeTheOrder() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let resident = APIUser(client, fixture, as: "resident")
            let made = try await resident.call(
                "/api/v1/communities/\(c)/work-orders", .post, ["category": "repair", "title": "门坏了 broken door"],
                expect: .created)
            let id = try #require(made["id"] as? String)
            func upload(_ bytes: [UInt8], as who: String, type: String = "image/png") async throws
                -> HTTPResponse.Status
            {
                var headers = fixture.bearer(who)
                headers[.contentType] = type
                return try await client.execute(
                    uri: "/api/v1/work-orders/\(id)/photos", method: .post, headers: headers,
                    body: ByteBuffer(bytes: bytes)
                ) { $0.status }
            }
            let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array(repeating: 0, count: 64)
            #expect(try await upload(png, as: "resident") == .created)
            #expect(
                try await upload(Array("<svg onload=alert(1)>".utf8), as: "resident", type: "image/png")
                    == .unprocessableContent, "the bytes decide, not the header")
            #expect(
                try await upload(
                    [0xFF, 0xD8, 0xFF] + Array(repeating: 1, count: 5 * 1_048_576), as: "resident", type: "image/jpeg")
                    == .contentTooLarge)
            #expect(try await upload(png, as: "other-manager") == .notFound)
            let detail = try await APIUser(client, fixture, as: "staff").call("/api/v1/work-orders/\(id)")
            let photos = detail["photos"] as? [[String: Any]] ?? []
            #expect(photos.count == 1 && photos.first?["contentType"] as? String == "image/png")
            let url = try #require(photos.first?["url"] as? String)
            try await client.execute(uri: url, method: .get, headers: fixture.bearer("staff")) { r in
                #expect(r.status == .ok && r.headers[.contentType] == "image/png" && Array(buffer: r.body) == png)
            }
            try await client.execute(uri: url, method: .get, headers: fixture.bearer("other-manager")) { r in
                #expect(r.status == .notFound)
            }
        }
    }

    /// With several communities, a client that names none is told which ids it may use, and the
    /// discovery document lists them (with one, it may name none: the Open311 end-to-end tests).
    @Test func open311NamesTheJurisdictionsWhenThereAreSeveral() async throws {
        try await withApp { client, fixture in
            let refused = try await client.execute(uri: "/open311/v2/services.json", method: .get) { $0 }
            #expect(refused.status == .badRequest)
            let text = refused.text
            #expect(text.contains(fixture.community.id) && text.contains(fixture.other.id), "\(text)")
            let discovery = try await client.execute(uri: "/open311/v2/discovery.json", method: .get) { try $0.json() }
            let ids = (discovery["jurisdictions"] as? [[String: Any]])?.compactMap { $0["jurisdiction_id"] as? String }
            #expect(Set(ids ?? []) == [fixture.community.id, fixture.other.id])
            #expect((discovery["key_service"] as? String)?.contains("`linli open311 key --name ") == true)
        }
    }
}
