import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliDevices
@testable import LinliHTTP

/// The device page's chart: the last hour, day or week as the query asks (a day by default), drawn
/// on the server with a dot per value whose title says its value, unit and Beijing time; one value
/// alone is a dot with its value beside it; many values are bucketed.
@Suite("Device charts")
struct DeviceChartTests {
    /// A time as the chart's titles write it: Beijing time.
    static func beijing(_ t: Millis, _ format: String = "yyyy-MM-dd HH:mm:ss") -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = format
        formatter.timeZone = TimeZone(secondsFromGMT: 8 * 3600)
        return formatter.string(from: Date(timeIntervalSince1970: Double(t) / 1000))
    }

    /// The circles of the chart, each with its title.
    static func points(_ html: String) -> [String] {
        html.components(separatedBy: "<circle class=\"point\"").dropFirst().map {
            $0.components(separatedBy: "</circle>").first ?? ""
        }
    }

    static func chart(_ html: String) -> String {
        guard let start = html.range(of: "<svg xmlns"),
            let end = html.range(of: "</svg>", range: start.upperBound..<html.endIndex)
        else { return "" }
        return String(html[start.lowerBound..<end.upperBound])
    }

    @Test func eachRangeHoldsItsOwnPointsAndTitlesSayValueAndUnit() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let pk = try #require(
                try await staff.call(
                    "/api/v1/communities/\(c)/products", .post, ["library": "environment_sensor"], expect: .created)[
                        "productKey"] as? String)
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post, ["productKey": pk, "deviceName": "env-chart"],
                expect: .created)
            let device = try #require(try await fixture.store.device(productKey: pk, deviceName: "env-chart"))
            let writer = TelemetryWriter(store: fixture.store, logger: quietLogger)
            let now = nowMillis()
            func post(_ identifier: String, _ values: [(Millis, Double)]) async throws {
                let reported = values.map {
                    ReportedValue(
                        identifier: identifier, json: ReportedValue.text(of: $0.1), number: $0.1, time: $0.0,
                        plainNumber: true)
                }
                try await writer.record(
                    DeviceReport(
                        deviceId: device.id, communityId: c, productKey: pk, deviceName: "env-chart",
                        receivedAt: now, content: .batch(properties: reported, events: [])))
            }
            // One value in the last hour, one more in the last day, one more in the last week, and
            // one older than any range.
            let hourAgo = now - 20 * 60_000
            let dayAgo = now - 10 * 3_600_000
            let weekAgo = now - 3 * 86_400_000
            try await post(
                "CurrentTemperature",
                [(now - 10 * 86_400_000, 99), (weekAgo, 12.25), (dayAgo, 18), (hourAgo, 21.5)])

            let session = try await WebTests.signIn(client, "staff")
            func page(_ query: String, accept: String = "zh-CN") async throws -> String {
                let (status, text) = try await WorkFromAlarmsTests.page(
                    client, "/console/d/\(pk)/env-chart\(query)", session.cookie, accept: accept)
                #expect(status == .ok, "\(query)")
                return text
            }

            // The last hour: one value alone, a dot big enough to see with its value beside it.
            let hour = try await page("?property=CurrentTemperature&range=1h")
            let hourChart = Self.chart(hour)
            #expect(hourChart.contains("data-range=\"1h\"") && hourChart.contains("data-points=\"1\""))
            let lone = Self.points(hourChart)
            #expect(lone.count == 1)
            #expect(lone.first?.contains("r=\"5.0\"") == true, "a single value is a visible dot")
            #expect(lone.first?.contains("<title>21.5 °C · \(Self.beijing(hourAgo))</title>") == true, "\(lone)")
            #expect(hourChart.contains("class=\"point-value\"") && hourChart.contains(">21.5 °C</text>"))
            #expect(!hourChart.contains("<polyline"), "no line through one point")
            #expect(hourChart.contains("温度（°C）") && hourChart.contains("北京时间"))
            #expect(!hourChart.contains("18 °C") && !hourChart.contains("12.25"))
            #expect(hour.contains("data-range=\"1h\" aria-current=\"page\""))

            // The last day, also what the page shows without a range.
            for query in ["?property=CurrentTemperature&range=24h", "", "?range=nonsense"] {
                let day = Self.chart(try await page(query))
                let titles = Self.points(day)
                #expect(titles.count == 2, "\(query)")
                #expect(titles.first?.contains("18 °C · \(Self.beijing(dayAgo))") == true, "\(query)")
                #expect(titles.last?.contains("21.5 °C · \(Self.beijing(hourAgo))") == true, "\(query)")
                #expect(day.contains("<polyline class=\"line\""), "\(query)")
                #expect(!day.contains("12.25") && !day.contains("99 °C") && !day.contains("point-value"), "\(query)")
                // The time axis: a label every 6 hours at round Beijing hours.
                #expect(
                    day.contains(
                        ">\(Self.beijing(dayAgo + 6 * 3_600_000 - (dayAgo + 8 * 3_600_000) % (6 * 3_600_000), "HH:mm"))</text>"
                    ), "\(query)")
            }

            // The last week: three values, never the one from ten days ago.
            let week = Self.chart(try await page("?property=CurrentTemperature&range=7d"))
            let weekPoints = Self.points(week)
            #expect(weekPoints.count == 3)
            #expect(weekPoints.first?.contains("12.25 °C · \(Self.beijing(weekAgo))") == true)
            #expect(!week.contains("99 °C"))
            #expect(week.contains(">\(Self.beijing(now, "MM-dd"))</text>"), "days on the time axis")

            // In English, the same chart in English words.
            let english = try await page("?property=CurrentTemperature&range=1h", accept: "en")
            #expect(english.contains("Last hour") && english.contains("温度 (°C)"))
            #expect(Self.chart(english).contains("Beijing time (UTC+8)"))
            #expect(!english.contains("近 1 小时"))

            // Many values over a week are bucketed: at most one point per 2 hours, each with its
            // average, lowest and highest value and count; the last hour still shows its own values.
            let many = (0..<336).map { (now - 7 * 86_400_000 + 60_000 + Millis($0) * 1_800_000, Double(40 + $0 % 7)) }
            try await post("CurrentHumidity", many)
            let bucketed = try await page("?property=CurrentHumidity&range=7d")
            let buckets = Self.points(Self.chart(bucketed))
            #expect(buckets.count >= 80 && buckets.count <= 85, "\(buckets.count)")
            #expect(bucketed.contains("id=\"chart-bucketed\""))
            #expect(buckets.contains { $0.contains("<title>平均 ") && $0.contains("%，4 个值）") }, "\(buckets.prefix(2))")
            #expect(Self.chart(bucketed).contains("class=\"band\""))
            let recent = Self.points(Self.chart(try await page("?property=CurrentHumidity&range=1h")))
            let inLastHour = many.filter { $0.0 >= now - 3_600_000 }
            #expect(recent.count == inLastHour.count && !recent.isEmpty)
            #expect(recent.allSatisfy { !$0.contains("平均") })

            // Nothing in the range: the chart says so.
            let noise = Self.chart(try await page("?property=Noise&range=1h"))
            #expect(Self.points(noise).isEmpty && noise.contains("最近 1 小时没有数值"))
        }
    }

    /// What the chart reads, on SQLite and PostgreSQL: the values of the range only, one by one up
    /// to the limit, then one bucket per step of the range with its average, lowest, highest and count.
    @Test(arguments: TestEngine.available)
    func theChartReadsItsRangeOnEveryEngine(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let tsl =
                #"{"properties":[{"identifier":"Temp","name":"温度","accessMode":"r","dataType":{"type":"float","specs":{"min":"-40","max":"120","unit":"°C"}}}],"events":[],"services":[]}"#
            let product = Product(
                communityId: place.community.id, productKey: Product.newKey(), name: "Thermometer", libraryKey: nil,
                tslJson: tsl)
            try await store.createProduct(product, actor: tester)
            let device = try #require(
                try await store.registerDevices(product: product, [("t-chart", DevicePlacement())], actor: tester)
                    .first?.0)
            let writer = TelemetryWriter(store: store, logger: quietLogger)
            let to: Millis = 1_800_000_000_000
            // Every 5 minutes for 8 days back from `to`: 12 in the last hour, 288 in the last day.
            let values = (1...(8 * 288)).map { i -> ReportedValue in
                let v = Double(i % 10)
                return ReportedValue(
                    identifier: "Temp", json: ReportedValue.text(of: v), number: v, time: to - Millis(i) * 300_000,
                    plainNumber: true)
            }
            try await writer.record(
                DeviceReport(
                    deviceId: device.id, communityId: place.community.id, productKey: product.productKey,
                    deviceName: "t-chart", receivedAt: to, content: .batch(properties: values, events: [])))
            await writer.idle()

            let hour = try await ChartPoint.load(
                store, device, identifier: "Temp", range: .hour, from: to - 3_600_000, to: to)
            #expect(!hour.bucketed && hour.points.count == 12)
            #expect(hour.points.allSatisfy { $0.t >= to - 3_600_000 && $0.t < to && $0.count == 1 })
            #expect(hour.points.map(\.t) == hour.points.map(\.t).sorted(), "oldest first")

            let day = try await ChartPoint.load(
                store, device, identifier: "Temp", range: .day, from: to - 86_400_000, to: to)
            #expect(day.bucketed && day.points.count == 96, "\(day.points.count)")
            #expect(day.points.reduce(0) { $0 + $1.count } == 288, "every value of the day, and only those")
            #expect(day.points.allSatisfy { $0.count == 3 && $0.min <= $0.value && $0.value <= $0.max })

            let week = try await ChartPoint.load(
                store, device, identifier: "Temp", range: .week, from: to - 7 * 86_400_000, to: to)
            #expect(week.bucketed && week.points.count == 84, "\(week.points.count)")
            #expect(week.points.reduce(0) { $0 + $1.count } == 7 * 288)
            #expect(week.points.allSatisfy { $0.count == 24 && $0.min == 0 && $0.max == 9 }, "24 values a bucket")
        }
    }

    @Test func numbersAndTimesReadAsPeopleWriteThem() {
        #expect(DeviceChart.number(21.5) == "21.5" && DeviceChart.number(18) == "18")
        #expect(DeviceChart.number(0.126) == "0.13" && DeviceChart.number(-0.001) == "0")
        #expect(DeviceChart.withUnit("40", "%") == "40%" && DeviceChart.withUnit("21.5", "°C") == "21.5 °C")
        #expect(ChartRange(query: nil) == .day && ChartRange(query: "7d") == .week && ChartRange(query: "2d") == .day)
        // 2026-12-07 16:00 UTC is midnight in Beijing: the week's axis labels it 12-08.
        let midnight: Millis = 1_796_659_200_000
        #expect(DeviceChart.time(midnight, "MM-dd HH:mm") == "12-08 00:00")
        let ticks = DeviceChart.timeTicks(range: .week, from: midnight - 3_600_000, to: midnight + 86_400_000 + 1)
        #expect(ticks.components(separatedBy: "class=\"time-tick\"").count - 1 == 2)
        #expect(ticks.contains(">12-08</text>") && ticks.contains(">12-09</text>"))
    }
}
