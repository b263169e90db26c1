import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import LinliThings
import Logging
import Metrics
import SQLKit
import Synchronization

/// One message a device sent, already understood (checked against its thing model by the gateway).
public struct DeviceReport: Sendable {
    public enum Content: Sendable {
        /// Property values: history, and the reported side of the shadow.
        case properties([ReportedValue])
        /// An event the device raised; it goes on the event log, where rules find it.
        case event(identifier: String, type: String, valuesJSON: String)
        /// What a device kept while it could not post (a meter that wakes once a day, a sensor
        /// back from an outage): many values per property and events, each with its own time.
        case batch(properties: [ReportedValue], events: [RaisedEvent])
        /// A message that was refused: counted, and kept as the device's last error.
        case refused(reason: String)
        /// Anything else the device said (a heartbeat, a reply): it is alive.
        case seen
    }

    public var deviceId: ID
    public var communityId: ID
    public var productKey: String
    public var deviceName: String
    public var receivedAt: Millis
    public var content: Content

    public init(
        deviceId: ID, communityId: ID, productKey: String, deviceName: String, receivedAt: Millis = nowMillis(),
        content: Content
    ) {
        self.deviceId = deviceId
        self.communityId = communityId
        self.productKey = productKey
        self.deviceName = deviceName
        self.receivedAt = receivedAt
        self.content = content
    }
}

/// An event in a device's batch post, with the time the device says it happened.
public struct RaisedEvent: Sendable, Equatable {
    public var identifier: String
    public var type: String
    public var valuesJSON: String
    public var time: Millis
    public init(identifier: String, type: String, valuesJSON: String, time: Millis) {
        self.identifier = identifier
        self.type = type
        self.valuesJSON = valuesJSON
        self.time = time
    }
}

public struct ReportedValue: Sendable, Equatable {
    public var identifier: String
    /// The value as JSON text, exactly as the shadow shows it.
    public var json: String
    /// The value as a number when it is one (int, float, double, enum, bool, date): charts and downsampling use it.
    public var number: Double?
    /// When the device says it measured the value, else when Linli received it.
    public var time: Millis
    /// The JSON text is `number` as `ReportedValue.text(of:)` writes it, so history keeps only the
    /// number and the text can be made again from it. False for booleans, dates and anything
    /// whose text says more than the number (history then keeps both).
    public var plainNumber: Bool

    public init(identifier: String, json: String, number: Double?, time: Millis, plainNumber: Bool = false) {
        self.identifier = identifier
        self.json = json
        self.number = number
        self.time = time
        self.plainNumber = plainNumber && number?.isFinite == true
    }

    /// A finite number as JSON text the way Linli writes it: whole numbers that a Double holds
    /// exactly without a fraction (`48`, not `48.0`), others in Swift's shortest form (`22.5`,
    /// `1e+20`).
    public static func text(of number: Double) -> String {
        if number.rounded(.towardZero) == number, abs(number) < 9_007_199_254_740_992 { return String(Int64(number)) }
        var text = number.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text
    }
}

/// A report handed to the `TelemetryWriter`: `wait()` returns once the batch holding it has
/// committed, and throws when that batch could not be stored; `whenStored` says the same to a
/// callback, without a task waiting.
public struct TelemetryReceipt: Sendable {
    package let batch: CommitOutcome

    public func wait() async throws { try await batch.wait() }

    /// Calls `done` once, from the writer's thread (or at once when the batch has already
    /// committed): nil when stored, else the error.
    public func whenStored(_ done: @escaping @Sendable ((any Error)?) -> Void) { batch.whenDone(done) }

    /// The same for every report of one commit (while it is pending), so that those waiting for
    /// many reports can wait once per commit.
    public var commitId: ObjectIdentifier { ObjectIdentifier(batch) }
}

/// Makes device reports durable in batches (group commit): every caller waits until the batch that
/// holds its report has committed, so an MQTT acknowledgement sent after that is never for a
/// message that a crash could lose. While one batch commits, the next one gathers; under load a
/// commit carries thousands of reports, idle it carries one, and nobody waits on a timer.
/// `enqueue` takes a report in the order it is called and returns at once; reports of one device
/// commit in that order (a later batch never commits before an earlier one).
public final class TelemetryWriter: Sendable {
    package let store: Store
    package let logger: Logger
    package let maxBatch: Int
    /// Values gathered in `telemetry_log` before they are merged into blocks. Larger merges make
    /// fewer, larger blocks; smaller ones keep the log that every history read decodes smaller.
    package let mergeRows: Int

    private struct Pending {
        /// Gathering, oldest first; each at most `maxBatch` reports.
        package var batches: [(reports: [DeviceReport], batch: CommitOutcome)] = []
        package var flushing = false
    }
    private let pending = Mutex(Pending())
    /// Series numbers by device and identifier, filled only from committed rows.
    private let series = Mutex<[ID: [String: Int64]]>([:])
    /// When each device's registry row last had its last-seen time written.
    private let touched = Mutex<[ID: Millis]>([:])
    /// Values in `telemetry_log`; nil until the first commit has counted what an earlier run left
    /// (and put into the shadow what a crash kept from it).
    private let recentRows = Mutex<Int?>(nil)
    /// Shadow values and counters stored in history but not yet in their tables: the store's, so
    /// that its readers see them.
    private var held: HeldTelemetry { store.heldTelemetry }

    private let commitTimer = Metrics.Timer(label: "linli_telemetry_commit_seconds")
    private let batchSize = Recorder(label: "linli_telemetry_batch_reports")
    private let reportCounter = Counter(label: "linli_telemetry_reports_total")
    private let mergeTimer = Metrics.Timer(label: "linli_telemetry_merge_seconds")

    /// How long shadow values and device counters may add up in memory under load.
    package let holdFor: Duration
    /// A commit of at least `busyReports` reports means load: the next starts no sooner than
    /// `busyInterval` after it began.
    package let busyReports: Int
    package let busyInterval: Duration
    /// Whether a commit that finds no other batch waiting writes what is held (tests turn this off
    /// to hold values as a loaded writer does).
    package let writesHeldWhenIdle: Bool

    public init(
        store: Store, logger: Logger, maxBatch: Int = 8_192, mergeRows: Int = 100_000, holdFor: Duration = .seconds(1),
        writesHeldWhenIdle: Bool = true,
        busyReports: Int = 256, busyInterval: Duration = .milliseconds(50)
    ) {
        self.busyReports = busyReports
        self.busyInterval = busyInterval
        self.store = store
        self.logger = logger
        self.maxBatch = maxBatch
        self.mergeRows = max(1, mergeRows)
        self.holdFor = holdFor
        self.writesHeldWhenIdle = writesHeldWhenIdle
    }

    /// Returns once the report is committed; throws when it could not be stored.
    public func record(_ report: DeviceReport) async throws {
        try await enqueue(report).wait()
    }

    /// Makes the shadow whole again after a crash (the values the writer held are in history) and
    /// counts the history an earlier run left to merge. Runs as this writer's first commit, in the
    /// writer's turn; call it before devices connect. Later calls commit nothing.
    public func start() async throws {
        let batch = CommitOutcome()
        let startFlushing = pending.withLock { state -> Bool in
            state.batches.append(([], batch))
            if state.flushing { return false }
            state.flushing = true
            return true
        }
        if startFlushing { Task(priority: .high) { await self.flushUntilEmpty() } }
        try await batch.wait()
    }

    /// Returns once nothing is gathering, committing or merging, e.g. before the store is closed.
    public func idle() async {
        while pending.withLock({ $0.flushing }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Takes the report into the next commit and returns at once; the receipt says when it is stored.
    public func enqueue(_ report: DeviceReport) -> TelemetryReceipt {
        enqueue(together: CollectionOfOne(report))
    }

    /// Several reports (a gateway's post for itself and its sub-devices) in one commit: all are
    /// stored, or none, and the one receipt says which.
    public func enqueue(together group: some Collection<DeviceReport>) -> TelemetryReceipt {
        let (batch, startFlushing) = pending.withLock { state -> (CommitOutcome, Bool) in
            let batch: CommitOutcome
            if let last = state.batches.indices.last, state.batches[last].reports.count + group.count <= maxBatch {
                state.batches[last].reports.append(contentsOf: group)
                batch = state.batches[last].batch
            } else {
                batch = CommitOutcome()
                var reports: [DeviceReport] = []
                reports.reserveCapacity(min(max(maxBatch, group.count), 1_024))
                reports.append(contentsOf: group)
                state.batches.append((reports, batch))
            }
            if state.flushing { return (batch, false) }
            state.flushing = true
            return (batch, true)
        }
        // High priority: under load a thousand connection tasks are ready at any moment, and the
        // one task every acknowledgement waits for must not queue behind them at each await.
        if startFlushing { Task(priority: .high) { await self.flushUntilEmpty() } }
        return TelemetryReceipt(batch: batch)
    }

    private func flushUntilEmpty() async {
        var lastStart: ContinuousClock.Instant?
        var lastSize = 0
        while true {
            // Under load (the last commit was large) the next one starts no sooner than
            // `busyInterval` after it, so that more reports share it: each connection then gets
            // more acknowledgements per write, and each commit's fixed costs are shared by more.
            // A quiet server commits at once.
            if lastSize >= busyReports, let lastStart,
                pending.withLock({ $0.batches.count == 1 && $0.batches[0].reports.count < maxBatch })
            {
                let due = lastStart + busyInterval
                if due > .now { try? await Task.sleep(until: due, clock: .continuous) }
            }
            let next = pending.withLock { state -> (reports: [DeviceReport], batch: CommitOutcome)? in
                if state.batches.isEmpty {
                    state.flushing = false
                    return nil
                }
                return state.batches.removeFirst()
            }
            guard let (reports, batch) = next else { return }
            let start = ContinuousClock.now
            lastStart = start
            lastSize = reports.count
            do {
                try await commit(reports)
                let elapsed = ContinuousClock.now - start
                commitTimer.recordNanoseconds(
                    elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
                batchSize.record(reports.count)
                reportCounter.increment(by: reports.count)
                batch.complete(.success(()))
            } catch {
                logger.error(
                    "telemetry batch not stored", metadata: ["reports": "\(reports.count)", "error": "\(error)"])
                batch.complete(.failure(error))
            }
            // After the batch's waiters are released: a merge delays the next commit, never an
            // acknowledgement already earned. Reports arriving meanwhile make the next batch larger.
            // Only values the shadow already shows leave `telemetry_log`: after a crash, the
            // shadow is made whole from that table alone.
            if (recentRows.withLock { $0 } ?? 0) >= mergeRows, held.shadowIsEmpty {
                await merge()
            }
        }
    }

    /// Merges the log into blocks, in one transaction. If it fails the log stays as it is
    /// (readers read both) and a later commit tries again.
    package func merge() async {
        let start = ContinuousClock.now
        do {
            try await store.telemetry.write { db in try await Self.mergeLog(db) }
            recentRows.withLock { $0 = 0 }
            let elapsed = ContinuousClock.now - start
            mergeTimer.recordNanoseconds(
                elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        } catch {
            logger.error("telemetry log not merged into blocks", metadata: ["error": "\(error)"])
        }
    }

    private func commit(_ reports: [DeviceReport]) async throws {
        // One pass over the batch, with as little copying and hashing per value as we can: the
        // history values, with their series numbers where known (`unresolved` says where not),
        // the newest value per device property (by position in the batch), the counters per device.
        let known = series.withLock { $0 }
        var values: [HistoryValue] = []
        values.reserveCapacity(reports.count * 2)
        var unresolved: [(at: Int, key: SeriesKey)] = []
        var newestKnown: [Int64: Newest] = [:]
        var newestNew: [SeriesKey: Newest] = [:]
        var counters: [ID: Tally] = [:]
        var events: [(report: DeviceReport, event: RaisedEvent)] = []
        /// Adds a report's property values to the history and to the newest per property.
        func add(_ reported: [ReportedValue], of r: Int, device deviceId: ID) {
            let mine = known[deviceId]
            for i in reported.indices {
                let time = reported[i].time
                // The text is kept when the number does not say it all (a boolean, a date, text).
                var value = HistoryValue(
                    series: 0, ts: time, num: reported[i].number, txt: reported[i].plainNumber ? nil : reported[i].json)
                if let id = mine?[reported[i].identifier] {
                    value.series = id
                    values.append(value)
                    if newestKnown[id] == nil {
                        newestKnown[id] = Newest(
                            key: SeriesKey(deviceId: deviceId, identifier: reported[i].identifier), report: r, value: i,
                            time: time)
                    } else {
                        newestKnown[id]!.saw(report: r, value: i, time: time)
                    }
                } else {
                    let key = SeriesKey(deviceId: deviceId, identifier: reported[i].identifier)
                    unresolved.append((values.count, key))
                    values.append(value)
                    if newestNew[key] == nil {
                        newestNew[key] = Newest(key: key, report: r, value: i, time: time)
                    } else {
                        newestNew[key]!.saw(report: r, value: i, time: time)
                    }
                }
            }
        }
        for r in reports.indices {
            let deviceId = reports[r].deviceId
            let at = reports[r].receivedAt
            counters[deviceId, default: Tally()].saw(at: at)
            switch reports[r].content {
            case let .properties(reported):
                add(reported, of: r, device: deviceId)
            case let .batch(reported, raised):
                add(reported, of: r, device: deviceId)
                for event in raised { events.append((reports[r], event)) }
            case let .event(identifier, type, valuesJSON):
                events.append(
                    (reports[r], RaisedEvent(identifier: identifier, type: type, valuesJSON: valuesJSON, time: at)))
            case let .refused(reason):
                counters[deviceId]!.refused(String(reason.prefix(500)), at: at)
            case .seen:
                break
            }
        }
        // The shadow's side: one value per device property, taken from the batch once.
        var latest: [SeriesKey: ShadowUpdate] = [:]
        latest.reserveCapacity(newestKnown.count + newestNew.count)
        func take(_ newest: Newest) {
            let reported: [ReportedValue]
            switch reports[newest.report].content {
            case let .properties(values), let .batch(values, _): reported = values
            default: return
            }
            latest[newest.key] = ShadowUpdate(value: reported[newest.value], count: newest.count)
        }
        for newest in newestKnown.values { take(newest) }
        for newest in newestNew.values { take(newest) }
        let missing = Array(newestNew.keys)

        // The shadow and the counters go to their tables with this commit when no other batch is
        // waiting (so a quiet server's are current as soon as a post is acknowledged), once a
        // second, and before a merge; under load, in between, they add up in memory, where
        // readers see them too. A crash loses none of the shadow: the first commit after a start
        // puts into it what `telemetry_log` holds beyond it. It loses at most that second of
        // message and error counts, never a value.
        let recent = recentRows.withLock { $0 }
        let writeHeld =
            recent == nil || (recent ?? 0) + values.count >= mergeRows
            || (writesHeldWhenIdle && pending.withLock { $0.batches.isEmpty }) || held.heldLongerThan(holdFor)
        let taken = writeHeld ? held.take() : HeldTelemetry.Held()
        var shadow = taken.shadow
        var tallies = taken.tallies
        if writeHeld {
            shadow.add(latest)
            tallies.add(counters)
        }
        let written: ([SeriesKey: Int64], Int)
        do {
            written = try await write(
                history: values, unresolved: unresolved, shadow: shadow, tallies: tallies, missing: missing,
                starting: recent == nil)
        } catch {
            // This batch's reports are not stored (their senders get no acknowledgement and send
            // again), but what was held from earlier batches is still owed.
            if writeHeld { held.putBack(taken) }
            throw error
        }
        if !writeHeld { held.add(shadow: latest, tallies: counters) }
        let (found, leftOver) = written
        if !found.isEmpty {
            series.withLock { known in for (key, id) in found { known[key.deviceId, default: [:]][key.identifier] = id }
            }
        }
        recentRows.withLock { $0 = ($0 ?? leftOver) + values.count }
        try await afterCommit(events: events, counters: counters)
    }

    /// One batch's history, shadow and counters, in one transaction. The values of `history` at
    /// the positions `unresolved` names have no series number yet: those of `missing`, made here.
    /// `starting`: the first commit of this writer, which counts the values an earlier run left
    /// in `telemetry_log` and puts into the shadow those it does not show yet. Returns the series
    /// numbers it read, and the values it counted in the log.
    private func write(
        history: [HistoryValue], unresolved: [(at: Int, key: SeriesKey)], shadow batchShadow: [SeriesKey: ShadowUpdate],
        tallies: [ID: Tally],
        missing: [SeriesKey], starting: Bool
    ) async throws -> ([SeriesKey: Int64], Int) {
        try await store.telemetry.write { db in
            var ids: [SeriesKey: Int64] = [:]
            var values = history
            var newest = batchShadow
            var leftOver = 0
            if starting {
                leftOver = try await db.count("SELECT COALESCE(SUM(count), 0) AS n FROM telemetry_log")
                if leftOver > 0 {
                    // What the log holds beyond the shadow came before this batch, whose values are the later ones.
                    var merged = try await Self.unshownHistory(db)
                    merged.add(newest)
                    newest = merged
                }
            }
            if !missing.isEmpty {
                let pairs = missing.sorted().map { key -> SQLQueryString in
                    "(\(bind: key.deviceId), \(bind: key.identifier))"
                }
                for chunk in pairs.chunked(500) {
                    try await db.raw(
                        "INSERT INTO telemetry_series (device_id, identifier) VALUES \(chunk.joined(separator: ", ")) ON CONFLICT (device_id, identifier) DO NOTHING"
                    ).run()
                }
                let devices = Set(missing.map(\.deviceId))
                struct Row: Decodable {
                    package var id: Int64
                    package var deviceId: String
                    package var identifier: String
                }
                let rows = try await db.raw(
                    "SELECT id, device_id AS \"deviceId\", identifier FROM telemetry_series WHERE \(SQLQueryString.isIn("device_id", devices))"
                ).all(decoding: Row.self)
                for r in rows { ids[SeriesKey(deviceId: r.deviceId, identifier: r.identifier)] = r.id }
                for (at, key) in unresolved {
                    guard let id = ids[key] else {
                        throw StoreError.notFound("telemetry series \(key.deviceId)/\(key.identifier)")
                    }
                    values[at].series = id
                }
            }
            // History: the batch's values in one blob, one row of the log.
            try await Self.appendToLog(db, values)
            // The reported shadow: the newest value wins, every report counts as a version.
            for chunk in newest.sorted(by: { $0.key < $1.key }).chunked(Self.rowsPerStatement) {
                let values = chunk.map { entry -> SQLQueryString in
                    let update = entry.value
                    // Numbers we made are written inline: a bind costs more than the row's insert.
                    return
                        "(\(bind: entry.key.deviceId), \(bind: entry.key.identifier), \(bind: update.value.json), \(unsafeRaw: String(update.value.time)), \(unsafeRaw: String(update.count)))"
                }
                try await db.raw(
                    """
                    INSERT INTO device_shadow (device_id, identifier, value, reported_at, version) VALUES \(values.joined(separator: ", "))
                    ON CONFLICT (device_id, identifier) DO UPDATE SET
                        value = CASE WHEN excluded.reported_at >= device_shadow.reported_at THEN excluded.value ELSE device_shadow.value END,
                        reported_at = CASE WHEN excluded.reported_at >= device_shadow.reported_at THEN excluded.reported_at ELSE device_shadow.reported_at END,
                        version = device_shadow.version + excluded.version
                    """
                ).run()
            }
            for chunk in tallies.sorted(by: { $0.key < $1.key }).chunked(Self.rowsPerStatement) {
                let values = chunk.map { entry -> SQLQueryString in
                    let c = entry.value
                    return
                        "(\(bind: entry.key), \(bind: c.messages), \(bind: c.errors), \(bind: c.lastError), \(bind: c.lastErrorAt), \(bind: c.lastSeen))"
                }
                try await db.raw(
                    """
                    INSERT INTO device_diagnosis (device_id, messages, errors, last_error, last_error_at, last_seen_at) VALUES \(values.joined(separator: ", "))
                    ON CONFLICT (device_id) DO UPDATE SET
                        messages = device_diagnosis.messages + excluded.messages, errors = device_diagnosis.errors + excluded.errors,
                        last_error = COALESCE(excluded.last_error, device_diagnosis.last_error),
                        last_error_at = COALESCE(excluded.last_error_at, device_diagnosis.last_error_at),
                        last_seen_at = CASE WHEN excluded.last_seen_at > device_diagnosis.last_seen_at THEN excluded.last_seen_at ELSE device_diagnosis.last_seen_at END
                    """
                ).run()
            }
            return (ids, leftOver)
        }
    }

    /// What follows a commit: device events onto the event log, and registry last-seen times.
    private func afterCommit(events: [(report: DeviceReport, event: RaisedEvent)], counters: [ID: Tally]) async throws {
        // Device events are domain events: on the event log, in the community's database.
        if !events.isEmpty {
            let raised = events
            try await store.write { db in
                for (report, event) in raised {
                    try await EventLog.append(
                        db, communityId: report.communityId, type: "device.event", subjectType: "device",
                        subjectId: report.deviceId, actor: .system,
                        payload: DeviceEventPayload(
                            productKey: report.productKey, deviceName: report.deviceName, identifier: event.identifier,
                            eventType: event.type, values: event.valuesJSON, at: event.time))
                }
            }
        }

        // The registry's last-seen time, at most once a minute per device.
        let stale = touched.withLock { times -> [ID: Millis] in
            var due: [ID: Millis] = [:]
            for (device, c) in counters where c.lastSeen - (times[device] ?? 0) >= 60_000 {
                due[device] = c.lastSeen
                times[device] = c.lastSeen
            }
            return due
        }
        if !stale.isEmpty {
            do { try await store.touchDevices(stale) } catch {
                logger.warning("device last-seen times not updated", metadata: ["error": "\(error)"])
            }
        }
    }

    /// History in `telemetry_log` newer than its series' shadow value: what a crash kept from the
    /// shadow while the writer held it. Per series, the newest such value and how many there are
    /// (a value measured no later than the shadow's, which is rare, is not counted again).
    package static func unshownHistory(_ db: any SQLDatabase) async throws -> [SeriesKey: ShadowUpdate] {
        let (_, values) = try await logValues(db)
        let seriesIds = Set(values.map(\.series))
        guard !seriesIds.isEmpty else { return [:] }
        struct Series: Decodable {
            package var id: Int64
            package var deviceId: String
            package var identifier: String
        }
        struct Shown: Decodable {
            package var deviceId: String
            package var identifier: String
            package var reportedAt: Millis
        }
        var keys: [Int64: SeriesKey] = [:]
        for chunk in Array(seriesIds).chunked(500) {
            let rows = try await db.raw(
                "SELECT id, device_id AS \"deviceId\", identifier FROM telemetry_series WHERE id IN (\(unsafeRaw: chunk.map(String.init).joined(separator: ", ")))"
            )
            .all(decoding: Series.self)
            for r in rows { keys[r.id] = SeriesKey(deviceId: r.deviceId, identifier: r.identifier) }
        }
        var shown: [SeriesKey: Millis] = [:]
        for chunk in Array(Set(keys.values.map(\.deviceId))).chunked(500) {
            let rows = try await db.raw(
                "SELECT device_id AS \"deviceId\", identifier, reported_at AS \"reportedAt\" FROM device_shadow WHERE \(SQLQueryString.isIn("device_id", Set(chunk)))"
            )
            .all(decoding: Shown.self)
            for r in rows { shown[SeriesKey(deviceId: r.deviceId, identifier: r.identifier)] = r.reportedAt }
        }
        var missed: [SeriesKey: ShadowUpdate] = [:]
        for v in values {
            guard let key = keys[v.series], v.ts > shown[key] ?? .min,
                let json = v.txt ?? v.num.map(ReportedValue.text(of:))
            else { continue }
            let value = ReportedValue(identifier: key.identifier, json: json, number: v.num, time: v.ts)
            missed[key, default: ShadowUpdate(value: value, count: 0)].add(ShadowUpdate(value: value, count: 1))
        }
        return missed
    }

    /// Rows per INSERT: at most 6 bound values each, so 12,000 per statement, within PostgreSQL's
    /// 65,535 and SQLite's limit.
    package static let rowsPerStatement = 2_000
}

/// A device's messages and errors over some reports, as `device_diagnosis` adds them up.
package struct Tally: Sendable {
    package var messages = 0
    package var errors = 0
    package var lastError: String?
    package var lastErrorAt: Millis?
    package var lastSeen: Millis = 0

    package mutating func saw(at: Millis) {
        messages += 1
        lastSeen = max(lastSeen, at)
    }

    package mutating func refused(_ reason: String, at: Millis) {
        errors += 1
        lastError = reason
        lastErrorAt = at
    }

    /// Adds later reports' counts: their last error, if any, is the newer one.
    package mutating func add(_ later: Tally) {
        messages += later.messages
        errors += later.errors
        if later.lastError != nil {
            lastError = later.lastError
            lastErrorAt = later.lastErrorAt
        }
        lastSeen = max(lastSeen, later.lastSeen)
    }
}

/// Where in a batch a device property's newest value is, and how many values it had there.
package struct Newest {
    package var key: SeriesKey
    package var report: Int
    package var value: Int
    package var time: Millis
    package var count = 1

    /// A later value in the batch: the newest measurement wins, the later one when two tie.
    package mutating func saw(report: Int, value: Int, time: Millis) {
        if time >= self.time {
            self.report = report
            self.value = value
            self.time = time
        }
        count += 1
    }
}

/// A device property's reported value as the shadow takes it: the newest of some reports, and how
/// many there were (each is a version).
package struct ShadowUpdate: Sendable {
    package var value: ReportedValue
    package var count: Int

    /// Adds later reports: the newest measurement wins, the later report when two tie.
    package mutating func add(_ later: ShadowUpdate) {
        if later.value.time >= value.time { value = later.value }
        count += later.count
    }
}

extension Dictionary where Value == ShadowUpdate {
    /// Adds later updates: per property the newest value wins, and the counts add up.
    package mutating func add(_ later: [Key: ShadowUpdate]) {
        for (key, update) in later {
            if self[key] == nil { self[key] = update } else { self[key]!.add(update) }
        }
    }
}

extension Dictionary where Value == Tally {
    /// Adds later counts per device.
    package mutating func add(_ later: [Key: Tally]) {
        for (key, tally) in later { self[key, default: Tally()].add(tally) }
    }
}

/// What the telemetry writer has stored in history but not yet written to `device_shadow` and
/// `device_diagnosis`: under load it writes those once a second, not with every commit, which
/// takes most of a commit's upserts away. The store's readers add it to what they read.
public final class HeldTelemetry: Sendable {
    package struct Held {
        package var shadow: [SeriesKey: ShadowUpdate] = [:]
        package var tallies: [ID: Tally] = [:]
        /// When the tables were last written (or the first value held since).
        package var since = ContinuousClock.now
    }
    private let held = Mutex(Held())

    public init() {}

    package var shadowIsEmpty: Bool { held.withLock { $0.shadow.isEmpty } }

    package func heldLongerThan(_ interval: Duration) -> Bool {
        held.withLock { ContinuousClock.now - $0.since > interval }
    }

    /// Everything held, to be written; from now on nothing is.
    package func take() -> Held {
        held.withLock { h in
            defer { h = Held() }
            return h
        }
    }

    /// Gives back what a failed write took, before what was added since.
    package func putBack(_ earlier: Held) {
        held.withLock { h in
            var back = earlier
            back.shadow.add(h.shadow)
            back.tallies.add(h.tallies)
            h = back
        }
    }

    package func add(shadow: [SeriesKey: ShadowUpdate], tallies: [ID: Tally]) {
        held.withLock { h in
            h.shadow.add(shadow)
            h.tallies.add(tallies)
        }
    }

    /// One device's held values, by identifier.
    package func shadow(of deviceId: ID) -> [String: ShadowUpdate] {
        held.withLock { h in
            var values: [String: ShadowUpdate] = [:]
            for (key, update) in h.shadow where key.deviceId == deviceId { values[key.identifier] = update }
            return values
        }
    }

    package func tallies(of deviceIds: Set<ID>) -> [ID: Tally] {
        held.withLock { h in h.tallies.filter { deviceIds.contains($0.key) } }
    }
}

/// One device property's history: what `telemetry_series` numbers. Two strings, not one joined,
/// so that a batch's thousands of lookups allocate nothing.
package struct SeriesKey: Hashable, Comparable, Sendable {
    package var deviceId: ID
    package var identifier: String

    package static func < (a: SeriesKey, b: SeriesKey) -> Bool {
        a.deviceId != b.deviceId ? a.deviceId < b.deviceId : a.identifier < b.identifier
    }
}

package struct DeviceEventPayload: Encodable {
    package var productKey: String
    package var deviceName: String
    package var identifier: String
    package var eventType: String
    /// The event's output values as the device sent them (JSON text).
    package var values: String
    package var at: Millis
}

extension Array {
    package func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}

// MARK: reading

public struct ShadowValue: Codable, Sendable, Equatable {
    public var identifier: String
    public var reported: String?
    public var reportedAt: Millis?
    public var reportedVersion: Int?
    public var desired: String?
    public var desiredVersion: Int?
    public var desiredSetAt: Millis?
    /// Nil while the desired value is still waiting for the device.
    public var deliveredAt: Millis?
}

public struct DeviceDiagnosis: Codable, Sendable, Equatable {
    public var messages: Int
    public var errors: Int
    public var lastError: String?
    public var lastErrorAt: Millis?
    public var lastSeenAt: Millis?
    public static let none = DeviceDiagnosis(messages: 0, errors: 0, lastError: nil, lastErrorAt: nil, lastSeenAt: nil)
}

public struct TelemetryPoint: Codable, Sendable, Equatable {
    public var t: Millis
    public var value: Double?
    public var text: String?
}

public struct TelemetryBucket: Codable, Sendable, Equatable {
    public var t: Millis
    public var min: Double?
    public var max: Double?
    public var avg: Double?
    public var count: Int
}

public struct DesiredValue: Codable, Sendable, Equatable {
    public var identifier: String
    public var value: String
    public var version: Int
}

extension Store {
    public func diagnosis(_ deviceIds: [ID]) async throws -> [ID: DeviceDiagnosis] {
        guard !deviceIds.isEmpty else { return [:] }
        struct Row: Decodable {
            package var deviceId: String
            package var messages: Int
            package var errors: Int
            package var lastError: String?
            package var lastErrorAt: Millis?
            package var lastSeenAt: Millis?
        }
        let rows = try await telemetry.read { db in
            try await db.raw(
                """
                SELECT device_id AS "deviceId", messages, errors, last_error AS "lastError", last_error_at AS "lastErrorAt", last_seen_at AS "lastSeenAt"
                FROM device_diagnosis WHERE \(SQLQueryString.isIn("device_id", Set(deviceIds)))
                """
            ).all(decoding: Row.self)
        }
        var found = Dictionary(
            uniqueKeysWithValues: rows.map {
                (
                    $0.deviceId,
                    DeviceDiagnosis(
                        messages: $0.messages, errors: $0.errors, lastError: $0.lastError, lastErrorAt: $0.lastErrorAt,
                        lastSeenAt: $0.lastSeenAt)
                )
            })
        for (device, c) in heldTelemetry.tallies(of: Set(deviceIds)) {
            var d = found[device] ?? .none
            d.messages += c.messages
            d.errors += c.errors
            if c.lastError != nil {
                d.lastError = c.lastError
                d.lastErrorAt = c.lastErrorAt
            }
            d.lastSeenAt = max(d.lastSeenAt ?? 0, c.lastSeen)
            found[device] = d
        }
        return found
    }

    /// Reported and desired values per property, by identifier.
    public func shadow(_ device: Device) async throws -> [ShadowValue] {
        struct Reported: Decodable {
            package var identifier: String
            package var value: String
            package var reportedAt: Millis
            package var version: Int
        }
        struct Desired: Decodable {
            package var identifier: String
            package var value: String
            package var version: Int
            package var setAt: Millis
            package var deliveredAt: Millis?
        }
        let reported = try await telemetry.read { db in
            try await db.raw(
                "SELECT identifier, value, reported_at AS \"reportedAt\", version FROM device_shadow WHERE device_id = \(bind: device.id)"
            ).all(decoding: Reported.self)
        }
        let desired = try await read { db in
            try await db.raw(
                "SELECT identifier, value, version, set_at AS \"setAt\", delivered_at AS \"deliveredAt\" FROM device_desired WHERE device_id = \(bind: device.id)"
            ).all(decoding: Desired.self)
        }
        var values: [String: ShadowValue] = [:]
        for r in reported {
            values[r.identifier] = ShadowValue(
                identifier: r.identifier, reported: r.value, reportedAt: r.reportedAt, reportedVersion: r.version)
        }
        // Values stored in history that the writer has not yet written to `device_shadow`.
        for (identifier, update) in heldTelemetry.shadow(of: device.id) {
            var v = values[identifier] ?? ShadowValue(identifier: identifier)
            if update.value.time >= (v.reportedAt ?? .min) {
                v.reported = update.value.json
                v.reportedAt = update.value.time
            }
            v.reportedVersion = (v.reportedVersion ?? 0) + update.count
            values[identifier] = v
        }
        for d in desired {
            var v = values[d.identifier] ?? ShadowValue(identifier: d.identifier)
            v.desired = d.value
            v.desiredVersion = d.version
            v.desiredSetAt = d.setAt
            v.deliveredAt = d.deliveredAt
            values[d.identifier] = v
        }
        return values.values.sorted { $0.identifier < $1.identifier }
    }

    /// Records what operators want writable properties to be; returns the new versions.
    public func setDesired(_ device: Device, _ values: [(identifier: String, json: String)], actor: Principal)
        async throws -> [DesiredValue]
    {
        try await write { db in
            var result: [DesiredValue] = []
            for (identifier, json) in values {
                // The version is taken in the same statement, so two concurrent sets never share one.
                struct V: Decodable { var version: Int }
                let row = try await db.raw(
                    """
                    INSERT INTO device_desired (device_id, community_id, identifier, value, version, set_at, delivered_at)
                    VALUES (\(bind: device.id), \(bind: device.communityId), \(bind: identifier), \(bind: json), 1, \(bind: nowMillis()), NULL)
                    ON CONFLICT (device_id, identifier) DO UPDATE SET value = excluded.value, version = device_desired.version + 1, set_at = excluded.set_at, delivered_at = NULL
                    RETURNING version
                    """
                ).first(decoding: V.self)
                result.append(DesiredValue(identifier: identifier, value: json, version: row?.version ?? 1))
            }
            try await Change.record(
                db, actor: actor, communityId: device.communityId, type: "device.desired", subjectType: "device",
                subjectId: device.id,
                after: Dictionary(uniqueKeysWithValues: result.map { ($0.identifier, $0.value) }))
            return result
        }
    }

    /// Desired values the device has not yet accepted.
    public func undeliveredDesired(_ device: Device) async throws -> [DesiredValue] {
        try await read { db in
            try await db.raw(
                "SELECT identifier, value, version FROM device_desired WHERE device_id = \(bind: device.id) AND delivered_at IS NULL ORDER BY identifier"
            )
            .all(decoding: DesiredValue.self)
        }
    }

    /// Every desired value of a device (delivered or not), as the device asks for them itself.
    public func desiredValues(_ device: Device) async throws -> [DesiredValue] {
        try await read { db in
            try await db.raw(
                "SELECT identifier, value, version FROM device_desired WHERE device_id = \(bind: device.id) ORDER BY identifier"
            )
            .all(decoding: DesiredValue.self)
        }
    }

    /// Deletes desired values the device has dealt with: each at the version it names (a newer one,
    /// set meanwhile, stays), or whatever version when it names none. Returns how many went.
    @discardableResult
    public func deleteDesired(_ device: Device, _ items: [(identifier: String, version: Int?)]) async throws -> Int {
        guard !items.isEmpty else { return 0 }
        return try await write { db in
            var deleted: [String] = []
            for (identifier, version) in items {
                var condition: SQLQueryString = "device_id = \(bind: device.id) AND identifier = \(bind: identifier)"
                if let version { condition += " AND version = \(bind: version)" }
                let gone = try await db.raw("DELETE FROM device_desired WHERE \(condition) RETURNING identifier").all()
                if !gone.isEmpty { deleted.append(identifier) }
            }
            if !deleted.isEmpty {
                try await EventLog.append(
                    db, communityId: device.communityId, type: "device.desired.deleted", subjectType: "device",
                    subjectId: device.id,
                    actor: .system, payload: ["identifiers": deleted.joined(separator: ",")])
            }
            return deleted.count
        }
    }

    /// Marks desired values delivered, unless they changed again meanwhile (a newer version waits).
    public func markDesiredDelivered(_ device: Device, _ values: [DesiredValue]) async throws {
        guard !values.isEmpty else { return }
        try await write { db in
            for v in values {
                try await db.raw(
                    "UPDATE device_desired SET delivered_at = \(bind: nowMillis()) WHERE device_id = \(bind: device.id) AND identifier = \(bind: v.identifier) AND version = \(bind: v.version)"
                ).run()
            }
            try await EventLog.append(
                db, communityId: device.communityId, type: "device.desired.delivered", subjectType: "device",
                subjectId: device.id, actor: .system,
                payload: Dictionary(uniqueKeysWithValues: values.map { ($0.identifier, $0.version) }))
        }
    }
}
