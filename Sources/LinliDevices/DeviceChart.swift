import Foundation
import LinliCore
import LinliDeviceRegistry
import LinliStorage

/// The span of time a device's chart shows: the last hour, day or week, named in the page's query
/// (`range=1h`, `24h`, `7d`; a day when there is none or it is not one of them).
enum ChartRange: String, CaseIterable, Sendable {
    case hour = "1h"
    case day = "24h"
    case week = "7d"

    static let standard = ChartRange.day

    init(query: String?) { self = query.flatMap(ChartRange.init(rawValue:)) ?? .standard }

    var millis: Millis {
        switch self {
        case .hour: 3_600_000
        case .day: 86_400_000
        case .week: 7 * 86_400_000
        }
    }

    /// When there are more values than a chart can show one by one: one point per bucket of this
    /// length (60 a hour, 96 a day, 84 a week).
    var bucketMillis: Millis {
        switch self {
        case .hour: 60_000
        case .day: 900_000
        case .week: 7_200_000
        }
    }

    /// The time axis is labelled every so often, at round Beijing times.
    var tickMillis: Millis {
        switch self {
        case .hour: 900_000
        case .day: 6 * 3_600_000
        case .week: 86_400_000
        }
    }

    /// How the axis labels a tick: the clock for an hour or a day, the date for a week.
    var tickFormat: String { self == .week ? "MM-dd" : "HH:mm" }
}

/// One point of a chart: a value as the device reported it, or a bucket's average with its lowest
/// and highest values and how many there were.
struct ChartPoint: Equatable, Sendable {
    var t: Millis
    var value: Double
    var min: Double
    var max: Double
    var count: Int
}

extension ChartPoint {
    /// At most `limit` values one by one; beyond that, one point per bucket of the range.
    static func load(
        _ store: Store, _ device: Device, identifier: String, range: ChartRange, from: Millis, to: Millis,
        limit: Int = 120
    ) async throws -> (points: [ChartPoint], bucketed: Bool) {
        let raw = try await store.telemetry(device, identifier: identifier, from: from, to: to, limit: limit + 1)
        if raw.count <= limit {
            return (
                raw.compactMap { p in p.value.map { ChartPoint(t: p.t, value: $0, min: $0, max: $0, count: 1) } },
                false
            )
        }
        let buckets = try await store.telemetryBuckets(
            device, identifier: identifier, from: from, to: to, bucketMillis: range.bucketMillis)
        return (
            buckets.compactMap { b in
                guard let avg = b.avg else { return nil }
                // A bucket's point stands in its middle.
                return ChartPoint(
                    t: b.t + range.bucketMillis / 2, value: avg, min: b.min ?? avg, max: b.max ?? avg, count: b.count)
            }, true
        )
    }
}

/// A device property's values as an SVG line chart drawn on the server: the value axis labelled in
/// the thing model's unit, the time axis in Beijing time, and every point a dot whose `<title>`
/// (the browser's tooltip, and what device.js shows on hover or focus) says its value and time. A
/// single value is a dot with its value written beside it; buckets show their min–max band.
enum DeviceChart {
    /// The words of the page's language.
    struct Words {
        /// "Temperature (°C)": the value axis.
        var axis: String
        /// The time axis: "Beijing time".
        var timeAxis: String
        /// Shown instead of the chart when the range has no values.
        var empty: String
        /// The chart's accessible name.
        var label: String
        /// A bucket's tooltip: "{value} ({min}–{max}, {count} values) · {at}", already in the
        /// language; `{value}`, `{min}`, `{max}`, `{count}` and `{at}` are filled in here.
        var bucket: String
        /// One value's tooltip: "{value} · {at}".
        var point: String
    }

    static let width = 720.0
    static let height = 260.0
    static let left = 64.0, right = 16.0, top = 28.0, bottom = 44.0

    static func render(
        _ points: [ChartPoint], bucketed: Bool, range: ChartRange, from: Millis, to: Millis, unit: String,
        words: Words
    ) -> String {
        let w = Int(width)
        let h = Int(height)
        let open =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 \(w) \(h)\" role=\"img\" aria-label=\"\(escape(words.label))\" data-range=\"\(range.rawValue)\" data-points=\"\(points.count)\">"
        var svg = open
        svg +=
            "<text class=\"axis-title\" x=\"\(left)\" y=\"16\" font-size=\"12\" fill=\"#30404a\">\(escape(words.axis))</text>"
        svg +=
            "<text class=\"axis-title\" x=\"\(f(width - right))\" y=\"\(f(height - 4))\" font-size=\"11\" fill=\"#5b6b76\" text-anchor=\"end\">\(escape(words.timeAxis))</text>"
        let plotBottom = height - bottom
        let plotRight = width - right
        svg += "<line x1=\"\(left)\" y1=\"\(plotBottom)\" x2=\"\(plotRight)\" y2=\"\(plotBottom)\" stroke=\"#b8c3ca\"/>"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(plotBottom)\" stroke=\"#b8c3ca\"/>"
        svg += timeTicks(range: range, from: from, to: to)
        guard !points.isEmpty else {
            svg +=
                "<text class=\"empty\" x=\"\(f((left + plotRight) / 2))\" y=\"\(f((top + plotBottom) / 2))\" text-anchor=\"middle\" fill=\"#5b6b76\">\(escape(words.empty))</text>"
            return svg + "</svg>"
        }
        // The value axis: from the lowest to the highest value, a little wider when they are one.
        var low = points.map(\.min).min() ?? 0
        var high = points.map(\.max).max() ?? 0
        if high - low < 1e-9 {
            let margin = Swift.max(1, abs(high) * 0.1)
            low -= margin
            high += margin
        }
        func x(_ t: Millis) -> Double { left + (plotRight - left) * Double(t - from) / Double(Swift.max(1, to - from)) }
        func y(_ v: Double) -> Double { plotBottom - (plotBottom - top) * (v - low) / (high - low) }
        for v in [low, (low + high) / 2, high] {
            svg +=
                "<line class=\"grid\" x1=\"\(left)\" y1=\"\(f(y(v)))\" x2=\"\(plotRight)\" y2=\"\(f(y(v)))\" stroke=\"#e3e8eb\"/>"
            svg +=
                "<text class=\"value-tick\" x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" font-size=\"11\" fill=\"#5b6b76\" text-anchor=\"end\">\(escape(number(v)))</text>"
        }
        if bucketed, points.contains(where: { $0.max > $0.min }) {
            let band =
                points.map { "\(f(x($0.t))),\(f(y($0.max)))" }
                + points.reversed().map {
                    "\(f(x($0.t))),\(f(y($0.min)))"
                }
            svg +=
                "<polygon class=\"band\" points=\"\(band.joined(separator: " "))\" fill=\"#1f6f8b\" fill-opacity=\"0.18\"/>"
        }
        if points.count > 1 {
            let line = points.map { "\(f(x($0.t))),\(f(y($0.value)))" }
            svg +=
                "<polyline class=\"line\" points=\"\(line.joined(separator: " "))\" fill=\"none\" stroke=\"#1f6f8b\" stroke-width=\"2\"/>"
        }
        let radius = points.count == 1 ? 5 : (points.count > 60 ? 2.5 : 3.5)
        for p in points {
            let value = withUnit(number(p.value), unit)
            let at = time(p.t, "yyyy-MM-dd HH:mm" + (bucketed ? "" : ":ss"))
            let title =
                bucketed && p.count > 1
                ? fill(
                    words.bucket,
                    [
                        "value": value, "min": number(p.min), "max": withUnit(number(p.max), unit),
                        "count": String(p.count), "at": at,
                    ])
                : fill(words.point, ["value": value, "at": at])
            svg +=
                "<circle class=\"point\" cx=\"\(f(x(p.t)))\" cy=\"\(f(y(p.value)))\" r=\"\(f(radius))\" fill=\"#1f6f8b\" stroke=\"#fff\" stroke-width=\"1\" tabindex=\"0\" data-value=\"\(escape(value))\" data-at=\"\(escape(at))\"><title>\(escape(title))</title></circle>"
        }
        if points.count == 1, let p = points.first {
            // One value alone: written beside its dot, on the side with room.
            let px = x(p.t)
            let anchor = px > (left + plotRight) / 2 ? "end" : "start"
            let dx = anchor == "end" ? -9.0 : 9.0
            svg +=
                "<text class=\"point-value\" x=\"\(f(px + dx))\" y=\"\(f(y(p.value) - 8))\" font-size=\"13\" font-weight=\"600\" fill=\"#1f6f8b\" text-anchor=\"\(anchor)\">\(escape(withUnit(number(p.value), unit)))</text>"
        }
        return svg + "</svg>"
    }

    /// Labels at round Beijing times (every 15 minutes, 6 hours or day) across the range.
    static func timeTicks(range: ChartRange, from: Millis, to: Millis) -> String {
        let offset: Millis = 8 * 3_600_000  // Beijing is UTC+8 all year.
        let step = range.tickMillis
        var t = ((from + offset) / step + 1) * step - offset
        var out = ""
        let plotBottom = height - bottom
        let plotRight = width - right
        while t < to {
            let px = left + (plotRight - left) * Double(t - from) / Double(Swift.max(1, to - from))
            out +=
                "<line class=\"tick\" x1=\"\(f(px))\" y1=\"\(plotBottom)\" x2=\"\(f(px))\" y2=\"\(f(plotBottom + 4))\" stroke=\"#b8c3ca\"/>"
            out +=
                "<text class=\"time-tick\" x=\"\(f(px))\" y=\"\(f(plotBottom + 17))\" font-size=\"11\" fill=\"#5b6b76\" text-anchor=\"middle\">\(time(t, range.tickFormat))</text>"
            t += step
        }
        return out
    }

    static func time(_ t: Millis, _ format: String) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = format
        formatter.timeZone = TimeZone(identifier: "Asia/Shanghai")
        return formatter.string(from: Date(timeIntervalSince1970: Double(t) / 1000))
    }

    /// A value as people read it: whole numbers without decimals, others to at most two.
    static func number(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        var s = String(format: "%.2f", v)
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s == "-0" ? "0" : s
    }

    static func withUnit(_ value: String, _ unit: String) -> String {
        if unit.isEmpty { return value }
        return unit == "%" ? value + unit : value + " " + unit
    }

    static func fill(_ template: String, _ values: [String: String]) -> String {
        values.reduce(template) { $0.replacingOccurrences(of: "{\($1.key)}", with: $1.value) }
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
