import LinliMQTTTesting
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import LinliMQTT

/// Completions that finish only when a test says so, by topic.
actor Gates {
    private var opened: Set<String> = []
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]

    func wait(_ key: String) async {
        if opened.contains(key) { return }
        await withCheckedContinuation { waiting[key, default: []].append($0) }
    }

    func open(_ key: String) {
        opened.insert(key)
        for waiter in waiting.removeValue(forKey: key) ?? [] { waiter.resume() }
    }
}

struct Refused: Error {}

/// A broker whose publish hook is `receive`, for the length of `body`.
func withReceivingBroker(
    _ configuration: MQTTBrokerConfiguration = MQTTBrokerConfiguration(port: 0),
    receive: @escaping @Sendable (String, Publish) async throws -> PublishCompletion,
    _ body: @Sendable (Int, MQTTBroker) async throws -> Void
) async throws {
    var quiet = Logger(label: "mqtt-test")
    quiet.logLevel = .critical
    let broker = MQTTBroker(
        configuration: configuration, authenticator: TestAuthenticator(), logger: quiet, receive: receive)
    let (stream, continuation) = AsyncStream.makeStream(of: MQTTBroker.ListeningPorts.self)
    let server = Task { try await broker.run(onListening: { continuation.yield($0) }) }
    var ports = stream.makeAsyncIterator()
    let bound = try #require(await ports.next())
    defer { server.cancel() }
    try await body(bound.tcp, broker)
}

@Suite("MQTT broker: pipelined acknowledgements")
struct PipelineTests {
    static let accepted = MQTTPacket.connack(sessionPresent: false, returnCode: .accepted)

    @Test func acknowledgementsWaitForTheirCompletionAndKeepArrivalOrder() async throws {
        let gates = Gates()
        let calls = DurableLog()
        try await withReceivingBroker(receive: { _, message in
            calls.append(message.topic)
            let topic = message.topic
            return .after { await gates.wait(topic) }
        }) { port, _ in
            let (subscriber, _) = try await TestClient.connected(port, id: "sub")
            #expect(try await subscriber.subscribe("t/#", qos: .atLeastOnce) == .suback(packetId: 1, returnCodes: [1]))
            let (publisher, ack) = try await TestClient.connected(port, id: "pub")
            #expect(ack == Self.accepted)
            for i in 1...5 {
                try await publisher.send(
                    .publish(
                        Publish(
                            topic: "t/\(i)", payload: ByteBuffer(string: "\(i)"), qos: .atLeastOnce, packetId: UInt16(i)
                        )))
            }
            // The hook saw all five, in order, while none had completed: the connection read on.
            #expect(await eventually { calls.all.count == 5 })
            #expect(calls.all == (1...5).map { "t/\($0)" })
            // Nothing is acknowledged or routed before its completion.
            #expect(await publisher.next(within: .milliseconds(300)) == nil)
            #expect(await subscriber.next(within: .milliseconds(100)) == nil)

            // Completions finish out of order; acknowledgements leave in arrival order all the same.
            await gates.open("t/3")
            await gates.open("t/1")
            #expect(await publisher.next() == .puback(1))
            #expect(await publisher.next(within: .milliseconds(300)) == nil)  // 3 is done but waits for 2
            await gates.open("t/2")
            #expect(await publisher.next() == .puback(2))
            #expect(await publisher.next() == .puback(3))
            await gates.open("t/5")
            await gates.open("t/4")
            #expect(await publisher.next() == .puback(4))
            #expect(await publisher.next() == .puback(5))

            // Routed in the same order.
            for i in 1...5 {
                guard case let .publish(message)? = await subscriber.next() else {
                    Issue.record("message \(i) not relayed")
                    return
                }
                #expect(message.topic == "t/\(i)")
                try await subscriber.send(.puback(message.packetId!))
            }
        }
    }

    @Test func aFailedCompletionClosesTheConnectionWithoutAcknowledgingItOrLaterMessages() async throws {
        try await withReceivingBroker(receive: { _, message in
            message.topic == "fail" ? .after { throw Refused() } : .done
        }) { port, _ in
            let (client, _) = try await TestClient.connected(port, id: "c")
            try await client.send(.publish(Publish(topic: "ok", payload: ByteBuffer(), qos: .atLeastOnce, packetId: 1)))
            #expect(await client.next() == .puback(1))
            try await client.send(
                .publish(Publish(topic: "fail", payload: ByteBuffer(), qos: .atLeastOnce, packetId: 2)))
            try? await client.send(
                .publish(Publish(topic: "ok", payload: ByteBuffer(), qos: .atLeastOnce, packetId: 3)))
            #expect(await client.closedWithin(.seconds(3)))
            var after: [MQTTPacket] = []
            while let packet = await client.next(within: .milliseconds(50)) { after.append(packet) }
            #expect(after.isEmpty)
        }
    }

    @Test func aDisconnectRoutesWhatWasReceivedBeforeIt() async throws {
        let gates = Gates()
        try await withReceivingBroker(receive: { _, message in
            let topic = message.topic
            return .after { await gates.wait(topic) }
        }) { port, _ in
            let (subscriber, _) = try await TestClient.connected(port, id: "sub")
            _ = try await subscriber.subscribe("last/#", qos: .atMostOnce)
            let (publisher, _) = try await TestClient.connected(port, id: "pub")
            try await publisher.send(
                .publish(
                    Publish(topic: "last/words", payload: ByteBuffer(string: "bye"), qos: .atLeastOnce, packetId: 7)))
            try await publisher.send(.disconnect())
            await gates.open("last/words")
            guard case let .publish(message)? = await subscriber.next() else {
                Issue.record("the message sent before DISCONNECT was not routed")
                return
            }
            #expect(message.topic == "last/words")
        }
    }
}

/// Callbacks handed out by `PublishCompletion.whenNotified`, called when a test says so.
final class Notifications: Sendable {
    private let waiting = Mutex<[String: @Sendable ((any Error)?) -> Void]>([:])
    func register(_ key: String, _ done: @escaping @Sendable ((any Error)?) -> Void) {
        waiting.withLock { $0[key] = done }
    }
    func fire(_ key: String, error: (any Error)? = nil) { waiting.withLock { $0.removeValue(forKey: key) }?(error) }
    var keys: Set<String> { waiting.withLock { Set($0.keys) } }
}

@Suite("MQTT broker: the publish hook's fast path")
struct FastPathTests {
    /// Topics under `fast/` are taken on the event loop and complete when notified; `slow/` ones
    /// only through the async hook, which holds them until their gate opens.
    static func broker(calls: DurableLog, notifications: Notifications, gates: Gates) -> MQTTBroker {
        var quiet = Logger(label: "mqtt-test")
        quiet.logLevel = .critical
        @Sendable func notified(_ message: Publish) -> PublishCompletion {
            .whenNotified(
                reply: Publish(topic: message.topic + "_reply", payload: ByteBuffer(string: "ok"), qos: .atMostOnce)
            ) { done in
                notifications.register(message.topic, done)
            }
        }
        return MQTTBroker(
            configuration: MQTTBrokerConfiguration(port: 0), authenticator: TestAuthenticator(), logger: quiet,
            receive: { _, message in
                calls.append("task " + message.topic)
                if message.topic.hasPrefix("fast/") { return notified(message) }
                let topic = message.topic
                return .after { await gates.wait(topic) }
            },
            receiveNow: { _, message in
                guard message.topic.hasPrefix("fast/") else { return nil }
                calls.append("loop " + message.topic)
                return notified(message)
            })
    }

    static func publish(_ topic: String, _ id: UInt16) -> MQTTPacket {
        .publish(Publish(topic: topic, payload: ByteBuffer(string: "x"), qos: .atLeastOnce, packetId: id))
    }

    @Test func messagesBehindASlowOneWaitForItAndAllAreAcknowledgedInOrderAfterTheirReplies() async throws {
        let calls = DurableLog()
        let notifications = Notifications()
        let gates = Gates()
        let broker = Self.broker(calls: calls, notifications: notifications, gates: gates)
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTBroker.ListeningPorts.self)
        let server = Task { try await broker.run(onListening: { continuation.yield($0) }) }
        defer { server.cancel() }
        var ports = stream.makeAsyncIterator()
        let port = try #require(await ports.next()).tcp

        let (client, _) = try await TestClient.connected(port, id: "device")
        // Alone, a fast message is taken on the loop.
        try await client.send(Self.publish("fast/1", 1))
        #expect(await eventually { notifications.keys == ["fast/1"] })
        notifications.fire("fast/1")
        guard case let .publish(reply)? = await client.next() else {
            Issue.record("no reply")
            return
        }
        #expect(reply.topic == "fast/1_reply")
        #expect(await client.next() == .puback(1))

        // Behind a slow one, fast messages follow it through the task, in arrival order.
        try await client.send(Self.publish("slow/2", 2))
        try await client.send(Self.publish("fast/3", 3))
        try await client.send(Self.publish("fast/4", 4))
        #expect(await eventually { notifications.keys == ["fast/3", "fast/4"] })
        #expect(calls.all == ["loop fast/1", "task slow/2", "task fast/3", "task fast/4"])
        // Completions out of order; acknowledgements in arrival order, each after its reply.
        notifications.fire("fast/4")
        notifications.fire("fast/3")
        #expect(await client.next(within: .milliseconds(300)) == nil)  // all wait for slow/2
        await gates.open("slow/2")
        var after: [String] = []
        while after.count < 5, let packet = await client.next() {
            switch packet {
            case let .publish(m): after.append(m.topic)
            case let .puback(id, _, _): after.append("puback \(id)")
            default: after.append("\(packet)")
            }
        }
        #expect(after == ["puback 2", "fast/3_reply", "puback 3", "fast/4_reply", "puback 4"])

        // Once nothing is with the task, the loop takes fast messages again.
        try await client.send(Self.publish("fast/5", 5))
        #expect(await eventually { notifications.keys == ["fast/5"] })
        #expect(calls.all.last == "loop fast/5")
        // A failed completion closes the connection without its acknowledgement.
        notifications.fire("fast/5", error: Refused())
        #expect(await client.closedWithin(.seconds(3)))
        #expect(await client.next(within: .milliseconds(50)) == nil)
    }
}

/// Shared work a test finishes by name: counts how many times the broker asked to be told.
final class SharedWork: SharedCompletion, Sendable {
    let name: String
    /// The callbacks handed in, and the outcome once finished (later callbacks are called at once).
    private let state = Mutex<
        (callbacks: [@Sendable ((any Error)?) -> Void], registrations: Int, outcome: Result<Void, Refused>?)
    >(([], 0, nil))
    init(_ name: String) { self.name = name }
    var id: ObjectIdentifier { ObjectIdentifier(self) }
    var registrations: Int { state.withLock { $0.registrations } }
    func whenDone(_ done: @escaping @Sendable ((any Error)?) -> Void) {
        let outcome = state.withLock { s -> Result<Void, Refused>? in
            s.registrations += 1
            if s.outcome == nil { s.callbacks.append(done) }
            return s.outcome
        }
        if case let .failure(error)? = outcome { done(error) } else if outcome != nil { done(nil) }
    }
    func finish(error: Refused? = nil) {
        let callbacks = state.withLock { s in
            s.outcome = error.map { .failure($0) } ?? .success(())
            defer { s.callbacks = [] }
            return s.callbacks
        }
        for done in callbacks { done(error) }
    }
}

final class Works: Sendable {
    private let all = Mutex<[String: SharedWork]>([:])
    func named(_ name: String) -> SharedWork {
        all.withLock { all in
            if let w = all[name] { return w }
            let made = SharedWork(name)
            all[name] = made
            return made
        }
    }
}

@Suite("MQTT broker: completions shared by many messages")
struct SharedCompletionTests {
    @Test func manyMessagesWaitOnceForTheirSharedWorkAndAllAreAcknowledged() async throws {
        let works = Works()
        @Sendable func work(_ name: String) -> SharedWork { works.named(name) }
        var quiet = Logger(label: "mqtt-test")
        quiet.logLevel = .critical
        // `batch/N/…` messages finish together when work N does.
        let broker = MQTTBroker(
            configuration: MQTTBrokerConfiguration(port: 0), authenticator: TestAuthenticator(), logger: quiet,
            receive: { _, _ in .done },
            receiveNow: { _, message in
                let batch = String(message.topic.split(separator: "/")[1])
                return .whenDone(
                    of: work(batch),
                    reply: Publish(topic: message.topic + "_reply", payload: ByteBuffer(string: "ok"), qos: .atMostOnce)
                )
            })
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTBroker.ListeningPorts.self)
        let server = Task { try await broker.run(onListening: { continuation.yield($0) }) }
        defer { server.cancel() }
        var ports = stream.makeAsyncIterator()
        let port = try #require(await ports.next()).tcp

        var clients: [TestClient] = []
        for i in 0..<4 { clients.append(try await TestClient.connected(port, id: "device-\(i)").0) }
        for (i, client) in clients.enumerated() {
            for k in 1...3 { try await client.send(FastPathTests.publish("batch/1/\(i)", UInt16(k))) }
        }
        // Twelve messages on at most two event loops: asked once per loop, not once per message.
        let first = work("1")
        #expect(await eventually { (1...2).contains(first.registrations) })
        try await Task.sleep(for: .milliseconds(100))
        #expect(first.registrations <= 2)
        for client in clients { #expect(await client.next(within: .milliseconds(50)) == nil) }
        first.finish()
        for (i, client) in clients.enumerated() {
            var seen: [String] = []
            while seen.count < 6, let packet = await client.next() {
                switch packet {
                case let .publish(m): seen.append(m.topic)
                case let .puback(id, _, _): seen.append("puback \(id)")
                default: seen.append("\(packet)")
                }
            }
            let reply = "batch/1/\(i)_reply"
            #expect(seen == [reply, "puback 1", reply, "puback 2", reply, "puback 3"])
        }

        // Work that fails closes every connection waiting for it, without acknowledging.
        try await clients[0].send(FastPathTests.publish("batch/2/0", 4))
        try await clients[1].send(FastPathTests.publish("batch/2/1", 4))
        try await clients[2].send(FastPathTests.publish("batch/3/2", 4))
        #expect(await eventually { work("2").registrations >= 1 && work("3").registrations == 1 })
        work("2").finish(error: Refused())
        #expect(await clients[0].closedWithin(.seconds(3)))
        #expect(await clients[1].closedWithin(.seconds(3)))
        // Other work is not touched: its message is acknowledged once it is done.
        work("3").finish()
        #expect(await clients[2].next() != nil)  // the reply
        #expect(await clients[2].next() == .puback(4))
    }
}
