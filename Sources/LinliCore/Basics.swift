import Foundation

public enum LinliVersion {
    public static let current = "0.1.0"
}

/// Identifiers are random UUIDs in lowercase text: the same on SQLite and PostgreSQL, and not guessable,
/// although access never relies on that (every query is scoped to the caller).
public typealias ID = String

public func newID() -> ID { UUID().uuidString.lowercased() }

/// Milliseconds since 1970, the one time representation stored by Linli.
public typealias Millis = Int64

public func nowMillis() -> Millis { Millis(Date().timeIntervalSince1970 * 1000) }

/// A calendar day as `YYYY-MM-DD`, compared as text (lease start and end, birth dates).
public enum Day {
    public static func today(_ now: Date = Date()) -> String { format(now) }

    public static func format(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai") ?? .current
        let c = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", c.year ?? 1970, c.month ?? 1, c.day ?? 1)
    }

    /// True for a real calendar day written as `YYYY-MM-DD`.
    public static func isValid(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
            (1900...2200).contains(y), (1...12).contains(m), d >= 1
        else { return false }
        let days = [
            31, (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
        ]
        return d <= days[m - 1]
    }
}
