import Foundation
import LinliCore
import SQLKit

/// A row type stored in one table, keyed by `id`. Columns are the snake_case of the field names.
public protocol Record: Codable, Sendable {
    static var table: String { get }
    var id: ID { get }
}

extension SQLRowDecoder.KeyDecodingStrategy {
    /// Field names to snake_case columns, as `.convertFromSnakeCase` does, for the ASCII names
    /// Linli's types have (other bytes are copied as they are). SQLKit's conversion asks Unicode for every character's case, for every
    /// field of every row; it was a tenth of a device sign-in's time on the server.
    public static let snakeCase = Self.custom { path in
        SnakeCaseKey(stringValue: snakeCased(path.last?.stringValue ?? ""))
    }

    /// `communityId` → `community_id`, `lastURLSeen` → `last_url_seen`: an underscore before an
    /// upper-case letter that starts a word (after a lower-case letter or digit, or before a
    /// lower-case letter at the end of a run of capitals).
    package static func snakeCased(_ name: String) -> String {
        let bytes = Array(name.utf8)
        func isUpper(_ b: UInt8) -> Bool { b >= 0x41 && b <= 0x5a }
        func isLower(_ b: UInt8) -> Bool { b >= 0x61 && b <= 0x7a }
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 4)
        for (i, b) in bytes.enumerated() {
            guard isUpper(b) else {
                out.append(b)
                continue
            }
            if i > 0 {
                let before = bytes[i - 1]
                let startsWord =
                    isLower(before) || isDigit(before)
                    || (isUpper(before) && i + 1 < bytes.count && isLower(bytes[i + 1]))
                if startsWord { out.append(0x5f) }
            }
            out.append(b + 0x20)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

private struct SnakeCaseKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension SQLDatabase {
    public func insert<R: Record>(_ record: R) async throws {
        try await insert(into: R.table)
            .model(record, keyEncodingStrategy: .convertToSnakeCase, nilEncodingStrategy: .asNil)
            .run()
    }

    public func update<R: Record>(_ record: R) async throws {
        try await update(R.table)
            .set(model: record, keyEncodingStrategy: .convertToSnakeCase, nilEncodingStrategy: .asNil)
            .where("id", .equal, record.id)
            .run()
    }

    public func find<R: Record>(_ type: R.Type, _ id: ID) async throws -> R? {
        try await select().column("*").from(R.table).where("id", .equal, id)
            .first(decoding: R.self, keyDecodingStrategy: .snakeCase)
    }

    public func all<R: Record>(_ type: R.Type, _ query: SQLQueryString) async throws -> [R] {
        try await raw(query).all(decoding: R.self, keyDecodingStrategy: .snakeCase)
    }

    public func count(_ query: SQLQueryString) async throws -> Int {
        let row = try await raw(query).first()
        return try row?.decode(column: "n", as: Int.self) ?? 0
    }

    package var isPostgres: Bool { dialect.name == "postgresql" }
}

extension SQLRow {
    /// A column's value read by name, without the `Decodable` row decoder: a listing reads some
    /// hundreds of values, and the keyed container that decoder builds per row cost more than the
    /// query itself.
    package func value<T: Decodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        try decode(column: column, as: T.self)
    }

    /// A text column holding one of an enumeration's raw values.
    package func value<T: RawRepresentable & Decodable>(_ column: String, as type: T.Type = T.self) throws -> T
    where T.RawValue == String {
        let text = try decode(column: column, as: String.self)
        guard let value = T(rawValue: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: [], debugDescription: "column \(column): \(text) is not a \(T.self)"))
        }
        return value
    }
}

/// Pagination as asked for by a caller, already validated.
public struct PageRequest: Sendable, Equatable {
    public var limit: Int
    public var offset: Int
    public static let maxLimit = 500
    public static let maxOffset = 10_000_000
    public init(limit: Int = 50, offset: Int = 0) {
        self.limit = limit
        self.offset = offset
    }
}

public struct Page<Item: Sendable & Encodable>: Sendable, Encodable {
    public var items: [Item]
    public var total: Int
    public var limit: Int
    public var offset: Int
    public init(items: [Item], total: Int, limit: Int, offset: Int) {
        self.items = items
        self.total = total
        self.limit = limit
        self.offset = offset
    }
}

/// A sort order chosen from the columns a listing allows: `room` or `-room` for descending.
public struct ListOrder: Sendable {
    public let sql: String

    public init(_ text: String?, allowed: [String: String], default fallback: String) throws(ValidationFailure) {
        guard let text, !text.isEmpty else {
            sql = fallback
            return
        }
        let descending = text.hasPrefix("-")
        let key = descending ? String(text.dropFirst()) : text
        guard let column = allowed[key] else {
            throw ValidationFailure(
                "sort", "must be one of \(allowed.keys.sorted().joined(separator: ", ")), optionally prefixed with -")
        }
        sql = column + (descending ? " DESC" : " ASC") + ", " + fallback
    }
}

extension SQLQueryString {
    /// `column IN (...)`, or a false predicate for an empty set (an empty IN list is not SQL).
    package static func isIn(_ column: String, _ values: Set<ID>) -> SQLQueryString {
        if values.isEmpty { return "1 = 0" }
        return "\(unsafeRaw: column) IN (\(binds: values.sorted()))"
    }

    package static func any(_ parts: [SQLQueryString]) -> SQLQueryString {
        if parts.isEmpty { return "1 = 0" }
        return "(" + parts.joined(separator: " OR ") + ")"
    }

    /// A LIKE pattern matching `text` anywhere, with the wildcards in `text` taken literally.
    package static func containsPattern(_ text: String) -> String {
        let escaped = text.lowercased()
            .replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_")
        return "%" + escaped + "%"
    }
}

extension Store {
    /// When a send that has failed `attempts` times (this one included) is tried next, by the
    /// queue's back-off; nil when the back-off has run out and it is given up.
    package static func retryAt(afterFailure attempts: Int, backoff: [Millis], now: Millis) -> Millis? {
        attempts <= backoff.count ? now + backoff[attempts - 1] : nil
    }

    /// Pending rows of a send queue (webhook deliveries, outbound messages) whose time has come,
    /// each pushed `lease` ahead by a conditional update, so that a second look, or a second node,
    /// does not send the same one twice; a send that dies with the process is tried after the lease.
    package func claimDue<R: Record>(
        _ type: R.Type, dueColumn: String, due: @escaping @Sendable (R) -> Millis, now: Millis, limit: Int,
        lease: Millis
    ) async throws -> [R] {
        try await write { db in
            let candidates = try await db.all(
                R.self,
                """
                SELECT * FROM \(unsafeRaw: R.table) WHERE status = 'pending' AND \(unsafeRaw: dueColumn) <= \(bind: now) ORDER BY \(unsafeRaw: dueColumn) LIMIT \(literal: limit)
                """)
            var claimed: [R] = []
            for row in candidates {
                let taken = try await db.raw(
                    """
                    UPDATE \(unsafeRaw: R.table) SET \(unsafeRaw: dueColumn) = \(bind: now + lease)
                    WHERE id = \(bind: row.id) AND status = 'pending' AND \(unsafeRaw: dueColumn) = \(bind: due(row)) RETURNING id
                    """
                ).all()
                if !taken.isEmpty { claimed.append(row) }
            }
            return claimed
        }
    }
}
