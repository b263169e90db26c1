import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import LinliThings
import SQLKit

// History is kept in binary, in two tables:
//
// - `telemetry_log`: one row per group commit, every value of the commit in arrival order. A
//   commit of thousands of values is one insert of one blob, without an index to keep.
// - `telemetry_blocks`: one row per series per merge, its values sorted by time. The writer
//   merges the log into blocks once enough values have gathered, so the index on
//   (series, last_ts) has one entry per block instead of one per value.
//
// Readers decode the blocks of a series in the range asked, and the log (which is small, a merge
// empties it). History written before blocks stays in `telemetry`, one row per value, read and
// pruned as before and no longer written.

/// One value of history.
package struct HistoryValue: Equatable {
    package var series: Int64
    package var ts: Millis
    /// The value as a number, when it is one.
    package var num: Double?
    /// The value's JSON text, when the number does not say it all (text, booleans, dates).
    package var txt: String?
}

/// The binary form of history values. Each value: [series: Int64, in the log only], ts: Int64,
/// kind: UInt8 (bit 0: a number follows, Float64; bit 1: a text follows, UInt32 length and
/// UTF-8 bytes); all little-endian.
package enum HistoryCoding {
    package enum Malformed: Error { case truncated }

    package static func append(_ v: HistoryValue, withSeries: Bool, to bytes: inout [UInt8]) {
        if withSeries { appendInteger(UInt64(bitPattern: v.series), to: &bytes) }
        appendInteger(UInt64(bitPattern: v.ts), to: &bytes)
        let number = v.num.flatMap { $0.isFinite ? $0 : nil }
        bytes.append((number != nil ? 1 : 0) | (v.txt != nil ? 2 : 0))
        if let number { appendInteger(number.bitPattern, to: &bytes) }
        if let txt = v.txt {
            var text = txt
            text.withUTF8 { utf8 in
                appendInteger(UInt32(utf8.count), to: &bytes)
                bytes.append(contentsOf: utf8)
            }
        }
    }

    @inline(__always)
    package static func appendInteger<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Calls `body` with every value, in the order written; `series` names the block's series
    /// when the values carry none.
    package static func decode(
        _ data: Data, withSeries: Bool, series blockSeries: Int64 = 0, _ body: (HistoryValue) throws -> Void
    ) throws {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var at = 0
            func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
                guard at + MemoryLayout<T>.size <= raw.count else { throw Malformed.truncated }
                var value: T = 0
                withUnsafeMutableBytes(of: &value) {
                    $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[at..<at + MemoryLayout<T>.size]))
                }
                at += MemoryLayout<T>.size
                return T(littleEndian: value)
            }
            while at < raw.count {
                let series = withSeries ? Int64(bitPattern: try integer(UInt64.self)) : blockSeries
                let ts = Int64(bitPattern: try integer(UInt64.self))
                let kind = try integer(UInt8.self)
                let num = kind & 1 != 0 ? Double(bitPattern: try integer(UInt64.self)) : nil
                var txt: String?
                if kind & 2 != 0 {
                    let length = Int(try integer(UInt32.self))
                    guard at + length <= raw.count else { throw Malformed.truncated }
                    txt = String(decoding: UnsafeRawBufferPointer(rebasing: raw[at..<at + length]), as: UTF8.self)
                    at += length
                }
                try body(HistoryValue(series: series, ts: ts, num: num, txt: txt))
            }
        }
    }
}

/// A block or log row as read back.
private struct HistoryRow: Decodable {
    package var id: Int64?
    package var series: Int64?
    package var firstTs: Millis
    package var lastTs: Millis
    package var count: Int
    package var data: Data
}

extension TelemetryWriter {
    /// Writes one commit's values into the log: one row, one blob.
    package static func appendToLog(_ db: any SQLDatabase, _ values: [HistoryValue]) async throws {
        guard !values.isEmpty else { return }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 26)
        var first = Millis.max
        var last = Millis.min
        for v in values {
            HistoryCoding.append(v, withSeries: true, to: &bytes)
            first = min(first, v.ts)
            last = max(last, v.ts)
        }
        try await db.raw(
            "INSERT INTO telemetry_log (count, first_ts, last_ts, data) VALUES (\(unsafeRaw: String(values.count)), \(unsafeRaw: String(first)), \(unsafeRaw: String(last)), \(bind: Data(bytes)))"
        ).run()
    }

    /// The log's row ids, and every value in it in the order written.
    package static func logValues(_ db: any SQLDatabase) async throws -> (ids: [Int64], values: [HistoryValue]) {
        let rows = try await db.raw(
            "SELECT id, first_ts AS \"firstTs\", last_ts AS \"lastTs\", count, data FROM telemetry_log ORDER BY id"
        ).all(decoding: HistoryRow.self)
        var values: [HistoryValue] = []
        values.reserveCapacity(rows.reduce(0) { $0 + $1.count })
        for row in rows { try HistoryCoding.decode(row.data, withSeries: true) { values.append($0) } }
        return (rows.compactMap(\.id), values)
    }

    /// Moves the log into blocks: per series, its values sorted by time, one row. In one
    /// transaction; the log rows it read are deleted by id, so a row written meanwhile stays.
    package static func mergeLog(_ db: any SQLDatabase) async throws {
        let (ids, values) = try await logValues(db)
        guard let newest = ids.max() else { return }
        var bySeries: [Int64: [HistoryValue]] = [:]
        for v in values { bySeries[v.series, default: []].append(v) }
        var rows: [SQLQueryString] = []
        rows.reserveCapacity(bySeries.count)
        for (series, seriesValues) in bySeries.sorted(by: { $0.key < $1.key }) {
            // Sort is stable: values measured at the same time keep their arrival order.
            let sorted = seriesValues.sorted { $0.ts < $1.ts }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(sorted.count * 18)
            for v in sorted { HistoryCoding.append(v, withSeries: false, to: &bytes) }
            rows.append(
                "(\(unsafeRaw: String(series)), \(unsafeRaw: String(sorted.first!.ts)), \(unsafeRaw: String(sorted.last!.ts)), \(unsafeRaw: String(sorted.count)), \(bind: Data(bytes)))"
            )
        }
        for chunk in rows.chunked(500) {
            try await db.raw(
                "INSERT INTO telemetry_blocks (series, first_ts, last_ts, count, data) VALUES \(chunk.joined(separator: ", "))"
            ).run()
        }
        try await db.raw("DELETE FROM telemetry_log WHERE id <= \(unsafeRaw: String(newest))").run()
    }
}

extension Store {
    /// The series number of one device property, nil when it never reported.
    package static func seriesId(_ db: any SQLDatabase, _ device: Device, _ identifier: String) async throws -> Int64? {
        struct S: Decodable { var id: Int64 }
        return try await db.raw(
            "SELECT id FROM telemetry_series WHERE device_id = \(bind: device.id) AND identifier = \(bind: identifier)"
        ).first(decoding: S.self)?.id
    }

    /// One series' values in [from, to) from the log.
    private static func logValues(_ db: any SQLDatabase, series: Int64, from: Millis, to: Millis) async throws
        -> [HistoryValue]
    {
        let rows = try await db.raw(
            """
            SELECT first_ts AS "firstTs", last_ts AS "lastTs", count, data FROM telemetry_log
            WHERE last_ts >= \(bind: from) AND first_ts < \(bind: to)
            """
        ).all(decoding: HistoryRow.self)
        var found: [HistoryValue] = []
        for row in rows {
            try HistoryCoding.decode(row.data, withSeries: true) { v in
                if v.series == series, v.ts >= from, v.ts < to { found.append(v) }
            }
        }
        return found
    }

    /// The newest `limit` points of one property in the range, oldest first: from the blocks
    /// (newest first, a page at a time, until no older block can hold a newer point), the log,
    /// and history from before blocks.
    public func telemetry(_ device: Device, identifier: String, from: Millis, to: Millis, limit: Int) async throws
        -> [TelemetryPoint]
    {
        guard limit > 0 else { return [] }
        let newest = try await telemetry.read { db -> [TelemetryPoint] in
            guard let s = try await Self.seriesId(db, device, identifier) else { return [] }
            var points = try await db.raw(
                """
                SELECT ts AS t, num AS value, txt AS text FROM telemetry
                WHERE series = \(bind: s) AND ts >= \(bind: from) AND ts < \(bind: to) ORDER BY ts DESC LIMIT \(literal: limit)
                """
            ).all(decoding: TelemetryPoint.self)
            points += try await Self.logValues(db, series: s, from: from, to: to).map {
                TelemetryPoint(t: $0.ts, value: $0.num, text: $0.txt)
            }
            let page = 64
            var offset = 0
            while true {
                let blocks = try await db.raw(
                    """
                    SELECT first_ts AS "firstTs", last_ts AS "lastTs", count, data FROM telemetry_blocks
                    WHERE series = \(bind: s) AND last_ts >= \(bind: from) AND first_ts < \(bind: to)
                    ORDER BY last_ts DESC LIMIT \(literal: page) OFFSET \(literal: offset)
                    """
                ).all(decoding: HistoryRow.self)
                for block in blocks {
                    try HistoryCoding.decode(block.data, withSeries: false, series: s) { v in
                        if v.ts >= from, v.ts < to { points.append(TelemetryPoint(t: v.ts, value: v.num, text: v.txt)) }
                    }
                }
                guard blocks.count == page, let oldestBlock = blocks.last?.lastTs else { break }
                // Blocks not read yet end no later than `oldestBlock`: done once `limit` points are newer.
                if points.count >= limit {
                    points.sort { $0.t > $1.t }
                    points.removeLast(points.count - limit)
                    if points[limit - 1].t > oldestBlock { break }
                }
                offset += page
            }
            points.sort { $0.t > $1.t }
            return Array(points.prefix(limit))
        }
        return newest.reversed()
    }

    /// Min, max and average of one numeric property per bucket of `bucketMillis`, oldest first;
    /// `count` counts every value in the bucket, numbers or not.
    public func telemetryBuckets(_ device: Device, identifier: String, from: Millis, to: Millis, bucketMillis: Int64)
        async throws -> [TelemetryBucket]
    {
        struct Sum {
            package var min: Double?
            package var max: Double?
            package var sum = 0.0
            package var numbers = 0
            package var count = 0
        }
        return try await telemetry.read { db -> [TelemetryBucket] in
            guard let s = try await Self.seriesId(db, device, identifier) else { return [] }
            var sums: [Millis: Sum] = [:]
            func add(_ ts: Millis, _ num: Double?) {
                let t = (ts / bucketMillis) * bucketMillis
                var b = sums[t] ?? Sum()
                b.count += 1
                if let num {
                    b.min = Swift.min(b.min ?? num, num)
                    b.max = Swift.max(b.max ?? num, num)
                    b.sum += num
                    b.numbers += 1
                }
                sums[t] = b
            }
            for v in try await Self.logValues(db, series: s, from: from, to: to) { add(v.ts, v.num) }
            let blocks = try await db.raw(
                """
                SELECT first_ts AS "firstTs", last_ts AS "lastTs", count, data FROM telemetry_blocks
                WHERE series = \(bind: s) AND last_ts >= \(bind: from) AND first_ts < \(bind: to)
                """
            ).all(decoding: HistoryRow.self)
            for block in blocks {
                try HistoryCoding.decode(block.data, withSeries: false, series: s) { v in
                    if v.ts >= from, v.ts < to { add(v.ts, v.num) }
                }
            }
            // History from before blocks, summed by the database.
            struct Old: Decodable {
                package var t: Millis
                package var min: Double?
                package var max: Double?
                package var sum: Double?
                package var numbers: Int
                package var count: Int
            }
            let old = try await db.raw(
                """
                SELECT (ts / \(literal: bucketMillis)) * \(literal: bucketMillis) AS t, MIN(num) AS min, MAX(num) AS max, SUM(num) AS sum,
                       COUNT(num) AS numbers, COUNT(*) AS count
                FROM telemetry WHERE series = \(bind: s) AND ts >= \(bind: from) AND ts < \(bind: to)
                GROUP BY 1
                """
            ).all(decoding: Old.self)
            for o in old {
                var b = sums[o.t] ?? Sum()
                b.count += o.count
                b.numbers += o.numbers
                b.sum += o.sum ?? 0
                if let m = o.min { b.min = Swift.min(b.min ?? m, m) }
                if let m = o.max { b.max = Swift.max(b.max ?? m, m) }
                sums[o.t] = b
            }
            return sums.sorted { $0.key < $1.key }.map { t, b in
                TelemetryBucket(
                    t: t, min: b.min, max: b.max, avg: b.numbers > 0 ? b.sum / Double(b.numbers) : nil, count: b.count)
            }
        }
    }

    /// Deletes history older than `before`: whole blocks and log rows, the older values of those
    /// that reach across it, and rows from before blocks one series at a time, so the writer is
    /// never held long. Returns the number of values deleted.
    @discardableResult
    public func pruneTelemetry(before: Millis) async throws -> Int {
        var deleted = 0
        for table in ["telemetry_blocks", "telemetry_log"] {
            let withSeries = table == "telemetry_log"
            deleted += try await telemetry.write { db in
                var n = try await db.count(
                    "SELECT COALESCE(SUM(count), 0) AS n FROM \(unsafeRaw: table) WHERE last_ts < \(bind: before)")
                if n > 0 { try await db.raw("DELETE FROM \(unsafeRaw: table) WHERE last_ts < \(bind: before)").run() }
                // Rows reaching across `before` keep their newer values.
                struct Across: Decodable {
                    package var id: Int64
                    package var series: Int64?
                    package var data: Data
                }
                let across = try await db.raw(
                    """
                    SELECT id, \(unsafeRaw: withSeries ? "NULL" : "series") AS series, data FROM \(unsafeRaw: table)
                    WHERE first_ts < \(bind: before) AND last_ts >= \(bind: before)
                    """
                ).all(decoding: Across.self)
                for row in across {
                    var kept: [HistoryValue] = []
                    var total = 0
                    try HistoryCoding.decode(row.data, withSeries: withSeries, series: row.series ?? 0) { v in
                        total += 1
                        if v.ts >= before { kept.append(v) }
                    }
                    guard kept.count < total, let first = kept.map(\.ts).min(), let last = kept.map(\.ts).max() else {
                        continue
                    }
                    var bytes: [UInt8] = []
                    for v in kept { HistoryCoding.append(v, withSeries: withSeries, to: &bytes) }
                    try await db.raw(
                        """
                        UPDATE \(unsafeRaw: table) SET first_ts = \(bind: first), last_ts = \(bind: last), count = \(bind: kept.count), data = \(bind: Data(bytes))
                        WHERE id = \(bind: row.id)
                        """
                    ).run()
                    n += total - kept.count
                }
                return n
            }
        }
        // Rows from before blocks, if there are any left.
        struct S: Decodable { var id: Int64 }
        let all = try await telemetry.read { db -> [S] in
            guard try await db.raw("SELECT series AS id FROM telemetry LIMIT 1").first(decoding: S.self) != nil else {
                return []
            }
            return try await db.raw("SELECT id FROM telemetry_series ORDER BY id").all(decoding: S.self)
        }
        for s in all {
            deleted += try await telemetry.write { db in
                let n = try await db.count(
                    "SELECT COUNT(*) AS n FROM telemetry WHERE series = \(bind: s.id) AND ts < \(bind: before)")
                if n > 0 {
                    try await db.raw("DELETE FROM telemetry WHERE series = \(bind: s.id) AND ts < \(bind: before)")
                        .run()
                }
                return n
            }
        }
        return deleted
    }
}
