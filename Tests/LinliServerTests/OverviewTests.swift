import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliDeviceRegistry
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliLinkage
@testable import LinliStorage
@testable import LinliWorkOrders

/// A community's first page: what is to do, counted within the caller's reach and leading to its
/// list, and the charts drawn on the server.
@Suite("The community overview: to-dos and charts")
struct OverviewTests {
    @Test func barsScaleToTheLargestAndEveryValueAboveZeroShows() {
        let view = ChartView(
            OverviewChart(
                id: "x", title: "t", unit: "户",
                bars: [.init("自住", 400), .init("出租", 1, link: "/l"), .init("空置", 0)]))
        #expect(view.rows.map(\.width) == [ChartView.barSpace, 3, 0], "1 of 400 is a sliver, 0 is nothing")
        #expect(view.rows[1].title == "出租：1 户" && view.rows[1].hasLink && !view.rows[0].hasLink)
        #expect(view.rows.map(\.y) == [4, 32, 60] && view.height == 3 * ChartView.rowHeight + 8)
        #expect(!view.empty && ChartView(OverviewChart(id: "e", title: "", unit: "", bars: [.init("a", 0)])).empty)
    }

    /// The value of `data-count` of the to-do `id` on the page, nil when the page has no such to-do.
    static func todo(_ id: String, _ page: String) -> (count: Int, pressing: Bool, link: String)? {
        guard let start = page.range(of: "id=\"todo-\(id)\"") else { return nil }
        // The whole <li …>…</li> around the id.
        guard let open = page[..<start.lowerBound].range(of: "<li", options: .backwards) else { return nil }
        let item = String(page[open.lowerBound...].prefix(400))
        func attribute(_ name: String) -> String {
            item.components(separatedBy: "\(name)=\"").dropFirst().first?.components(separatedBy: "\"").first ?? ""
        }
        let classes = item.components(separatedBy: "class=\"").dropFirst().first?.components(separatedBy: "\"").first
        return (Int(attribute("data-count")) ?? -1, classes?.contains("pressing") == true, attribute("href"))
    }

    @Test func toDosAndChartsCountWhatTheCallerMaySee() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let store = fixture.store
            let inGrid = try await store.household(fixture.gridHousehold, scope: .everything)
            let outside = try await store.household(fixture.outsideHousehold, scope: .everything)
            func raise(_ id: String, _ severity: AlarmSeverity, _ home: HouseholdListing, daysAgo: Int = 0) async throws
            {
                _ = try await store.raiseAlarm(
                    AlarmRaise(
                        communityId: c, type: "smoke", severity: severity, sourceType: "device", sourceId: id,
                        sourceName: id, buildingId: home.buildingId, householdId: home.id, ruleId: nil,
                        message: "烟雾报警", detail: "", at: nowMillis() - Millis(daysAgo) * 86_400_000))
            }
            try await raise("a-1", .critical, inGrid)
            try await raise("a-2", .warning, outside)
            try await raise("a-3", .warning, outside, daysAgo: 3)
            try await raise("a-old", .warning, outside, daysAgo: 30)
            let product = Product(
                communityId: c, productKey: Product.newKey(), name: "烟感", libraryKey: nil, tslJson: "{}")
            try await store.createProduct(product, actor: .system)
            let (offline, _) = try await store.registerDevice(product: product, deviceName: "s-1", actor: .system)
            try await store.setDeviceStatus(offline, .offline)
            _ = try await store.registerDevice(product: product, deviceName: "s-2", actor: .system)

            let staff = try await WebTests.signIn(client, "staff")
            let made = try await WorkFromAlarmsTests.post(
                client, "/console/c/\(c)/work-orders", staff,
                "category=repair&title=\(WorkFromAlarmsTests.encoded("楼道灯不亮"))&unitId=\(inGrid.unitId)&room=\(WorkFromAlarmsTests.encoded(inGrid.room))&reporterName=\(WorkFromAlarmsTests.encoded("王阿姨"))&reporterPhone=13800001111"
            )
            #expect(made.status == .seeOther)

            let manager = try await WebTests.signIn(client, "manager")
            let page = try await WorkFromAlarmsTests.page(client, "/console/c/\(c)", manager.cookie)
            #expect(page.status == .ok)
            let board = "/console/c/\(c)/alarms"
            let unacknowledged = try #require(Self.todo("alarms-unacknowledged", page.text))
            #expect(unacknowledged.count == 4 && unacknowledged.pressing, "the month-old one is still open")
            #expect(unacknowledged.link == "\(board)?status=active_unacknowledged")
            let critical = try #require(Self.todo("alarms-critical", page.text))
            #expect(critical.count == 1 && critical.pressing && critical.link.hasSuffix("&amp;severity=critical"))
            let submitted = try #require(Self.todo("work-orders-submitted", page.text))
            #expect(submitted.count == 1 && !submitted.pressing)
            let overdue = try #require(Self.todo("work-orders-overdue", page.text))
            #expect(overdue.count == 0 && !overdue.pressing, "nothing overdue is not pressing")
            #expect(Self.todo("devices-offline", page.text)?.count == 1)
            // What presses comes first.
            let order = ["alarms-critical", "alarms-unacknowledged", "devices-offline"].map {
                page.text.range(of: "id=\"todo-\($0)\"")!.lowerBound
            }
            #expect(order == order.sorted())

            // Charts: homes by use, alarms of the last seven days (today's two, the one of three days
            // ago; not the month-old one), open work orders by status, devices by status.
            for chart in ["occupancy", "alarms-per-day", "work-orders-open", "devices-status"] {
                #expect(page.text.contains("id=\"chart-\(chart)\""), "\(chart)")
            }
            let perDay = page.text.components(separatedBy: "id=\"chart-alarms-per-day\"")[1]
                .components(separatedBy: "</figure>")[0]
            let values = perDay.components(separatedBy: "data-value=\"").dropFirst().compactMap {
                Int($0.prefix { $0 != "\"" })
            }
            #expect(values.count == 7 && values.last == 2 && values[3] == 1 && values.reduce(0, +) == 3, "\(values)")
            #expect(perDay.contains("<title>") && perDay.contains("条</title>"), "each bar's value on hover")
            #expect(page.text.contains("/households?occupancy=rented"))

            // The grid worker counts what is in the grid only.
            let grid = try await WebTests.signIn(client, "grid")
            let theirs = try await WorkFromAlarmsTests.page(client, "/console/c/\(c)", grid.cookie)
            #expect(Self.todo("alarms-unacknowledged", theirs.text)?.count == 1)
            #expect(Self.todo("alarms-critical", theirs.text)?.count == 1)

            // In English, the parts speak English.
            let english = try await WorkFromAlarmsTests.page(client, "/console/c/\(c)", manager.cookie, accept: "en")
            let todos = english.text.components(separatedBy: "id=\"todos\"")[1].components(separatedBy: "</ul>")[0]
            #expect(todos.contains("alarms to acknowledge") && todos.contains("work orders overdue"))
            #expect(todos.range(of: #"\p{Han}"#, options: .regularExpression) == nil, "\(todos)")
        }
    }
}
