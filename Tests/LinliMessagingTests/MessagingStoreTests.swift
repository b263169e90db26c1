import Foundation
import LinliCore
import LinliTestSupport
import SQLKit
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliMessaging
@testable import LinliStorage

@Suite("Messaging storage on every engine")
struct MessagingStoreTests {
    @Test(arguments: TestEngine.available)
    func outboundCopiesWaitForQuietHoursButNotForCriticalAlarms(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let c = place.community.id
            let account = Account(username: "grid1", displayName: "网格员", passwordHash: "x")
            try await store.createAccount(account, actor: tester)
            let clock = DateFormatter()
            clock.dateFormat = "HH:mm"
            let now = nowMillis()
            let from = clock.string(from: Date(timeIntervalSince1970: Double(now) / 1000 - 3600))
            let to = clock.string(from: Date(timeIntervalSince1970: Double(now) / 1000 + 3600))
            try await store.setNotificationPreferences(
                accountId: account.id, sms: true, email: true, phone: "13800138000", address: "grid@example.org",
                quietFrom: from, quietTo: to, actor: tester)
            let who = [Recipient(accountId: account.id, name: "网格员")]
            try await store.notify(
                who, communityId: c, title: "垃圾桶满 Bin full", body: "b", severity: "minor", link: nil, subjectType: nil,
                subjectId: nil, actor: tester)
            try await store.notify(
                who, communityId: c, title: "烟雾 Smoke", body: "b", severity: "critical", link: nil, subjectType: nil,
                subjectId: nil, actor: tester)
            // Read after the calls: a loaded machine may take seconds over them, which is not a wait.
            let sent = nowMillis()
            let pending = try await store.outboundMessages(communityId: c, status: .pending, page: PageRequest()).items
            #expect(pending.count == 4 && Set(pending.map(\.addressMasked)) == ["138****8000", "g***@example.org"])
            #expect(
                pending.filter { $0.severity == "critical" }.allSatisfy { $0.dueAt <= sent },
                "critical alarms do not wait")
            #expect(
                pending.filter { $0.severity == "minor" }.allSatisfy { $0.dueAt >= now + 58 * 60_000 },
                "the rest waits for the end of the quiet hours")
            // Only the critical copies are due; claimed, they are not handed out twice.
            let due = try await store.claimDueOutbound(now: nowMillis(), limit: 10)
            #expect(Set(due.map(\.channel)) == [.sms, .email] && due.allSatisfy { $0.subject == "烟雾 Smoke" })
            #expect(try await store.claimDueOutbound(now: nowMillis(), limit: 10).isEmpty)
            let sms = try #require(due.first { $0.channel == .sms })
            let retry = try await store.recordOutbound(sms, error: "HTTP 503", now: now)
            #expect(retry.status == .pending && retry.attempts == 1 && retry.dueAt == now + 30_000)
            var last = retry
            for _ in Store.outboundBackoff { last = try await store.recordOutbound(last, error: "HTTP 503", now: now) }
            #expect(last.status == .failed)
            #expect(
                try await store.recordOutbound(try #require(due.first { $0.channel == .email }), error: nil).status
                    == .sent)
            let events = try await store.read { db in
                try await EventLog.read(db, after: 0, limit: 500, scope: .everything)
            }
            #expect(
                events.filter { $0.type == "notification.delivered" }.count == 1
                    && events.filter { $0.type == "notification.undelivered" }.count == 1)
            // The phone and address are kept encrypted.
            let row = try #require(
                try await store.read { db in
                    try await db.raw("SELECT phone_cipher, email_cipher FROM notification_preferences").first()
                })
            let phone = try row.decode(column: "phone_cipher", as: String.self)
            let address = try row.decode(column: "email_cipher", as: String.self)
            #expect(!phone.contains("13800138000") && !address.contains("grid@example.org"))
            #expect(
                try store.cipher.decrypt(phone) == "13800138000" && store.cipher.decrypt(address) == "grid@example.org")
            #expect(try await store.notificationPreferences(accountId: account.id).quietHours != nil)
        }
    }

    @Test(arguments: TestEngine.available)
    func vacantHouseholdsAreLeftOutOfTheAudienceAndCounted(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let c = place.community.id
            let vacant = Household(
                communityId: c, buildingId: place.building.id, unitId: place.unit.id, room: "103", floor: 1, area: 70,
                occupancy: .vacant)
            try await store.createHousehold(vacant, actor: tester)
            let all = try await store.publishNotice(
                communityId: c, title: "停水 Water off", body: "b", audience: NoticeAudience(everyone: true),
                question: nil, options: ["confirmed"], actor: tester)
            #expect(all.households == 2 && all.vacantLeftOut == 1)
            let stored = try #require(try await store.notice(id: all.id))
            #expect(stored.vacantLeftOut == 1, "kept with the notice, for its page")
            #expect(try await store.noticeProgress(all).households == 2)
            #expect(
                try await store.noticeFollowUp(all).map(\.householdId).sorted() == place.households.map(\.id).sorted())
            // Named one by one, a vacant flat is left out all the same.
            let direct = try await store.publishNotice(
                communityId: c, title: "t", body: "b",
                audience: NoticeAudience(households: [vacant.id, place.households[0].id]), question: nil,
                options: ["confirmed"], actor: tester)
            #expect(direct.households == 1 && direct.vacantLeftOut == 1)
            #expect(try await store.noticeProgress(direct).households == 1)
        }
    }

    @Test(arguments: TestEngine.available)
    func theFollowUpListIsInNaturalRoomOrder(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)  // 1号楼 1单元 101 and 102
            let c = place.community.id
            let tenth = Building(communityId: c, name: "10号楼", floors: 12)
            try await store.createBuilding(tenth, actor: tester)
            let third = Building(communityId: c, name: "3号楼", floors: 12)
            try await store.createBuilding(third, actor: tester)
            for building in [tenth, third] {
                let unit = BuildingUnit(communityId: c, buildingId: building.id, name: "1单元")
                try await store.createUnit(unit, actor: tester)
                for room in ["1001", "101", "201"] {
                    try await store.createHousehold(
                        Household(
                            communityId: c, buildingId: building.id, unitId: unit.id, room: room,
                            floor: Int(room.dropLast(2))!, area: 90, occupancy: .rented), actor: tester)
                }
            }
            for room in ["1001", "99"] {
                try await store.createHousehold(
                    Household(
                        communityId: c, buildingId: place.building.id, unitId: place.unit.id, room: room, floor: 1,
                        area: 90, occupancy: .ownerOccupied), actor: tester)
            }
            let notice = try await store.publishNotice(
                communityId: c, title: "t", body: "b", audience: NoticeAudience(everyone: true), question: nil,
                options: ["confirmed"], actor: tester)
            #expect(
                try await store.noticeFollowUp(notice).map(\.place) == [
                    "1号楼 1单元 99", "1号楼 1单元 101", "1号楼 1单元 102", "1号楼 1单元 1001",
                    "3号楼 1单元 101", "3号楼 1单元 201", "3号楼 1单元 1001",
                    "10号楼 1单元 101", "10号楼 1单元 201", "10号楼 1单元 1001",
                ])
        }
    }

    @Test(arguments: TestEngine.available)
    func householdsAreListedByTheirAnswer(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)  // 101 and 102
            let c = place.community.id
            let far = Household(
                communityId: c, buildingId: place.building.id, unitId: place.unit.id, room: "1001", floor: 10, area: 90,
                occupancy: .rented)
            try await store.createHousehold(far, actor: tester)
            let notice = try await store.publishNotice(
                communityId: c, title: "接种 Vaccination", body: "b", audience: NoticeAudience(everyone: true),
                question: "接种情况?", options: ["已接种 done", "未接种 not yet"], actor: tester)
            try await store.answerNotice(notice, householdId: far.id, answer: "未接种 not yet", actor: tester)
            try await store.answerNotice(
                notice, householdId: place.households[1].id, answer: "未接种 not yet", actor: tester)
            let lists = try await store.noticeAnswerLists(notice)
            #expect(lists.map(\.answer) == ["已接种 done", "未接种 not yet", nil])
            #expect(lists[0].households.isEmpty)
            #expect(lists[1].households.map(\.room) == ["102", "1001"], "in room order")
            #expect(lists[1].households.allSatisfy { $0.answeredBy == "test" && $0.answeredAt != nil })
            #expect(lists[2].households.map(\.householdId) == [place.households[0].id])
            // Another community's notice lists only its own households.
            let other = try await Place.make(store, name: "别的小区")
            let theirs = try await store.publishNotice(
                communityId: other.community.id, title: "t", body: "b", audience: NoticeAudience(everyone: true),
                question: "q", options: ["a", "b"], actor: tester)
            #expect(
                Set(try await store.noticeAnswerLists(theirs).flatMap(\.households).map(\.householdId))
                    == Set(other.households.map(\.id)))
        }
    }

    @Test(arguments: TestEngine.available)
    func aScheduledNoticeGoesOutOnceAtItsTimeUnlessCancelled(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let c = place.community.id
            let now = nowMillis()
            let later = try await store.scheduleNotice(
                communityId: c, title: "明早停水 Water off tomorrow", body: "b", audience: NoticeAudience(everyone: true),
                question: nil, options: ["confirmed"], sendAt: now + 3_600_000, answerWithinHours: 24, actor: tester)
            let dropped = try await store.scheduleNotice(
                communityId: c, title: "作废 Dropped", body: "b", audience: NoticeAudience(everyone: true),
                question: nil, options: ["confirmed"], sendAt: now + 3_600_000, actor: tester)
            #expect(later.status == .scheduled && later.households == 0)
            // Nobody is reached before the time.
            #expect(try await store.sendDueNotices(now: now).isEmpty)
            #expect(try await store.notices(forHouseholds: place.households.map(\.id)).isEmpty)
            let cancelled = try await store.cancelScheduledNotice(dropped, actor: tester)
            #expect(cancelled.status == .cancelled)
            // At the time (as a server started afterwards finds it: read from storage), it goes out once.
            let due = now + 3_600_001
            let sent = try await store.sendDueNotices(now: due)
            #expect(sent.map(\.id) == [later.id])
            let stored = try #require(try await store.notice(id: later.id))
            #expect(stored.status == .sent && stored.households == 2 && stored.answerBy == due + 24 * 3_600_000)
            #expect(try await store.notice(id: dropped.id)?.status == .cancelled)
            #expect(try await store.notices(forHouseholds: place.households.map(\.id)).count == 2)
            #expect(try await store.sendDueNotices(now: due + 60_000).isEmpty, "not twice")
            await #expect(throws: StoreError.self) { try await store.cancelScheduledNotice(stored, actor: tester) }
            let events = try await store.read { db in
                try await EventLog.read(db, after: 0, limit: 500, scope: .everything)
            }
            #expect(events.filter { $0.subjectId == later.id }.map(\.type) == ["notice.scheduled", "notice.published"])
        }
    }
}
