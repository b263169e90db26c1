import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliLinkage
@testable import LinliMessaging
@testable import LinliStorage
@testable import LinliWorkOrders

/// Work from alarms and dispatch: an alarm names its place and becomes one work order linked both
/// ways; dispatch registers work orders and gives them to the roster's staff by skill and shift;
/// whoever gets one, and the resident who reported it, are told.
@Suite("Work from alarms, the roster and who is told")
struct WorkFromAlarmsTests {
    /// 2026-12-07 (a Monday) at `hour`:`minute` in Beijing.
    static func beijing(day: Int = 7, _ hour: Int, _ minute: Int = 0) -> Millis {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        let date = calendar.date(from: DateComponents(year: 2026, month: 12, day: day, hour: hour, minute: minute))!
        return Millis(date.timeIntervalSince1970 * 1000)
    }

    @Test func shiftsCoverTheirHoursInBeijingTime() {
        let office = Shift.officeHours
        #expect(office.covers(Self.beijing(8, 30)) && office.covers(Self.beijing(17, 29)))
        #expect(!office.covers(Self.beijing(17, 30)) && !office.covers(Self.beijing(8, 29)))
        #expect(!office.covers(Self.beijing(day: 12, 10)), "Saturday is off")
        // A night shift from Sunday evening runs into Monday morning; Monday evening's is Monday's.
        let night = Shift(days: 1 << 6, start: 20 * 60, end: 8 * 60)
        #expect(night.covers(Self.beijing(day: 6, 21)) && night.covers(Self.beijing(day: 7, 7, 59)))
        #expect(!night.covers(Self.beijing(day: 7, 8)) && !night.covers(Self.beijing(day: 7, 21)))
        #expect(Shift(days: 0b111_1111, start: 0, end: 0).covers(Self.beijing(3, 0)), "the same hours: all day")
        #expect(Shift.minutes("08:30") == 510 && Shift.minutes("8:05") == 485 && Shift.clock(485) == "08:05")
        for bad in ["", "24:00", "12:60", "1230", "ab:cd", "12:3", "-1:00"] {
            #expect(Shift.minutes(bad) == nil, "\(bad)")
        }
    }

    static func post(
        _ client: any TestClientProtocol, _ uri: String, _ session: (cookie: String, csrf: String, location: String),
        _ form: String, accept: String = "zh-CN"
    ) async throws -> (status: HTTPResponse.Status, location: String, text: String) {
        try await client.execute(
            uri: uri, method: .post,
            headers: [
                .cookie: session.cookie, .contentType: "application/x-www-form-urlencoded", .acceptLanguage: accept,
            ],
            body: ByteBuffer(string: form + "&_csrf=\(session.csrf)")
        ) { ($0.status, $0.headers[.location] ?? "", $0.text) }
    }

    static func page(_ client: any TestClientProtocol, _ uri: String, _ cookie: String, accept: String = "zh-CN")
        async throws -> (status: HTTPResponse.Status, text: String)
    {
        try await client.execute(uri: uri, method: .get, headers: [.cookie: cookie, .acceptLanguage: accept]) {
            ($0.status, $0.text)
        }
    }

    static func encoded(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
    }

    @Test func dispatchGivesWorkToTheRosterAndTellsWhoGetsIt() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let store = fixture.store
            let relay = try WorkOrderRelay(store: store, logger: quietLogger)
            try await relay.relayPending()  // from here on
            let staff = try await WebTests.signIn(client, "staff")
            let roster = try await store.roster(communityId: c)
            let engineer = try #require(roster.first { $0.staff.name == "钱工" })
            #expect(engineer.staff.accountId == nil && engineer.skills.contains(.repair))
            #expect(!roster.contains { $0.staff.name == "孙磊" }, "a police officer is no one's to dispatch")

            // The roster page, and a shift changed with a mistake first.
            let list = try await Self.page(client, "/console/c/\(c)/roster", staff.cookie)
            #expect(list.status == .ok && list.text.contains("id=\"staff-\(engineer.staff.id)\""))
            #expect(list.text.contains("维修工程师") && list.text.contains("无账号，短信通知"))
            let wrong = try await Self.post(
                client, "/console/c/\(c)/roster/\(engineer.staff.id)", staff,
                "skill.repair=on&day.0=on&start=25%3A00&end=18%3A00")
            #expect(wrong.status == .unprocessableContent && wrong.text.contains("id=\"start-error\""))
            #expect(!wrong.text.contains("id=\"end-error\"") && wrong.text.contains("value=\"18:00\""))
            let none = try await Self.post(
                client, "/console/c/\(c)/roster/\(engineer.staff.id)", staff, "day.0=on&start=08%3A00&end=18%3A00")
            #expect(none.status == .unprocessableContent && none.text.contains("id=\"skills-error\""))
            let saved = try await Self.post(
                client, "/console/c/\(c)/roster/\(engineer.staff.id)", staff,
                "skill.repair=on&skill.sanitation=on&day.0=on&day.1=on&day.2=on&day.3=on&day.4=on&day.5=on&day.6=on&start=00%3A00&end=00%3A00"
            )
            #expect(saved.status == .seeOther && saved.location == "/console/c/\(c)/roster")
            let changed = try #require(
                try await store.roster(communityId: c).first { $0.staff.id == engineer.staff.id })
            #expect(changed.skills == [.repair, .sanitation] && changed.onDuty(at: nowMillis()))
            #expect(try await Self.page(client, "/console/c/\(c)/roster", staff.cookie).text.contains("周一至周日 全天"))

            // A work order registered by dispatch, for a room, given to the engineer at once.
            let home = try await store.household(fixture.residentHousehold, scope: .everything)
            let form = try await Self.page(client, "/console/c/\(c)/work-orders/new", staff.cookie)
            #expect(form.status == .ok && form.text.contains("value=\"staff:\(engineer.staff.id)\""))
            let made = try await Self.post(
                client, "/console/c/\(c)/work-orders", staff,
                "category=repair&title=\(Self.encoded("楼道灯不亮"))&unitId=\(home.unitId)&room=\(Self.encoded(home.room))"
                    + "&reporterName=\(Self.encoded("王阿姨"))&reporterPhone=13800001111&assignee=staff%3A\(engineer.staff.id)"
            )
            #expect(made.status == .seeOther && made.location.hasPrefix("/console/work-orders/"))
            let orderId = String(made.location.dropFirst("/console/work-orders/".count))
            let order = try #require(try await store.workOrder(id: orderId))
            #expect(order.status == .assigned && order.assigneeStaffId == engineer.staff.id)
            #expect(order.assigneeName == "钱工" && order.assigneeAccountId == nil && order.householdId == home.id)
            #expect(order.source == .staff && order.reporterName == "王阿姨" && order.reporterAccountId == nil)
            let orderPage = try await Self.page(client, made.location, staff.cookie)
            #expect(orderPage.text.contains("\(home.buildingName) \(home.unitName) \(home.room)"))

            // The engineer has no account: an SMS to his phone, queued, the phone encrypted.
            try await relay.relayPending()
            let texts = try await store.read { db in
                try await db.all(
                    OutboundMessage.self,
                    "SELECT * FROM outbound_messages WHERE account_id IS NULL AND person_id IS NULL")
            }
            #expect(texts.count == 1 && texts.first?.addressMasked == PhoneNumber.masked(engineer.staff.phone))
            #expect(
                texts.first?.body.contains(order.number) == true && texts.first?.addressCipher != engineer.staff.phone)
            #expect(try store.cipher.decrypt(texts.first?.addressCipher ?? "") == engineer.staff.phone)

            // Given on to the service desk's 李娜, who has an account: her inbox, with a link.
            let desk = try #require(roster.first { $0.staff.name == "李娜" })
            let manager = try await WebTests.signIn(client, "manager")
            let step = try await Self.post(
                client, "/console/work-orders/\(orderId)/steps", manager,
                "step=assign&assigneeId=staff%3A\(desk.staff.id)")
            #expect(step.status == .seeOther)
            try await relay.relayPending()
            try await relay.relayPending()  // a second pass tells no one twice
            let inbox = try await store.notifications(
                accountId: try #require(desk.staff.accountId), unreadOnly: true, page: PageRequest(limit: 10)
            ).items
            #expect(inbox.count == 1 && inbox.first?.title == "工单 \(order.number) 派给了您")
            #expect(inbox.first?.link == "/console/work-orders/\(orderId)")

            // The form's checks, each beside its field; another community's unit is no unit here.
            let elsewhere = Building(communityId: fixture.other.id, name: "9号楼", floors: 6)
            try await store.createBuilding(elsewhere, actor: .system)
            let elsewhereUnit = BuildingUnit(communityId: fixture.other.id, buildingId: elsewhere.id, name: "1单元")
            try await store.createUnit(elsewhereUnit, actor: .system)
            let foreign = try await Self.post(
                client, "/console/c/\(c)/work-orders", staff, "category=repair&title=x&unitId=\(elsewhereUnit.id)")
            #expect(foreign.status == .unprocessableContent && foreign.text.contains("id=\"room-error\""))
            let bad = try await Self.post(
                client, "/console/c/\(c)/work-orders", staff,
                "category=nothing&title=&room=101&reporterPhone=call-me&assignee=staff%3Anobody")
            #expect(bad.status == .unprocessableContent)
            for field in ["category", "title", "room", "reporterPhone", "assignee"] {
                #expect(bad.text.contains("id=\"\(field)-error\""), "\(field)")
            }
            #expect(bad.text.contains("value=\"call-me\""), "what was typed is kept")
            let wrongRoom = try await Self.post(
                client, "/console/c/\(c)/work-orders", staff, "category=repair&title=x&unitId=\(home.unitId)&room=9999")
            #expect(wrongRoom.status == .unprocessableContent && wrongRoom.text.contains("这个单元没有这个房号"))

            // Who may not: a guard (no work orders to handle), a resident; a form without its token.
            let guardSession = try await WebTests.signIn(client, "guard")
            #expect(
                try await Self.page(client, "/console/c/\(c)/work-orders/new", guardSession.cookie).status == .forbidden
            )
            #expect(
                try await Self.post(client, "/console/c/\(c)/roster/\(desk.staff.id)", guardSession, "start=08%3A00")
                    .status
                    == .forbidden)
            let resident = try await WebTests.signIn(client, "resident")
            #expect(
                try await Self.post(client, "/console/c/\(c)/work-orders", resident, "category=repair&title=x").status
                    == .forbidden)
            let forged = try await client.execute(
                uri: "/console/c/\(c)/work-orders", method: .post,
                headers: [.cookie: staff.cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "category=repair&title=x")
            ) { $0.status }
            #expect(forged == .forbidden)
            let count = try await store.workOrders(
                communityId: c, filter: WorkOrderFilter(), page: PageRequest(limit: 100), scope: .everything
            ).items.filter { $0.title == "x" }.count
            #expect(count == 0)
        }
    }

    @Test func residentsHearWhatHappensToTheirReports() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let store = fixture.store
            let relay = try WorkOrderRelay(store: store, logger: quietLogger)
            try await relay.relayPending()
            let residentAccount = try #require(try await store.account(username: "resident"))
            let made = try await APIUser(client, fixture, as: "resident").call(
                "/api/v1/communities/\(c)/work-orders", .post, ["category": "repair", "title": "水管漏水"], expect: .created
            )
            let id = try #require(made["id"] as? String)
            let number = try #require(made["number"] as? String)
            let staff = APIUser(client, fixture, as: "staff")
            try await staff.call("/api/v1/work-orders/\(id)/steps", .post, ["step": "accept"])
            try await relay.relayPending()
            var inbox = try await store.notifications(
                accountId: residentAccount.id, unreadOnly: true, page: PageRequest(limit: 10)
            ).items
            #expect(inbox.map(\.title) == ["您的报事 \(number) 已受理"])
            #expect(inbox.first?.link == "/app/reports/\(id)")
            // In English for a resident who chose English; the note comes with a resolution.
            try await store.setLanguage(accountId: residentAccount.id, .en)
            try await staff.call("/api/v1/work-orders/\(id)/steps", .post, ["step": "grab"])
            try await staff.call("/api/v1/work-orders/\(id)/steps", .post, ["step": "resolve", "note": "换了阀门"])
            try await relay.relayPending()
            inbox = try await store.notifications(
                accountId: residentAccount.id, unreadOnly: true, page: PageRequest(limit: 10)
            ).items
            #expect(inbox.first?.title == "Your report \(number) is resolved: please rate it")
            #expect(inbox.first?.body == "水管漏水\nNote: 换了阀门")
            // The resident's own step (rating) tells the resident nothing.
            let before = inbox.count
            try await APIUser(client, fixture, as: "resident").call(
                "/api/v1/work-orders/\(id)/steps", .post, ["step": "rate", "rating": 5])
            try await relay.relayPending()
            #expect(
                try await store.notifications(
                    accountId: residentAccount.id, unreadOnly: true, page: PageRequest(limit: 10)
                )
                .items.count == before)
            // The one who grabbed it is not told of his own grab.
            let staffAccount = try #require(try await store.account(username: "staff"))
            #expect(
                try await store.notifications(
                    accountId: staffAccount.id, unreadOnly: false, page: PageRequest(limit: 10)
                )
                .items.isEmpty)
        }
    }

    @Test func anAlarmNamesItsPlaceAndBecomesOneWorkOrder() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let store = fixture.store
            let home = try await store.household(fixture.residentHousehold, scope: .everything)
            let alarm = try await store.raiseAlarm(
                AlarmRaise(
                    communityId: c, type: "smoke", severity: .critical, sourceType: "person", sourceId: "p-1",
                    sourceName: "烟感", buildingId: home.buildingId, householdId: home.id, ruleId: nil,
                    message: "烟雾报警", detail: "SmokeConcentration = 412 (> 300)", at: nowMillis())
            ).alarm
            let place = "\(home.buildingName) \(home.unitName) \(home.room)"
            let staff = try await WebTests.signIn(client, "staff")
            let board = try await Self.page(client, "/console/c/\(c)/alarms", staff.cookie)
            #expect(board.text.contains(place) && board.text.contains(">紧急<"), "the place, the severity by its label")
            let detail = try await Self.page(client, "/console/alarms/\(alarm.id)", staff.cookie)
            #expect(detail.text.contains("id=\"open-work-order\"") && detail.text.contains(place))
            #expect(detail.text.contains("data-status=\"active_unacknowledged\""))
            let english = try await Self.page(client, "/console/alarms/\(alarm.id)", staff.cookie, accept: "en")
            #expect(english.text.contains("Open a work order") && !english.text.contains("建立工单"))

            // The form comes filled in from the alarm: a smoke alarm is security's.
            let form = try await Self.page(client, "/console/alarms/\(alarm.id)/work-order", staff.cookie)
            #expect(form.status == .ok && form.text.contains("value=\"烟雾报警\""))
            #expect(
                form.text.contains("<option value=\"security\" selected>") && form.text.contains("value=\"\(place)\""))
            let opened = try await Self.post(
                client, "/console/alarms/\(alarm.id)/work-order", staff,
                "category=security&title=\(Self.encoded("烟雾报警"))&location=\(Self.encoded(place))")
            #expect(opened.status == .seeOther && opened.location.hasPrefix("/console/work-orders/"))
            let orderId = String(opened.location.dropFirst("/console/work-orders/".count))
            let order = try #require(try await store.workOrder(id: orderId))
            #expect(order.alarmId == alarm.id && order.source == .alarm && order.householdId == home.id)
            #expect(try await store.alarm(id: alarm.id, scope: .everything)?.workOrderId == orderId)
            let orderPage = try await Self.page(client, opened.location, staff.cookie)
            #expect(orderPage.text.contains("href=\"/console/alarms/\(alarm.id)\""), "the work order links its alarm")
            let linked = try await Self.page(client, "/console/alarms/\(alarm.id)", staff.cookie)
            #expect(linked.text.contains("id=\"alarm-work-order\"") && linked.text.contains(order.number))
            #expect(!linked.text.contains("id=\"open-work-order\""))
            // A second try, as a second dispatcher would: the first work order, not another.
            let again = try await Self.post(
                client, "/console/alarms/\(alarm.id)/work-order", staff, "category=security&title=again")
            #expect(again.location == opened.location)
            let orders = try await store.workOrders(
                communityId: c, filter: WorkOrderFilter(), page: PageRequest(limit: 100), scope: .everything
            ).items.filter { $0.alarmId == alarm.id }
            #expect(orders.count == 1)
            // The guard sees alarms but handles no work orders.
            let guardSession = try await WebTests.signIn(client, "guard")
            let guardView = try await Self.page(client, "/console/alarms/\(alarm.id)", guardSession.cookie)
            #expect(guardView.status != .ok || !guardView.text.contains("id=\"open-work-order\""))
            #expect(
                try await Self.page(client, "/console/alarms/\(alarm.id)/work-order", guardSession.cookie).status
                    != .ok)
        }
    }
}
