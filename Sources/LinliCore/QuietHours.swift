import Foundation

/// A time of day as "HH:mm", and spans of them that may run past midnight ("22:00" to "07:00").
public enum TimeOfDay {
    /// Minutes since midnight for "HH:mm", nil for anything else.
    public static func minutes(_ text: String?) -> Int? {
        guard let text else { return nil }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].count == 2, let h = Int(parts[0]), let m = Int(parts[1]), (0...23).contains(h),
            (0...59).contains(m)
        else { return nil }
        return h * 60 + m
    }

    /// Whether `minute` (since midnight) is in [from, to); a span with from > to runs past midnight.
    public static func within(_ minute: Int, from: Int, to: Int) -> Bool {
        from <= to ? (from <= minute && minute < to) : (minute >= from || minute < to)
    }
}

/// When a person does not want to be disturbed: outbound messages (SMS, e-mail) made in the span
/// wait until it ends; the in-app inbox is silent and always gets them at once. Critical alarms
/// are not held back (the caller decides that).
public struct QuietHours: Sendable, Equatable {
    public var from: Int
    public var to: Int

    public init?(from: String?, to: String?) {
        guard let f = TimeOfDay.minutes(from), let t = TimeOfDay.minutes(to), f != t else { return nil }
        self.from = f
        self.to = t
    }

    /// When a message made at `now` may go: `now` outside the span, else the span's end.
    public func release(after now: Date, calendar: Calendar = .current) -> Date {
        let parts = calendar.dateComponents([.hour, .minute], from: now)
        let minute = (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
        guard TimeOfDay.within(minute, from: from, to: to) else { return now }
        let startOfDay = calendar.startOfDay(for: now)
        // The end is today when it is still ahead, else tomorrow (a span past midnight, seen in the evening).
        let endToday = calendar.date(byAdding: .minute, value: to, to: startOfDay) ?? now
        return endToday > now ? endToday : (calendar.date(byAdding: .day, value: 1, to: endToday) ?? now)
    }
}
