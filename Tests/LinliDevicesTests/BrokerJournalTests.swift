import Foundation
import LinliMQTT
import LinliStorage
import LinliTestSupport
import Logging
import NIOCore
import Testing

@testable import LinliBrokerStore

private func message(_ sequence: UInt64, _ text: String, qos: QoS = .atLeastOnce, released: Bool = false)
    -> MQTTStoredMessage
{
    MQTTStoredMessage(
        sequence: sequence,
        message: Publish(
            topic: "meters/\(sequence)", payload: ByteBuffer(string: text), qos: qos, retain: false,
            properties: MQTTProperties([.payloadFormatIndicator(1), .userProperty(name: "楼", value: "1号楼")]),
            expiresAt: 1_900_000_000_000),
        released: released)
}

private var quiet: Logger {
    var logger = Logger(label: "broker-journal-test")
    logger.logLevel = .critical
    return logger
}

@Suite("The broker's journal: one row per group commit, checkpointed into the session tables")
struct BrokerJournalTests {
    /// Every kind of change reads back as it was written.
    @Test func everyChangeReadsBackAsWritten() throws {
        let changes: [MQTTStateChange] = [
            .session(clientId: "nvr-1", username: "nvr", connected: true, at: 1_700_000_000_000, expiry: 604_800_000),
            .session(clientId: "anon", username: nil, connected: false, at: 5, expiry: 0),
            .subscribed(
                clientId: "nvr-1",
                Subscription(
                    filter: "frigate/#", qos: .exactlyOnce, noLocal: true, retainAsPublished: true, retainHandling: 2,
                    identifier: 268_435_455)),
            .subscribed(clientId: "nvr-1", Subscription(filter: "a/+/b", qos: .atMostOnce)),
            .unsubscribed(clientId: "nvr-1", filter: "a/+/b"),
            .kept(clientId: "nvr-1", message(7, "第七条 reading")),
            .kept(clientId: "nvr-1", message(8, "", qos: .exactlyOnce, released: true)),
            .released(clientId: "nvr-1", sequence: 8),
            .delivered(clientId: "nvr-1", sequence: UInt64.max),
            .receivedQoS2(clientId: "nvr-1", packetId: 65_535),
            .releasedQoS2(clientId: "nvr-1", packetId: 1),
            .retained(
                topic: "status/gate",
                Publish(topic: "status/gate", payload: ByteBuffer(string: "open"), qos: .atLeastOnce)),
            .retained(topic: "status/old", nil),
            .will(
                clientId: "nvr-1",
                Will(
                    topic: "status/nvr", payload: ByteBuffer(string: "gone"), qos: .atLeastOnce, retain: true,
                    properties: MQTTProperties([.willDelayInterval(30)]))),
            .will(clientId: "nvr-1", nil),
            .dropped(clientId: "nvr-1", total: 12),
            .sessionEnded(clientId: "anon"),
        ]
        #expect(try BrokerJournal.decode(BrokerJournal.encode(changes)) == changes)
        #expect(try BrokerJournal.decode(BrokerJournal.encode([])) == [])
    }

    /// A damaged entry is refused with an error, never read as something else or a crash.
    @Test func aDamagedEntryIsRefused() throws {
        let whole = BrokerJournal.encode([.kept(clientId: "nvr-1", message(1, "reading"))])
        for length in 0..<whole.readableBytes {
            if length == 1 { continue }  // the version byte alone is an empty entry
            #expect(throws: (any Error).self) {
                try BrokerJournal.decode(whole.getSlice(at: whole.readerIndex, length: length)!)
            }
        }
        var unknown = ByteBuffer()
        unknown.writeInteger(UInt8(9))
        #expect(throws: (any Error).self) { try BrokerJournal.decode(unknown) }
        var tag = ByteBuffer()
        tag.writeInteger(BrokerJournal.version)
        tag.writeInteger(UInt8(99))
        #expect(throws: (any Error).self) { try BrokerJournal.decode(tag) }
    }

    /// What was committed only to the journal (the process killed before any checkpoint) is what
    /// the next start reads back, kept and delivered messages netted out.
    @Test(arguments: TestEngine.available)
    func theJournalAloneIsEnoughAfterACrash(_ engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let first = BrokerSessionStore(database: store.telemetry, logger: quiet)
            _ = try await first.load()
            var changes: [MQTTStateChange] = [
                .session(clientId: "nvr-1", username: "nvr", connected: false, at: 1_000, expiry: 60_000),
                .subscribed(clientId: "nvr-1", Subscription(filter: "frigate/#", qos: .atLeastOnce)),
            ]
            for sequence in 1...50 {
                changes.append(.kept(clientId: "nvr-1", message(UInt64(sequence), "m\(sequence)")))
            }
            try await first.save(changes).wait()
            // Delivered in a later group: those rows are in a later journal entry.
            try await first.save((1...20).map { .delivered(clientId: "nvr-1", sequence: UInt64($0)) }).wait()
            try await first.save([.retained(topic: "status/gate", message(0, "open").message)]).wait()
            let rows = try await store.telemetry.read { db in
                try await db.raw("SELECT COUNT(*) AS n FROM mqtt_session_messages").first(decoding: Count.self)?.n
            }
            #expect(rows == 0, "nothing is in the tables before a checkpoint")

            // No idle(): as after kill -9, the next process starts from what is on disk.
            let state = try await BrokerSessionStore(database: store.telemetry, logger: quiet).load()
            let session = try #require(state.sessions.first)
            #expect(state.sessions.count == 1 && session.clientId == "nvr-1")
            #expect(session.subscriptions.map(\.filter) == ["frigate/#"])
            #expect(session.messages.map(\.sequence) == (21...50).map(UInt64.init))
            #expect(session.messages.first.map { String(buffer: $0.message.payload) } == "m21")
            #expect(state.retained.map { String(buffer: $0.payload) } == ["open"])
            let left = try await store.telemetry.read { db in
                try await db.raw("SELECT COUNT(*) AS n FROM mqtt_journal").first(decoding: Count.self)?.n
            }
            #expect(left == 0, "a start checkpoints the whole journal")
        }
    }

    /// The broker's own checkpoint leaves out messages a later entry delivers, and only those:
    /// what is read back, with the journal checkpointed or not, is the same.
    @Test(arguments: TestEngine.available)
    func theCheckpointLeavesOutOnlyWhatALaterEntryDelivers(_ engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let broker = BrokerSessionStore(database: store.telemetry, logger: quiet)
            _ = try await broker.load()
            let kept = BrokerSessionStore.checkpointStep + 500
            var changes: [MQTTStateChange] = [
                .session(clientId: "nvr-1", username: "nvr", connected: false, at: 1, expiry: 60_000)
            ]
            // One entry larger than a checkpoint step, so that the step ends with it and the
            // deliveries are in a later one.
            for sequence in 1...kept { changes.append(.kept(clientId: "nvr-1", message(UInt64(sequence), "m"))) }
            try await broker.save(changes).wait()
            try await broker.save((1...1_000).map { .delivered(clientId: "nvr-1", sequence: UInt64($0)) }).wait()
            try await broker.save([.sessionEnded(clientId: "gone"), .kept(clientId: "nvr-2", message(1, "x"))]).wait()
            // The journal is checkpointed once it is old enough and nothing waits.
            var left = -1
            for _ in 0..<100 where left != 0 {
                try await Task.sleep(for: .milliseconds(100))
                left = try await store.telemetry.read { db in
                    try await db.raw("SELECT COUNT(*) AS n FROM mqtt_journal").first(decoding: Count.self)?.n ?? -1
                }
            }
            #expect(left == 0)
            let state = try await BrokerSessionStore(database: store.telemetry, logger: quiet).load()
            let sequences = state.sessions.first { $0.clientId == "nvr-1" }?.messages.map(\.sequence)
            #expect(sequences == (1_001...kept).map(UInt64.init))
            await broker.idle()
        }
    }

    /// The pages read sessions while the broker writes: a checkpoint from a page and the broker's
    /// own never apply one entry twice, and the page sees every committed change.
    @Test(arguments: TestEngine.available)
    func aPageAndTheBrokerCheckpointTogether(_ engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let broker = BrokerSessionStore(database: store.telemetry, logger: quiet)
            _ = try await broker.load()
            try await broker.save([
                .session(clientId: "meter-reader", username: "good", connected: false, at: 1, expiry: 60_000)
            ]).wait()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for sequence in 1...400 {
                        try await broker.save([.kept(clientId: "meter-reader", message(UInt64(sequence), "r"))]).wait()
                    }
                }
                group.addTask {
                    for _ in 0..<20 {
                        _ = try await BrokerSessionStore.sessions(in: store.telemetry, usernames: ["good"])
                    }
                }
                try await group.waitForAll()
            }
            let seen = try await BrokerSessionStore.sessions(in: store.telemetry, usernames: ["good"])
            #expect(seen.first?.kept == 400)
            await broker.idle()
            let state = try await BrokerSessionStore(database: store.telemetry, logger: quiet).load()
            #expect(state.sessions.first?.messages.map(\.sequence) == (1...400).map(UInt64.init))
        }
    }
}

private struct Count: Decodable {
    var n: Int
}
