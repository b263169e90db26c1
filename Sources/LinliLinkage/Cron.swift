import Foundation
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliMessaging
import LinliStorage
import LinliThings
import LinliWorkOrders

/// A five-field cron schedule (minute hour day-of-month month day-of-week) as rules write it:
/// numbers, `*`, lists `1,15`, ranges `9-17` and steps `*/5` or `8-18/2`; day-of-week 0 or 7 is
/// Sunday. As in cron, when both day fields are restricted, either may match.
public struct CronSchedule: Sendable, Equatable {
    let minutes: Set<Int>, hours: Set<Int>, days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
    let daysRestricted: Bool, weekdaysRestricted: Bool

    public struct Fault: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public init(_ text: String) throws(Fault) {
        let fields = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard fields.count == 5 else { throw Fault(description: "needs five fields: minute hour day month weekday") }
        minutes = try Self.field(fields[0], 0...59, "minute")
        hours = try Self.field(fields[1], 0...23, "hour")
        days = try Self.field(fields[2], 1...31, "day")
        months = try Self.field(fields[3], 1...12, "month")
        weekdays = Set(try Self.field(fields[4], 0...7, "weekday").map { $0 % 7 })
        daysRestricted = fields[2] != "*"
        weekdaysRestricted = fields[4] != "*"
    }

    static func field(_ text: String, _ range: ClosedRange<Int>, _ name: String) throws(Fault) -> Set<Int> {
        var values = Set<Int>()
        for part in text.split(separator: ",") {
            let stepParts = part.split(separator: "/", maxSplits: 1)
            var step = 1
            if stepParts.count == 2 {
                guard let s = Int(stepParts[1]), s > 0 else {
                    throw Fault(description: "\(name): '\(part)' has a bad step")
                }
                step = s
            }
            let base = stepParts[0]
            let lower: Int
            let upper: Int
            if base == "*" {
                (lower, upper) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                guard let a = Int(base[..<dash]), let b = Int(base[base.index(after: dash)...]), a <= b else {
                    throw Fault(description: "\(name): '\(part)' is not a range")
                }
                (lower, upper) = (a, b)
            } else {
                guard let a = Int(base) else { throw Fault(description: "\(name): '\(part)' is not a number") }
                (lower, upper) = (a, stepParts.count == 2 ? range.upperBound : a)
            }
            guard range.contains(lower), range.contains(upper) else {
                throw Fault(description: "\(name): \(part) is outside \(range.lowerBound)–\(range.upperBound)")
            }
            values.formUnion(stride(from: lower, through: upper, by: step))
        }
        return values
    }

    /// The first minute strictly after `date` that the schedule names, within about four years.
    public func next(after date: Date, calendar: Calendar) -> Date? {
        var c = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
        c.second = 0
        guard var t = calendar.date(from: c)?.addingTimeInterval(60) else { return nil }
        let limit = date.addingTimeInterval(4 * 366 * 86_400)
        while t < limit {
            let p = calendar.dateComponents([.month, .day, .hour, .minute, .weekday], from: t)
            guard months.contains(p.month!) else {
                // Skip to the first day of the next month.
                t =
                    calendar.date(
                        from: DateComponents(year: calendar.component(.year, from: t), month: p.month! + 1, day: 1))
                    ?? t.addingTimeInterval(86_400)
                continue
            }
            let dayOK = days.contains(p.day!)
            let weekdayOK = weekdays.contains(p.weekday! - 1)
            let dateOK = daysRestricted && weekdaysRestricted ? (dayOK || weekdayOK) : (dayOK && weekdayOK)
            guard dateOK else {
                t = calendar.startOfDay(for: t).addingTimeInterval(86_400)
                continue
            }
            guard hours.contains(p.hour!) else {
                t = t.addingTimeInterval(Double(60 - p.minute!) * 60)
                continue
            }
            if minutes.contains(p.minute!) { return t }
            t = t.addingTimeInterval(60)
        }
        return nil
    }
}
