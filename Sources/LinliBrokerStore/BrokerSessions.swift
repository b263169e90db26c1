import Foundation
import LinliMQTT
import LinliStorage
import Logging
import Metrics
import NIOCore
import SQLKit
import Synchronization

extension Schema {
    /// What the embedded broker must not lose, in telemetry's ledger: on SQLite that file is synced
    /// at every commit (a PUBACK promises the message is kept), and its writer is the one whose
    /// group commits already carry the devices' posts.
    public static let broker = Schema(telemetry: [
        Migration(version: 4, name: "MQTT persistent sessions, their messages, retained messages and wills") {
            engine in
            let blob = engine == .sqlite ? "BLOB" : "BYTEA"
            return [
                """
                CREATE TABLE mqtt_sessions (
                    client_id TEXT PRIMARY KEY, username TEXT, connected INTEGER NOT NULL, changed_at BIGINT NOT NULL,
                    dropped BIGINT NOT NULL)
                """,
                "CREATE INDEX mqtt_sessions_username ON mqtt_sessions (username)",
                """
                CREATE TABLE mqtt_subscriptions (
                    client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL, PRIMARY KEY (client_id, filter))
                """,
                """
                CREATE TABLE mqtt_session_messages (
                    client_id TEXT NOT NULL, sequence BIGINT NOT NULL, topic TEXT NOT NULL, payload \(blob) NOT NULL,
                    qos INTEGER NOT NULL, retain INTEGER NOT NULL, released INTEGER NOT NULL, PRIMARY KEY (client_id, sequence))
                """,
                """
                CREATE TABLE mqtt_received_qos2 (
                    client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id))
                """,
                """
                CREATE TABLE mqtt_retained (
                    topic TEXT PRIMARY KEY, payload \(blob) NOT NULL, qos INTEGER NOT NULL, stored_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE mqtt_wills (
                    client_id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload \(blob) NOT NULL, qos INTEGER NOT NULL,
                    retain INTEGER NOT NULL)
                """,
            ]
        },
        Migration(version: 5, name: "MQTT 5: session expiry, subscription options, message properties and expiry") {
            engine in
            let blob = engine == .sqlite ? "BLOB" : "BYTEA"
            return [
                "ALTER TABLE mqtt_sessions ADD COLUMN expiry_ms BIGINT",
                "ALTER TABLE mqtt_subscriptions ADD COLUMN options INTEGER NOT NULL DEFAULT 0",
                "ALTER TABLE mqtt_subscriptions ADD COLUMN identifier BIGINT",
                "ALTER TABLE mqtt_session_messages ADD COLUMN properties \(blob)",
                "ALTER TABLE mqtt_session_messages ADD COLUMN expires_at BIGINT",
                "ALTER TABLE mqtt_retained ADD COLUMN properties \(blob)",
                "ALTER TABLE mqtt_retained ADD COLUMN expires_at BIGINT",
                "ALTER TABLE mqtt_wills ADD COLUMN properties \(blob)",
            ]
        },
        Migration(version: 6, name: "MQTT journal: each group commit of the broker as one row, applied later") {
            engine in
            engine == .sqlite
                ? ["CREATE TABLE mqtt_journal (id INTEGER PRIMARY KEY, changes BLOB NOT NULL, count INTEGER NOT NULL)"]
                : [
                    "CREATE TABLE mqtt_journal (id BIGSERIAL PRIMARY KEY, changes BYTEA NOT NULL, count INTEGER NOT NULL)"
                ]
        },
    ])
}

/// The broker's persistent sessions, their messages, retained messages and wills, in telemetry's
/// database.
///
/// Changes are committed in groups: while one transaction commits, the changes of every
/// connection that arrive meanwhile gather for the next, each caller told when its own are in. A
/// group is written as one row of `mqtt_journal` (`BrokerJournal`), so what an acknowledgement
/// waits for costs the same whether a message is kept for one session or for a hundred. When
/// nothing is waiting, the journal is checkpointed: its oldest rows are applied to the session
/// tables and deleted, in one transaction, a few thousand changes at a time; a message kept and
/// delivered within one checkpoint never reaches the tables. Reading the tables (a restart, the
/// pages) checkpoints first, so they never see a state older than the journal's.
public final class BrokerSessionStore: MQTTSessionStore {
    private struct Pending {
        var changes: [MQTTStateChange] = []
        var outcome = CommitOutcome()
        var flushing = false
        /// Journal rows written and not yet checkpointed (as far as this process knows: a
        /// checkpoint by another reader only leaves this one less to do).
        var journal: [JournalEntry] = []
        var journalChanges = 0
        /// Messages delivered, and sessions ended, in the journal not yet checkpointed: the entry
        /// each happened in. A message kept in an earlier entry need not be written to the tables
        /// at all, since the later entry (still in the journal) removes it anyway.
        var deliveredIn: [MessageKey: Int64] = [:]
        var endedIn: [String: Int64] = [:]
        var oldestJournal: ContinuousClock.Instant?
        var checkpointScheduled = false
        var stopped = false
    }
    private struct MessageKey: Hashable {
        var clientId: String
        var sequence: UInt64
    }
    private struct JournalEntry {
        var id: Int64
        var count: Int
        var delivered: [MessageKey]
        var ended: [String]
    }
    private let pending = Mutex(Pending())
    let database: any Database
    let logger: Logger
    private let commitTimer = Metrics.Timer(label: "linli_mqtt_store_commit_seconds")
    private let batchSize = Recorder(label: "linli_mqtt_store_batch_changes")
    private let checkpointTimer = Metrics.Timer(label: "linli_mqtt_store_checkpoint_seconds")
    private let journalBacklog = Gauge(label: "linli_mqtt_store_journal_changes")

    /// Changes applied per checkpoint transaction: small enough that a device post waiting behind
    /// one (SQLite has one writer) waits a few tens of milliseconds.
    static let checkpointStep = 2_000
    /// A journal this old, or this long, is checkpointed as soon as nothing is waiting. Until
    /// then a subscriber that comes back soon takes its messages before they are ever written
    /// to the tables.
    static let checkpointAge: Duration = .seconds(2)
    static let checkpointBacklog = 100_000
    /// Past this many changes in the journal, new changes wait behind a checkpoint step: the
    /// journal stays bounded even when changes never stop arriving.
    static let journalLimit = 400_000

    public init(database: any Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    public func save(_ changes: [MQTTStateChange]) -> any SharedCompletion {
        let (outcome, start) = pending.withLock { p -> (CommitOutcome, Bool) in
            p.changes.append(contentsOf: changes)
            defer { p.flushing = true }
            return (p.outcome, !p.flushing)
        }
        // High priority for the same reason as telemetry's writer: acknowledgements wait for it.
        if start { Task(priority: .high) { await self.flush() } }
        return Committed(outcome: outcome)
    }

    /// Returns once nothing is waiting to be committed, e.g. before the database is closed; the
    /// journal is checkpointed to the end first, so the tables are whole for whoever reads next.
    public func idle() async {
        while pending.withLock({ $0.flushing }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        do { try await Self.checkpoint(database) } catch {
            logger.warning("MQTT journal not checkpointed at the end", metadata: ["error": "\(error)"])
        }
        pending.withLock { p in
            p.journal = []
            p.journalChanges = 0
            p.deliveredIn = [:]
            p.endedIn = [:]
            p.oldestJournal = nil
            p.stopped = true
        }
        journalBacklog.record(0)
    }

    private enum Work {
        case commit([MQTTStateChange], CommitOutcome)
        case checkpoint(through: Int64, count: Int)
    }

    private func flush() async {
        while true {
            let next = pending.withLock { p -> Work? in
                let due =
                    p.journalChanges >= Self.checkpointBacklog
                    || (p.oldestJournal.map { ContinuousClock.now - $0 >= Self.checkpointAge } ?? false)
                if !p.changes.isEmpty, p.journalChanges < Self.journalLimit || p.stopped {
                    defer {
                        p.changes = []
                        p.outcome = CommitOutcome()
                    }
                    return .commit(p.changes, p.outcome)
                }
                if !p.journal.isEmpty, !p.stopped, due || p.journalChanges >= Self.journalLimit {
                    var count = 0
                    var through = p.journal[0].id
                    for entry in p.journal {
                        guard count == 0 || count + entry.count <= Self.checkpointStep else { break }
                        count += entry.count
                        through = entry.id
                    }
                    return .checkpoint(through: through, count: count)
                }
                p.flushing = false
                return nil
            }
            switch next {
            case let .commit(changes, outcome):
                await commit(changes, outcome)
            case let .checkpoint(through, count):
                guard await checkpointStep(through: through, count: count) else {
                    pending.withLock { $0.flushing = false }
                    scheduleCheckpoint()
                    return
                }
            case nil:
                scheduleCheckpoint()
                return
            }
        }
    }

    private func commit(_ changes: [MQTTStateChange], _ outcome: CommitOutcome) async {
        let start = ContinuousClock.now
        do {
            let entry = Data(buffer: BrokerJournal.encode(changes))
            let id = try await database.write { db in
                try await db.raw(
                    "INSERT INTO mqtt_journal (changes, count) VALUES (\(bind: entry), \(bind: changes.count)) RETURNING id"
                ).first(decoding: JournalId.self)?.id
            }
            guard let id else { throw BrokerJournal.Unreadable(description: "the journal gave no id") }
            var delivered: [MessageKey] = []
            var ended: [String] = []
            for change in changes {
                switch change {
                case let .delivered(clientId, sequence):
                    delivered.append(MessageKey(clientId: clientId, sequence: sequence))
                case let .sessionEnded(clientId): ended.append(clientId)
                default: continue
                }
            }
            let elapsed = ContinuousClock.now - start
            commitTimer.recordNanoseconds(
                elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
            batchSize.record(changes.count)
            let backlog = pending.withLock { p in
                p.journal.append(JournalEntry(id: id, count: changes.count, delivered: delivered, ended: ended))
                p.journalChanges += changes.count
                for key in delivered { p.deliveredIn[key] = id }
                for clientId in ended { p.endedIn[clientId] = id }
                if p.oldestJournal == nil { p.oldestJournal = .now }
                return p.journalChanges
            }
            journalBacklog.record(backlog)
            outcome.complete(.success(()))
        } catch {
            logger.error(
                "MQTT session changes not stored", metadata: ["changes": "\(changes.count)", "error": "\(error)"])
            outcome.complete(.failure(error))
        }
    }

    /// Applies the journal through row `through`; false when that failed (it is tried again later).
    private func checkpointStep(through: Int64, count: Int) async -> Bool {
        let start = ContinuousClock.now
        do {
            try await Self.checkpoint(database, through: through) { clientId, sequence in
                // Kept through `through`, and gone in a later entry: not worth a row.
                self.pending.withLock { p in
                    (p.deliveredIn[MessageKey(clientId: clientId, sequence: sequence)] ?? 0) > through
                        || (p.endedIn[clientId] ?? 0) > through
                }
            }
        } catch {
            logger.error("MQTT journal not checkpointed", metadata: ["changes": "\(count)", "error": "\(error)"])
            return false
        }
        let elapsed = ContinuousClock.now - start
        checkpointTimer.recordNanoseconds(
            elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        let backlog = pending.withLock { p in
            while let entry = p.journal.first, entry.id <= through {
                p.journal.removeFirst()
                p.journalChanges -= entry.count
                for key in entry.delivered where p.deliveredIn[key] == entry.id { p.deliveredIn[key] = nil }
                for clientId in entry.ended where p.endedIn[clientId] == entry.id { p.endedIn[clientId] = nil }
            }
            p.oldestJournal = p.journal.isEmpty ? nil : .now
            return p.journalChanges
        }
        journalBacklog.record(backlog)
        return true
    }

    /// A journal left behind when the loop went quiet is checkpointed a little later.
    private func scheduleCheckpoint() {
        let schedule = pending.withLock { p in
            guard !p.journal.isEmpty, !p.stopped, !p.checkpointScheduled else { return false }
            p.checkpointScheduled = true
            return true
        }
        guard schedule else { return }
        Task {
            try? await Task.sleep(for: Self.checkpointAge)
            let start = pending.withLock { p in
                p.checkpointScheduled = false
                defer { p.flushing = true }
                return !p.flushing
            }
            if start { await self.flush() }
        }
    }

    private struct JournalId: Decodable {
        var id: Int64
    }

    /// Applies journal rows to the tables and deletes them, in one transaction per step, oldest
    /// first: all of them, or those through `through`. Rows are taken by deleting them, so two
    /// checkpoints at once (the broker's and a page's) never apply one row twice. `settled`
    /// names kept messages to leave out because a later entry delivers them or ends their
    /// session.
    static func checkpoint(
        _ database: any Database, through: Int64? = nil,
        settled: @escaping @Sendable (String, UInt64) -> Bool = { _, _ in false }
    ) async throws {
        while true {
            let more = try await database.write { db -> Bool in
                struct Entry: Decodable {
                    var id: Int64
                    var changes: Data
                    var count: Int
                }
                var bound = through
                if bound == nil {
                    // At most a step's worth at once, when everything is asked for.
                    struct Row: Decodable {
                        var id: Int64
                        var count: Int
                    }
                    let rows = try await db.raw("SELECT id, count FROM mqtt_journal ORDER BY id LIMIT 1000").all(
                        decoding: Row.self)
                    guard !rows.isEmpty else { return false }
                    var total = 0
                    for row in rows {
                        guard total == 0 || total + row.count <= checkpointStep else { break }
                        total += row.count
                        bound = row.id
                    }
                }
                let entries = try await db.raw(
                    "DELETE FROM mqtt_journal WHERE id <= \(bind: bound!) RETURNING id, changes, count"
                ).all(decoding: Entry.self).sorted { $0.id < $1.id }
                var changes: [MQTTStateChange] = []
                changes.reserveCapacity(entries.reduce(0) { $0 + $1.count })
                for entry in entries {
                    for change in try BrokerJournal.decode(ByteBuffer(data: entry.changes)) {
                        if case let .kept(clientId, message) = change, settled(clientId, message.sequence) { continue }
                        changes.append(change)
                    }
                }
                try await apply(changes, db)
                return through == nil
            }
            if !more { return }
        }
    }

    /// Writes one group of changes, in order. Messages kept in this group are inserted at the
    /// end, in one statement per few hundred; their own later changes (released, delivered, their
    /// session ended) are applied to them before that. Retained messages and drop counts are
    /// written once per topic and session, the last change winning.
    static func apply(_ changes: [MQTTStateChange], _ db: any SQLDatabase) async throws {
        var kept: [MessageKey: MQTTStoredMessage] = [:]
        var keptOrder: [MessageKey] = []
        var retained: [String: Publish?] = [:]
        // Counts of messages dropped for a full queue: a flood into a full queue writes one per group.
        var dropped: [String: Int] = [:]
        // Stored messages released (QoS 2) or delivered in this group, written at the end in one
        // statement per session and few hundred: a subscriber draining its queue acknowledges
        // thousands a second, and one statement each was most of the drain's cost.
        var releasedStored: [String: [UInt64]] = [:]
        var deliveredStored: [String: [UInt64]] = [:]
        for change in changes {
            switch change {
            case let .session(clientId, username, connected, at, expiry):
                try await db.raw(
                    """
                    INSERT INTO mqtt_sessions (client_id, username, connected, changed_at, dropped, expiry_ms)
                    VALUES (\(bind: clientId), \(bind: username), \(bind: connected ? 1 : 0), \(bind: at), 0, \(bind: expiry))
                    ON CONFLICT (client_id) DO UPDATE SET username = excluded.username, connected = excluded.connected,
                    changed_at = excluded.changed_at, expiry_ms = excluded.expiry_ms
                    """
                ).run()
            case let .sessionEnded(clientId):
                for key in keptOrder where key.clientId == clientId { kept[key] = nil }
                dropped[clientId] = nil
                // Its rows all go now; a later session of the same id starts its sequence anew.
                releasedStored[clientId] = nil
                deliveredStored[clientId] = nil
                for table in ["mqtt_sessions", "mqtt_subscriptions", "mqtt_session_messages", "mqtt_received_qos2"] {
                    try await db.raw("DELETE FROM \(unsafeRaw: table) WHERE client_id = \(bind: clientId)").run()
                }
            case let .subscribed(clientId, subscription):
                try await db.raw(
                    """
                    INSERT INTO mqtt_subscriptions (client_id, filter, qos, options, identifier) VALUES (\(bind: clientId), \(bind: subscription.filter), \(bind: Int(subscription.qos.rawValue)), \(bind: Int(subscription.optionsByte)), \(bind: subscription.identifier))
                    ON CONFLICT (client_id, filter) DO UPDATE SET qos = excluded.qos, options = excluded.options, identifier = excluded.identifier
                    """
                ).run()
            case let .unsubscribed(clientId, filter):
                try await db.raw(
                    "DELETE FROM mqtt_subscriptions WHERE client_id = \(bind: clientId) AND filter = \(bind: filter)"
                ).run()
            case let .kept(clientId, message):
                let key = MessageKey(clientId: clientId, sequence: message.sequence)
                if kept.updateValue(message, forKey: key) == nil { keptOrder.append(key) }
            case let .released(clientId, sequence):
                let key = MessageKey(clientId: clientId, sequence: sequence)
                if kept[key] != nil {
                    kept[key]!.released = true
                } else {
                    releasedStored[clientId, default: []].append(sequence)
                }
            case let .delivered(clientId, sequence):
                let key = MessageKey(clientId: clientId, sequence: sequence)
                if kept.removeValue(forKey: key) == nil {
                    deliveredStored[clientId, default: []].append(sequence)
                }
            case let .receivedQoS2(clientId, packetId):
                try await db.raw(
                    "INSERT INTO mqtt_received_qos2 (client_id, packet_id) VALUES (\(bind: clientId), \(bind: Int(packetId))) ON CONFLICT DO NOTHING"
                ).run()
            case let .releasedQoS2(clientId, packetId):
                try await db.raw(
                    "DELETE FROM mqtt_received_qos2 WHERE client_id = \(bind: clientId) AND packet_id = \(bind: Int(packetId))"
                ).run()
            case let .retained(topic, message):
                retained[topic] = .some(message)
            case let .will(clientId, will):
                try await db.raw("DELETE FROM mqtt_wills WHERE client_id = \(bind: clientId)").run()
                if let will {
                    try await db.raw(
                        """
                        INSERT INTO mqtt_wills (client_id, topic, payload, qos, retain, properties) VALUES (\(bind: clientId), \(bind: will.topic),
                        \(bind: Data(buffer: will.payload)), \(bind: Int(will.qos.rawValue)), \(bind: will.retain ? 1 : 0), \(bind: will.properties.stored.map { Data($0) }))
                        """
                    ).run()
                }
            case let .dropped(clientId, total):
                dropped[clientId] = total
            }
        }
        // Releases before deletions: a message released and then delivered in one group is gone.
        for (clientId, sequences) in releasedStored {
            for chunk in chunks(sequences) {
                try await db.raw(
                    "UPDATE mqtt_session_messages SET released = 1, payload = \(bind: Data()) WHERE client_id = \(bind: clientId) AND sequence IN (\(chunk))"
                ).run()
            }
        }
        for (clientId, sequences) in deliveredStored {
            for chunk in chunks(sequences) {
                try await db.raw(
                    "DELETE FROM mqtt_session_messages WHERE client_id = \(bind: clientId) AND sequence IN (\(chunk))"
                ).run()
            }
        }
        for (clientId, total) in dropped {
            try await db.raw("UPDATE mqtt_sessions SET dropped = \(bind: total) WHERE client_id = \(bind: clientId)")
                .run()
        }
        for (topic, message) in retained {
            try await db.raw("DELETE FROM mqtt_retained WHERE topic = \(bind: topic)").run()
            guard let message else { continue }
            try await db.raw(
                """
                INSERT INTO mqtt_retained (topic, payload, qos, stored_at, properties, expires_at) VALUES (\(bind: topic), \(bind: Data(buffer: message.payload)),
                \(bind: Int(message.qos.rawValue)), \(bind: Int64(Date().timeIntervalSince1970 * 1000)), \(bind: message.properties.stored.map { Data($0) }), \(bind: message.expiresAt))
                """
            ).run()
        }
        let rows = keptOrder.compactMap { key in kept[key].map { (key.clientId, $0) } }
        for chunk in stride(from: 0, to: rows.count, by: 400).map({ rows[$0..<min($0 + 400, rows.count)] }) {
            var sql = SQLQueryString(
                "INSERT INTO mqtt_session_messages (client_id, sequence, topic, payload, qos, retain, released, properties, expires_at) VALUES "
            )
            for (index, (clientId, m)) in chunk.enumerated() {
                if index > 0 { sql.appendLiteral(", ") }
                sql.appendInterpolation(
                    "(\(bind: clientId), \(bind: Int64(m.sequence)), \(bind: m.message.topic), \(bind: m.released ? Data() : Data(buffer: m.message.payload)), \(bind: Int(m.message.qos.rawValue)), \(bind: m.message.retain ? 1 : 0), \(bind: m.released ? 1 : 0), \(bind: m.released ? nil : m.message.properties.stored.map { Data($0) }), \(bind: m.message.expiresAt))"
                        as SQLQueryString)
            }
            try await db.raw(sql).run()
        }
    }

    /// Sequences as bound lists of at most 400, for `IN (…)`.
    private static func chunks(_ sequences: [UInt64]) -> [SQLQueryString] {
        stride(from: 0, to: sequences.count, by: 400).map { start in
            var list = SQLQueryString("")
            for (index, sequence) in sequences[start..<min(start + 400, sequences.count)].enumerated() {
                if index > 0 { list.appendLiteral(", ") }
                list.appendInterpolation("\(bind: Int64(sequence))" as SQLQueryString)
            }
            return list
        }
    }

    public func load() async throws -> MQTTStoredState {
        try await Self.checkpoint(database)
        return try await database.read { db in
            struct SessionRow: Decodable {
                var client_id: String
                var username: String?
                var connected: Int
                var changed_at: Int64
                var dropped: Int
                var expiry_ms: Int64?
            }
            struct SubscriptionRow: Decodable {
                var client_id: String
                var filter: String
                var qos: Int
                var options: Int
                var identifier: Int?
            }
            struct MessageRow: Decodable {
                var client_id: String
                var sequence: Int64
                var topic: String
                var payload: Data
                var qos: Int
                var retain: Int
                var released: Int
                var properties: Data?
                var expires_at: Int64?
            }
            struct PacketRow: Decodable {
                var client_id: String
                var packet_id: Int
            }
            struct RetainedRow: Decodable {
                var topic: String
                var payload: Data
                var qos: Int
                var properties: Data?
                var expires_at: Int64?
            }
            struct WillRow: Decodable {
                var client_id: String
                var topic: String
                var payload: Data
                var qos: Int
                var retain: Int
                var properties: Data?
            }
            /// Properties as stored; a row whose bytes do not read back (they always should) loses
            /// its properties, not its message.
            func properties(_ data: Data?, _ place: PropertyPlace) -> MQTTProperties {
                guard let data else { return .none }
                return (try? MQTTProperties(stored: Array(data), place: place)) ?? .none
            }
            func qos(_ value: Int) -> QoS { QoS(rawValue: UInt8(clamping: value)) ?? .atLeastOnce }
            var sessions: [String: MQTTStoredSession] = [:]
            for row in try await db.raw("SELECT * FROM mqtt_sessions").all(decoding: SessionRow.self) {
                sessions[row.client_id] = MQTTStoredSession(
                    clientId: row.client_id, username: row.username,
                    disconnectedAt: row.connected == 1 ? nil : row.changed_at, dropped: row.dropped,
                    expiryMillis: row.expiry_ms)
            }
            for row in try await db.raw("SELECT * FROM mqtt_subscriptions ORDER BY client_id, filter").all(
                decoding: SubscriptionRow.self)
            {
                let options = UInt8(clamping: row.options)
                sessions[row.client_id]?.subscriptions.append(
                    Subscription(
                        filter: row.filter, qos: qos(row.qos), noLocal: options & 0x04 != 0,
                        retainAsPublished: options & 0x08 != 0, retainHandling: (options >> 4) & 0x03,
                        identifier: row.identifier))
            }
            for row in try await db.raw("SELECT * FROM mqtt_session_messages ORDER BY client_id, sequence").all(
                decoding: MessageRow.self)
            {
                let message = Publish(
                    topic: row.topic, payload: ByteBuffer(bytes: row.payload), qos: qos(row.qos),
                    retain: row.retain == 1, properties: properties(row.properties, .publish), expiresAt: row.expires_at
                )
                sessions[row.client_id]?.messages.append(
                    MQTTStoredMessage(sequence: UInt64(row.sequence), message: message, released: row.released == 1))
            }
            for row in try await db.raw("SELECT * FROM mqtt_received_qos2").all(decoding: PacketRow.self) {
                sessions[row.client_id]?.receivedQoS2.append(UInt16(clamping: row.packet_id))
            }
            let retained = try await db.raw("SELECT * FROM mqtt_retained ORDER BY topic").all(
                decoding: RetainedRow.self
            )
            .map {
                Publish(
                    topic: $0.topic, payload: ByteBuffer(bytes: $0.payload), qos: qos($0.qos), retain: true,
                    properties: properties($0.properties, .publish), expiresAt: $0.expires_at)
            }
            let wills = try await db.raw("SELECT * FROM mqtt_wills ORDER BY client_id").all(decoding: WillRow.self).map
            {
                (
                    clientId: $0.client_id,
                    will: Will(
                        topic: $0.topic, payload: ByteBuffer(bytes: $0.payload), qos: qos($0.qos),
                        retain: $0.retain == 1, properties: properties($0.properties, .will))
                )
            }
            return MQTTStoredState(
                sessions: sessions.values.sorted { $0.clientId < $1.clientId }, retained: retained, wills: wills)
        }
    }

    /// What is kept for the persistent sessions of some usernames (an integration account's, a
    /// device's), for the pages that show them.
    public static func sessions(in database: any Database, usernames: [String]) async throws -> [BrokerSessionSummary] {
        guard !usernames.isEmpty else { return [] }
        // The journal's newest changes are not in the tables until checkpointed: most page views
        // find it empty, and only look.
        let journal = try await database.read { db in
            try await db.raw("SELECT id FROM mqtt_journal LIMIT 1").first(decoding: JournalId.self)
        }
        if journal != nil { try await checkpoint(database) }
        return try await database.read { db in
            var sql = SQLQueryString(
                """
                SELECT s.client_id, s.username, s.connected, s.changed_at, s.dropped,
                (SELECT COUNT(*) FROM mqtt_session_messages m WHERE m.client_id = s.client_id) AS kept,
                (SELECT COUNT(*) FROM mqtt_subscriptions f WHERE f.client_id = s.client_id) AS subscriptions
                FROM mqtt_sessions s WHERE s.username IN (
                """)
            for (index, name) in usernames.enumerated() {
                if index > 0 { sql.appendLiteral(", ") }
                sql.appendInterpolation("\(bind: name)" as SQLQueryString)
            }
            sql.appendLiteral(") ORDER BY s.client_id")
            return try await db.raw(sql).all(decoding: BrokerSessionSummary.self)
        }
    }
}

/// A persistent session as the pages show it.
public struct BrokerSessionSummary: Sendable, Codable, Equatable {
    public var clientId: String
    public var username: String?
    public var connected: Bool
    /// When the client came or went last (milliseconds since 1970).
    public var changedAt: Int64
    /// Messages not kept because the session's queue was full.
    public var dropped: Int
    /// QoS 1 and 2 messages kept for the client (waiting, or sent and not yet acknowledged).
    public var kept: Int
    public var subscriptions: Int

    enum Columns: String, CodingKey {
        case client_id, username, connected, changed_at, dropped, kept, subscriptions
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Columns.self)
        clientId = try c.decode(String.self, forKey: .client_id)
        username = try c.decodeIfPresent(String.self, forKey: .username)
        connected = try c.decode(Int.self, forKey: .connected) == 1
        changedAt = try c.decode(Int64.self, forKey: .changed_at)
        dropped = try c.decode(Int.self, forKey: .dropped)
        kept = try c.decode(Int.self, forKey: .kept)
        subscriptions = try c.decode(Int.self, forKey: .subscriptions)
    }
}

/// The broker's answer once a group of its changes is committed.
struct Committed: SharedCompletion {
    let outcome: CommitOutcome
    var id: ObjectIdentifier { ObjectIdentifier(outcome) }
    func whenDone(_ done: @escaping @Sendable ((any Error)?) -> Void) { outcome.whenDone(done) }
}
