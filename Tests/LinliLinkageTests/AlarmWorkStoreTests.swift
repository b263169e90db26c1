import Foundation
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliLinkage
@testable import LinliStorage
@testable import LinliWorkOrders

/// What work from alarms keeps, on every engine: where an alarm is, one work order per alarm, the
/// roster's skills and shifts.
@Suite("Alarm places, alarm work orders and the roster on every engine")
struct AlarmWorkStoreTests {
    @Test(arguments: TestEngine.available)
    func placesWorkOrdersAndTheRoster(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let c = place.community.id
            let product = Product(
                communityId: c, productKey: Product.newKey(), name: "Smoke", libraryKey: nil,
                tslJson: AlarmStoreTests.tsl)
            try await store.createProduct(product, actor: tester)
            var inFlat = DevicePlacement()
            inFlat.householdId = place.households[1].id
            inFlat.buildingId = place.building.id
            inFlat.location = "厨房"
            var inHall = DevicePlacement()
            inHall.unitId = place.unit.id
            inHall.buildingId = place.building.id
            let devices = try await store.registerDevices(
                product: product, [("smoke-102", inFlat), ("smoke-hall", inHall)], actor: tester
            ).map(\.0)
            func raise(_ device: Device?, building: ID? = nil) async throws -> Alarm {
                try await store.raiseAlarm(
                    AlarmRaise(
                        communityId: c, type: "smoke", severity: .critical,
                        sourceType: device == nil ? "person" : "device",
                        sourceId: device?.id ?? newID(), sourceName: device?.deviceName ?? "someone",
                        buildingId: building, householdId: nil, ruleId: nil, message: "烟雾", detail: "d", at: nowMillis()
                    )
                ).alarm
            }
            let flat = try await raise(devices[0])
            let hall = try await raise(devices[1])
            let building = try await raise(nil, building: place.building.id)
            let nowhere = try await raise(nil)
            let places = try await store.alarmPlaces([flat, hall, building, nowhere])
            #expect(places[flat.id]?.place == "1号楼 1单元 102 · 厨房" && places[flat.id]?.device?.id == devices[0].id)
            #expect(places[hall.id]?.place == "1号楼 1单元")
            #expect(places[building.id]?.place == "1号楼" && places[building.id]?.device == nil)
            #expect(places[nowhere.id]?.place == "")

            // One work order per alarm: the second opening is undone whole.
            func open(_ title: String) async throws -> WorkOrder {
                try await store.submitWorkOrder(
                    WorkOrderReport(
                        communityId: c, category: .security, title: title, description: "", source: .alarm,
                        reporterAccountId: nil, reporterName: "告警", alarmId: flat.id),
                    actor: tester,
                    alongside: { db, order in try await Store.linkOnce(flat.id, toWorkOrder: order.id, db) })
            }
            let first = try await open("first")
            await #expect(throws: StoreError.self) { _ = try await open("second") }
            #expect(try await store.alarm(id: flat.id, scope: .everything)?.workOrderId == first.id)
            let titles = try await store.workOrders(
                communityId: c, filter: WorkOrderFilter(), page: PageRequest(limit: 10), scope: .everything
            ).items.map(\.title)
            #expect(titles == ["first"])

            // The roster: the property company's staff only, defaults until set.
            let company = Organisation(communityId: c, name: "物业", kind: .propertyCompany, phone: "")
            let police = Organisation(communityId: c, name: "派出所", kind: .policeStation, phone: "")
            try await store.createOrganisation(company, actor: tester)
            try await store.createOrganisation(police, actor: tester)
            let engineer = StaffMember(
                communityId: c, organisationId: company.id, name: "钱工", title: "维修", phone: "13900004444",
                accountId: nil)
            let officer = StaffMember(
                communityId: c, organisationId: police.id, name: "孙磊", title: "民警", phone: "13900007777", accountId: nil
            )
            try await store.addStaff(engineer, actor: tester)
            try await store.addStaff(officer, actor: tester)
            var roster = try await store.roster(communityId: c)
            #expect(roster.map(\.staff.name) == ["钱工"] && roster[0].configured == false)
            #expect(roster[0].skills == WorkOrderCategory.allCases && roster[0].shift == .officeHours)
            let night = Shift(days: 0b100_0001, start: 20 * 60, end: 8 * 60)
            try await store.setRoster(
                staffId: engineer.id, communityId: c, skills: [.repair, .noise], shift: night, actor: tester)
            try await store.setRoster(
                staffId: engineer.id, communityId: c, skills: [.noise, .repair], shift: night, actor: tester)
            roster = try await store.roster(communityId: c)
            #expect(roster[0].configured && roster[0].skills == [.repair, .noise] && roster[0].shift == night)
            await #expect(throws: StoreError.self) {
                try await store.setRoster(
                    staffId: engineer.id, communityId: place.community.id + "x", skills: [.repair], shift: night,
                    actor: tester)
            }
        }
    }

    /// The overview's counts: days in Beijing time by the same integer arithmetic on both engines,
    /// an alarm just before midnight there on its own day, an old one outside the seven days.
    @Test(arguments: TestEngine.available)
    func theOverviewCountsAlarmsByBeijingDay(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let c = place.community.id
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
            let now = calendar.date(from: DateComponents(year: 2026, month: 12, day: 8, hour: 9))!
            func at(_ day: Int, _ hour: Int, _ minute: Int = 0) -> Millis {
                let date = calendar.date(
                    from: DateComponents(year: 2026, month: 12, day: day, hour: hour, minute: minute))!
                return Millis(date.timeIntervalSince1970 * 1000)
            }
            for (i, (time, severity)) in [
                (at(8, 0, 30), AlarmSeverity.critical), (at(7, 23, 59), .warning), (at(2, 0, 1), .minor),
                (at(1, 23, 59), .major),
            ].enumerated() {
                _ = try await store.raiseAlarm(
                    AlarmRaise(
                        communityId: c, type: "smoke", severity: severity, sourceType: "person", sourceId: "p-\(i)",
                        sourceName: "someone", buildingId: place.building.id, householdId: nil, ruleId: nil,
                        message: "烟雾", detail: "", at: time))
            }
            let o = try await store.alarmOverview(communityId: c, scope: .everything, days: 7, now: now)
            #expect(o.unacknowledged == 4 && o.critical == 1)
            #expect(o.perDay.map(\.day.day) == ["2", "3", "4", "5", "6", "7", "8"])
            #expect(o.perDay.map(\.count) == [1, 0, 0, 0, 0, 1, 1], "\(o.perDay.map(\.count))")
            var another = Scope()
            another.communities = [newID()]
            let elsewhere = try await store.alarmOverview(communityId: c, scope: another, days: 7, now: now)
            #expect(elsewhere.unacknowledged == 0 && elsewhere.perDay.allSatisfy { $0.count == 0 })
        }
    }
}
