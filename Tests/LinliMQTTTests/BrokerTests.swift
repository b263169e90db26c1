import LinliMQTTTesting
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import Testing

@testable import LinliMQTT

/// Accepts user "good"/"pw" with full rights, "limited"/"pw" with its own topics only, and
/// "secure"/"pw" with full rights over TLS only.
struct TestAuthenticator: MQTTAuthenticator {
    func authenticate(_ connect: Connect, connection: MQTTConnectionInfo) async -> MQTTAuthentication {
        guard let user = connect.username else { return .refused(.notAuthorized) }
        guard connect.password.map({ String(buffer: $0) }) == "pw" else { return .refused(.badUsernameOrPassword) }
        switch user {
        case "good": return .accepted(TopicPolicy(publish: ["#", "$SYS/#"], subscribe: ["#", "$SYS/#"]))
        case "limited": return .accepted(TopicPolicy(publish: ["devices/limited/#"], subscribe: ["devices/limited/#"]))
        case "secure" where connection.secure: return .accepted(TopicPolicy(publish: ["#"], subscribe: ["#"]))
        default: return .refused(.notAuthorized)
        }
    }
}

/// Records the messages the broker asked to make durable, in order.
final class DurableLog: Sendable {
    let entries = Mutex<[String]>([])
    func append(_ topic: String) { entries.withLock { $0.append(topic) } }
    var all: [String] { entries.withLock { $0 } }
}

func withBroker(
    _ configuration: MQTTBrokerConfiguration = MQTTBrokerConfiguration(port: 0), durable: DurableLog = DurableLog(),
    presence: DurableLog = DurableLog(),
    _ body: @Sendable (Int, MQTTBroker) async throws -> Void
) async throws {
    try await withBrokerPorts(configuration, durable: durable, presence: presence) { ports, broker in
        try await body(ports.tcp, broker)
    }
}

/// The same, with every bound port (the TLS one too) and an optional logger to inspect.
func withBrokerPorts(
    _ configuration: MQTTBrokerConfiguration, durable: DurableLog = DurableLog(), presence: DurableLog = DurableLog(),
    logger: Logger? = nil,
    _ body: @Sendable (MQTTBroker.ListeningPorts, MQTTBroker) async throws -> Void
) async throws {
    var quiet = Logger(label: "mqtt-test")
    quiet.logLevel = .critical
    let broker = MQTTBroker(
        configuration: configuration, authenticator: TestAuthenticator(), logger: logger ?? quiet,
        onPublish: { _, message in if message.qos != .atMostOnce { durable.append(message.topic) } },
        onPresence: { clientId, connected in presence.append(clientId + (connected ? " on" : " off")) })
    let (stream, continuation) = AsyncStream.makeStream(of: MQTTBroker.ListeningPorts.self)
    let server = Task { try await broker.run(onListening: { continuation.yield($0) }) }
    var ports = stream.makeAsyncIterator()
    let bound = try #require(await ports.next())
    defer { server.cancel() }
    try await body(bound, broker)
}

@Suite("MQTT broker over real sockets")
struct BrokerTests {
    @Test func connectsAuthenticatesAndRefuses() async throws {
        try await withBroker { port, _ in
            let (ok, ack) = try await TestClient.connected(port, id: "a")
            #expect(ack == .connack(sessionPresent: false, returnCode: .accepted))
            let (_, wrong) = try await TestClient.connected(port, id: "b", user: "nobody")
            #expect(wrong == .connack(sessionPresent: false, returnCode: .notAuthorized))
            let anonymous = try await TestClient(port: port)
            try await anonymous.send(.connect(Connect(cleanSession: true, keepAlive: 10, clientId: "c")))
            #expect(await anonymous.next() == .connack(sessionPresent: false, returnCode: .notAuthorized))
            let persistentNoId = try await TestClient(port: port)
            try await persistentNoId.send(
                .connect(
                    Connect(
                        cleanSession: false, keepAlive: 10, clientId: "", username: "good",
                        password: ByteBuffer(string: "pw"))))
            #expect(await persistentNoId.next() == .connack(sessionPresent: false, returnCode: .identifierRejected))
            try await ok.send(.pingreq)
            #expect(await ok.next() == .pingresp)
        }
    }

    @Test func publishesReachSubscribersOnceAtTheHighestQoS() async throws {
        let durable = DurableLog()
        try await withBroker(durable: durable) { port, _ in
            let (sub, _) = try await TestClient.connected(port, id: "sub")
            try await sub.send(
                .subscribe(
                    packetId: 1,
                    subscriptions: [
                        Subscription(filter: "home/+/temp", qos: .atMostOnce),
                        Subscription(filter: "home/#", qos: .atLeastOnce),
                    ]))
            #expect(await sub.next() == .suback(packetId: 1, returnCodes: [0, 1]))
            let (pub, _) = try await TestClient.connected(port, id: "pub")
            try await pub.send(
                .publish(
                    Publish(
                        topic: "home/kitchen/temp", payload: ByteBuffer(string: "21.5"), qos: .atLeastOnce, packetId: 10
                    )))
            #expect(await pub.next() == .puback(10))
            #expect(durable.all == ["home/kitchen/temp"], "made durable before it was acknowledged")
            guard case let .publish(got)? = await sub.next() else {
                Issue.record("no delivery")
                return
            }
            #expect(
                got.topic == "home/kitchen/temp" && String(buffer: got.payload) == "21.5" && got.qos == .atLeastOnce
                    && !got.retain)
            try await sub.send(.puback(got.packetId!))
            #expect(await sub.next(within: .milliseconds(300)) == nil, "overlapping subscriptions deliver once")
            // QoS 0 publish is delivered at QoS 0 whatever the subscription.
            try await pub.send(.publish(Publish(topic: "home/hall/temp", payload: ByteBuffer(string: "19"))))
            guard case let .publish(zero)? = await sub.next() else {
                Issue.record("no QoS 0 delivery")
                return
            }
            #expect(zero.qos == .atMostOnce && zero.packetId == nil)
            try await sub.send(.unsubscribe(packetId: 2, filters: ["home/#", "home/+/temp"]))
            #expect(await sub.next() == .unsuback(2))
            try await pub.send(.publish(Publish(topic: "home/hall/temp", payload: ByteBuffer(string: "19"))))
            #expect(await sub.next(within: .milliseconds(300)) == nil)
        }
    }

    @Test func retainedMessagesAndDollarTopics() async throws {
        try await withBroker { port, _ in
            let (pub, _) = try await TestClient.connected(port, id: "pub")
            try await pub.send(
                .publish(
                    Publish(
                        topic: "gate/1/state", payload: ByteBuffer(string: "closed"), qos: .atLeastOnce, retain: true,
                        packetId: 1)))
            #expect(await pub.next() == .puback(1))
            try await pub.send(.publish(Publish(topic: "$SYS/uptime", payload: ByteBuffer(string: "5"), retain: true)))
            let (sub, _) = try await TestClient.connected(port, id: "sub")
            #expect(try await sub.subscribe("#", qos: .atLeastOnce) == .suback(packetId: 1, returnCodes: [1]))
            guard case let .publish(retained)? = await sub.next() else {
                Issue.record("no retained message")
                return
            }
            #expect(retained.topic == "gate/1/state" && retained.retain)
            try await sub.send(.puback(retained.packetId!))
            #expect(await sub.next(within: .milliseconds(300)) == nil, "# does not match $SYS topics")
            // An empty retained payload clears the retained message.
            try await pub.send(.publish(Publish(topic: "gate/1/state", payload: ByteBuffer(), retain: true)))
            _ = await sub.next()
            let (late, _) = try await TestClient.connected(port, id: "late")
            _ = try await late.subscribe("gate/#", qos: .atMostOnce)
            #expect(await late.next(within: .milliseconds(300)) == nil)
            let (system, _) = try await TestClient.connected(port, id: "sys")
            _ = try await system.subscribe("$SYS/#", qos: .atMostOnce)
            guard case let .publish(uptime)? = await system.next() else {
                Issue.record("no $SYS message")
                return
            }
            #expect(uptime.topic == "$SYS/uptime")
        }
    }

    @Test func exactlyOnceBothWaysWithoutDuplicates() async throws {
        try await withBroker { port, _ in
            let (sub, _) = try await TestClient.connected(port, id: "sub")
            _ = try await sub.subscribe("alarm/#", qos: .exactlyOnce)
            let (pub, _) = try await TestClient.connected(port, id: "pub")
            let message = Publish(
                topic: "alarm/smoke", payload: ByteBuffer(string: "!"), qos: .exactlyOnce, packetId: 5)
            try await pub.send(.publish(message))
            #expect(await pub.next() == .pubrec(5))
            var again = message
            again.dup = true
            try await pub.send(.publish(again))
            #expect(await pub.next() == .pubrec(5))
            try await pub.send(.pubrel(5))
            #expect(await pub.next() == .pubcomp(5))
            guard case let .publish(got)? = await sub.next() else {
                Issue.record("no delivery")
                return
            }
            #expect(got.qos == .exactlyOnce)
            #expect(await sub.next(within: .milliseconds(300)) == nil, "a repeated packet id is delivered once")
            try await sub.send(.pubrec(got.packetId!))
            #expect(await sub.next() == .pubrel(got.packetId!))
            try await sub.send(.pubcomp(got.packetId!))
        }
    }

    /// Messages to a client keep their order (MQTT-4.6.0-6) whatever its acknowledgements do:
    /// one published while others wait for room is queued behind them.
    @Test func messagesToAClientKeepTheirOrderWhileOthersWaitForRoom() async throws {
        try await withBroker(MQTTBrokerConfiguration(port: 0, inflightWindow: 2)) { port, _ in
            let (sub, _) = try await TestClient.connected(port, id: "sub")
            _ = try await sub.subscribe("order/#", qos: .exactlyOnce)
            let (pub, _) = try await TestClient.connected(port, id: "pub")
            func publish(_ i: Int) async throws {
                let id = UInt16(i)
                try await pub.send(
                    .publish(
                        Publish(topic: "order/x", payload: ByteBuffer(string: "\(i)"), qos: .exactlyOnce, packetId: id))
                )
                #expect(await pub.next() == .pubrec(id))
                try await pub.send(.pubrel(id))
                #expect(await pub.next() == .pubcomp(id))
            }
            for i in 1...4 { try await publish(i) }
            var got: [String] = []
            var ids: [UInt16] = []
            for _ in 1...2 {
                guard case let .publish(m)? = await sub.next() else {
                    Issue.record("fewer than the window")
                    return
                }
                got.append(String(buffer: m.payload))
                ids.append(m.packetId!)
            }
            #expect(await sub.next(within: .milliseconds(300)) == nil, "3 and 4 wait for room")
            // PUBREC for the first: its PUBREL comes, and it keeps its room until PUBCOMP.
            try await sub.send(.pubrec(ids[0]))
            #expect(await sub.next() == .pubrel(ids[0]))
            try await publish(5)
            #expect(await sub.next(within: .milliseconds(300)) == nil, "5 waits behind 3 and 4")
            try await sub.send(.pubcomp(ids[0]))
            try await sub.send(.pubrec(ids[1]))
            while got.count < 5, let packet = await sub.next() {
                switch packet {
                case let .publish(m):
                    got.append(String(buffer: m.payload))
                    try await sub.send(.pubrec(m.packetId!))
                case let .pubrel(id, _, _):
                    try await sub.send(.pubcomp(id))
                default:
                    Issue.record("unexpected \(packet)")
                }
            }
            #expect(got == ["1", "2", "3", "4", "5"])
        }
    }

    /// A reconnecting client gets its unacknowledged messages in the order they were sent, also
    /// when their packet ids wrapped past 65535 in between. Packet ids follow from the messages'
    /// numbers, so a kept message has the same id after a restart.
    @Test func redeliveryKeepsTheOrderOfSendingAcrossPacketIdWrap() {
        var session = Session(clientId: "c", expiryMillis: 1_000, window: 64)
        session.nextSequence = 65_532
        let sent = (1...5).map { n -> UInt16 in
            let sequence = session.number()
            return session.send(
                Publish(topic: "t", payload: ByteBuffer(string: "\(n)"), qos: .exactlyOnce), sequence: sequence
            ).packetId!
        }
        #expect(sent == [65_533, 65_534, 65_535, 1, 2])
        #expect(Session.packetId(for: 65_532 + 65_535) == 65_533, "ids repeat every 65,535 messages")
        // PUBRECs for 1 and then 65533: those two wait for PUBCOMP, released in that order.
        for id: UInt16 in [1, 65_533] {
            let released = session.release(id)
            #expect(released != nil)
        }
        #expect(session.release(1) == nil, "released once")
        #expect(
            session.redelivery().map { packet -> String in
                switch packet {
                case let .publish(m): "\(String(buffer: m.payload))\(m.dup ? "+dup" : "")"
                case let .pubrel(id, _, _): "rel \(id)"
                default: "\(packet)"
                }
            } == ["2+dup", "3+dup", "5+dup", "rel 1", "rel 65533"])
        // An old message still in flight holds its id: the message 65,535 later waits for it.
        session.queued.append((65_532 + 65_535 + 1, Publish(topic: "t", payload: ByteBuffer(), qos: .atLeastOnce)))
        #expect(!session.mayDrain())
        _ = session.complete(65_534)
        #expect(session.mayDrain())
    }

    /// A session's queue gives its messages back oldest first, across the moments it compacts.
    @Test func aSessionQueueKeepsItsOrderAsItIsTakenFrom() {
        var queue = MessageQueue()
        #expect(queue.isEmpty && queue.first == nil)
        for n in 0..<3_000 { queue.append((UInt64(n), Publish(topic: "t", payload: ByteBuffer()))) }
        var taken: [UInt64] = []
        for _ in 0..<2_500 { taken.append(queue.removeFirst().sequence) }
        #expect(taken == (0..<2_500).map { UInt64($0) })
        #expect(queue.count == 500 && queue.first?.sequence == 2_500)
        queue.append((3_000, Publish(topic: "t", payload: ByteBuffer())))
        var rest: [UInt64] = []
        while !queue.isEmpty { rest.append(queue.removeFirst().sequence) }
        #expect(rest == (2_500...3_000).map { UInt64($0) })
    }

    /// A stopping broker closes its connections and returns only once their sign-outs are
    /// recorded: the database closes after it.
    @Test func stoppingWaitsForSignOutsToBeRecorded() async throws {
        var quiet = Logger(label: "mqtt-test")
        quiet.logLevel = .critical
        let presence = DurableLog()
        let broker = MQTTBroker(
            configuration: MQTTBrokerConfiguration(port: 0), authenticator: TestAuthenticator(), logger: quiet,
            onPresence: { clientId, connected in
                if !connected { try? await Task.sleep(for: .milliseconds(300)) }  // a slow database
                presence.append(clientId + (connected ? " on" : " off"))
            })
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTBroker.ListeningPorts.self)
        let server = Task { try await broker.run(onListening: { continuation.yield($0) }) }
        var ports = stream.makeAsyncIterator()
        let bound = try #require(await ports.next())
        let (client, _) = try await TestClient.connected(bound.tcp, id: "meter")
        while !presence.all.contains("meter on") { try await Task.sleep(for: .milliseconds(10)) }
        server.cancel()
        _ = try? await server.value
        #expect(presence.all == ["meter on", "meter off"], "the sign-out was recorded before run returned")
        #expect(await client.closedWithin(.seconds(2)))
    }

    @Test func willsArePublishedOnlyOnAbruptEnds() async throws {
        try await withBroker { port, _ in
            let (watcher, _) = try await TestClient.connected(port, id: "watcher")
            _ = try await watcher.subscribe("status/#", qos: .atMostOnce)
            let will = Will(
                topic: "status/door", payload: ByteBuffer(string: "offline"), qos: .atMostOnce, retain: false)
            let (polite, _) = try await TestClient.connected(port, id: "polite", will: will)
            try await polite.send(.disconnect())
            #expect(await watcher.next(within: .milliseconds(400)) == nil)
            let (rude, _) = try await TestClient.connected(port, id: "rude", will: will)
            rude.close()
            guard case let .publish(got)? = await watcher.next() else {
                Issue.record("no will")
                return
            }
            #expect(got.topic == "status/door" && String(buffer: got.payload) == "offline")
        }
    }

    @Test func persistentSessionsKeepMessagesWhileAway() async throws {
        try await withBroker { port, _ in
            let (first, ack) = try await TestClient.connected(port, id: "meter-7", clean: false)
            #expect(ack == .connack(sessionPresent: false, returnCode: .accepted))
            _ = try await first.subscribe("cmd/meter-7", qos: .atLeastOnce)
            try await first.send(.disconnect())
            _ = await first.closedWithin(.seconds(2))
            let (pub, _) = try await TestClient.connected(port, id: "platform")
            for i in 1...3 {
                try await pub.send(
                    .publish(
                        Publish(
                            topic: "cmd/meter-7", payload: ByteBuffer(string: "read \(i)"), qos: .atLeastOnce,
                            packetId: UInt16(i))))
                _ = await pub.next()
            }
            let (back, again) = try await TestClient.connected(port, id: "meter-7", clean: false)
            #expect(again == .connack(sessionPresent: true, returnCode: .accepted))
            var payloads: [String] = []
            for _ in 1...3 {
                guard case let .publish(m)? = await back.next() else { break }
                payloads.append(String(buffer: m.payload))
                try await back.send(.puback(m.packetId!))
            }
            #expect(payloads == ["read 1", "read 2", "read 3"])
            // A clean session starts empty and forgets what was there.
            let (clean, fresh) = try await TestClient.connected(port, id: "meter-7", clean: true)
            #expect(fresh == .connack(sessionPresent: false, returnCode: .accepted))
            try await pub.send(
                .publish(
                    Publish(topic: "cmd/meter-7", payload: ByteBuffer(string: "lost"), qos: .atLeastOnce, packetId: 9)))
            #expect(await clean.next(within: .milliseconds(300)) == nil)
        }
    }

    @Test func aNewConnectionWithTheSameIdTakesTheSessionOver() async throws {
        let presence = DurableLog()
        try await withBroker(presence: presence) { port, broker in
            let (old, _) = try await TestClient.connected(port, id: "gate-1")
            let (new, ack) = try await TestClient.connected(port, id: "gate-1")
            #expect(ack == .connack(sessionPresent: false, returnCode: .accepted))
            #expect(await old.closedWithin(.seconds(3)))
            try await new.send(.pingreq)
            #expect(await new.next() == .pingresp)
            #expect(await broker.connectionCount == 1)
            #expect(
                presence.all == ["gate-1 on", "gate-1 on"], "the superseded connection does not report the client gone")
        }
    }

    @Test func silentAndMisbehavingClientsAreClosedAndOthersCarryOn() async throws {
        // The CONNECT deadline is 2 s, not less: under a loaded parallel test run, a well-behaved
        // client here has taken over half a second from its TCP connection to its CONNECT.
        try await withBroker(MQTTBrokerConfiguration(port: 0, connectTimeout: .seconds(2), maxPublishesPerSecond: 20)) {
            port, _ in
            let (healthy, _) = try await TestClient.connected(port, id: "healthy")
            // Keep-alive 1 s: closed after 1.5 s of silence.
            let (sleepy, _) = try await TestClient.connected(port, id: "sleepy", keepAlive: 1)
            #expect(await sleepy.closedWithin(.seconds(4)))
            // Never sends CONNECT.
            let mute = try await TestClient(port: port)
            #expect(await mute.closedWithin(.seconds(6)))
            // Sends something other than CONNECT first.
            let rude = try await TestClient(port: port)
            try await rude.send(.pingreq)
            #expect(await rude.closedWithin(.seconds(3)))
            // Garbage bytes after connecting, on a raw socket.
            #expect(
                try await RawClient.closesAfter(
                    port: port,
                    [
                        Array(
                            Wire.bytes(
                                .connect(
                                    Connect(
                                        cleanSession: true, keepAlive: 5, clientId: "garbage", username: "good",
                                        password: ByteBuffer(string: "pw")))
                            ).readableBytesView),
                        [0xF0, 0x00, 0xFF, 0xFF],
                    ]))
            // MQTT-3.1.2-2: a protocol level it does not speak gets CONNACK 1, then the close (an
            // MQTT 6 client would learn to fall back); an unknown protocol name is just closed.
            for level: UInt8 in [3, 6] {
                #expect(
                    try await RawClient.answerBeforeClose(port: port, RawClient.connect(protocol: "MQTT", level: level))
                        == [0x20, 0x02, 0x00, 0x01], "level \(level)")
            }
            #expect(
                try await RawClient.answerBeforeClose(port: port, RawClient.connect(protocol: "MQIsdp", level: 4)) == [
                    0x20, 0x02, 0x00, 0x01,
                ])
            #expect(
                try await RawClient.answerBeforeClose(port: port, RawClient.connect(protocol: "MQTX", level: 4)) == [])
            // A remaining length that claims more than the broker accepts.
            #expect(try await RawClient.closesAfter(port: port, [[0x10, 0xFF, 0xFF, 0xFF, 0x7F]]))
            // A second CONNECT.
            let (twice, _) = try await TestClient.connected(port, id: "twice")
            try await twice.send(.connect(Connect(cleanSession: true, keepAlive: 5, clientId: "twice")))
            #expect(await twice.closedWithin(.seconds(3)))
            // Publishing to a topic it may not use.
            let (limited, _) = try await TestClient.connected(port, id: "limited-1", user: "limited")
            #expect(
                try await limited.subscribe("devices/other/#", qos: .atMostOnce)
                    == .suback(packetId: 1, returnCodes: [MQTTPacket.subackFailure]))
            #expect(
                try await limited.subscribe("devices/limited/cmd", qos: .atMostOnce)
                    == .suback(packetId: 1, returnCodes: [0]))
            try await limited.send(.publish(Publish(topic: "devices/other/x", payload: ByteBuffer())))
            #expect(await limited.closedWithin(.seconds(3)))
            // Flooding above the publish rate.
            let (flood, _) = try await TestClient.connected(port, id: "flood")
            for _ in 0..<100 { try? await flood.send(.publish(Publish(topic: "x", payload: ByteBuffer()))) }
            #expect(await flood.closedWithin(.seconds(3)))
            // QoS 2 ids that are never released.
            let (hoarder, _) = try await TestClient.connected(port, id: "hoarder")
            for i in 1...70 {
                try? await hoarder.send(
                    .publish(Publish(topic: "y", payload: ByteBuffer(), qos: .exactlyOnce, packetId: UInt16(i))))
            }
            #expect(await hoarder.closedWithin(.seconds(3)))
            // Through all of it the healthy client is served.
            try await healthy.send(.pingreq)
            #expect(await healthy.next() == .pingresp)
        }
    }
}

/// Bytes straight onto a socket, for input no well-behaved client would send.
enum RawClient {
    /// Sends the bytes and returns everything the broker answered before it closed the
    /// connection; nil when it did not close within 3 s.
    static func answerBeforeClose(port: Int, _ bytes: [UInt8]) async throws -> [UInt8]? {
        try await afterSending(port: port, [bytes])
    }

    /// Sends each chunk, then reports whether the broker closed the connection within 3 s.
    static func closesAfter(port: Int, _ chunks: [[UInt8]]) async throws -> Bool {
        try await afterSending(port: port, chunks) != nil
    }

    /// Sends each chunk a moment after the last (long enough for a CONNACK, also on a loaded
    /// machine), and returns everything the broker answered before it closed; nil when it did not
    /// close within 3 s.
    static func answerBeforeClose(port: Int, paced chunks: [[UInt8]]) async throws -> [UInt8]? {
        try await afterSending(port: port, chunks, pause: .seconds(1))
    }

    /// A CONNECT with the given protocol name and level, clean session, client id "x".
    static func connect(protocol name: String, level: UInt8) -> [UInt8] {
        let body: [UInt8] =
            [0, UInt8(name.utf8.count)] + Array(name.utf8) + [level, 0x02, 0, 60, 0, 1, UInt8(ascii: "x")]
        return [0x10, UInt8(body.count)] + body
    }

    /// What the broker answered before closing after the chunks; nil when it did not close within 3 s.
    private static func afterSending(port: Int, _ chunks: [[UInt8]], pause: Duration? = nil) async throws -> [UInt8]? {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            do {
                for (index, chunk) in chunks.enumerated() {
                    if let pause, index > 0 { try await Task.sleep(for: pause) }
                    try await outbound.write(ByteBuffer(bytes: chunk))
                }
            } catch {
                // Closed before everything was written: on a loaded machine the broker's connect
                // timeout can fire before the first bytes arrive. Closed is what is asked.
                return []
            }
            return try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
                group.addTask {
                    var answer: [UInt8] = []
                    do { for try await chunk in inbound { answer += chunk.readableBytesView } } catch {}
                    return answer
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(3))
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                return first
            }
        }
    }
}

@Suite("Turn gate")
struct TurnGateTests {
    /// At most `limit` inside at once; the others go in the order they came as places free up.
    @Test func letsALimitedNumberInAndTheRestInTurn() async throws {
        let gate = TurnGate(limit: 2)
        let order = DurableLog()
        await gate.enter()
        await gate.enter()
        var waiting: [Task<Void, Never>] = []
        for i in 1...3 {
            waiting.append(
                Task {
                    await gate.enter()
                    order.append("\(i)")
                })
            // The next comes only once this one waits, so the order they came in is known.
            while gate.waiting < i { try await Task.sleep(for: .milliseconds(2)) }
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(order.all.isEmpty, "nobody passes while both places are taken")
        gate.leave()
        await waiting[0].value
        #expect(order.all == ["1"] && gate.waiting == 2, "one place freed, one waiter in")
        gate.leave()
        gate.leave()
        for task in waiting { await task.value }
        #expect(order.all == ["1", "2", "3"] && gate.waiting == 0)
        // Two inside now (each leave let one in): when they leave, both places are free again.
        gate.leave()
        gate.leave()
        await gate.enter()
        await gate.enter()
        #expect(gate.waiting == 0)
    }

    /// Submitted work waits its turn among callers, runs in a task of its own, and frees its place.
    @Test func submittedWorkTakesItsTurnAndGivesItBack() async throws {
        let gate = TurnGate(limit: 1)
        let order = DurableLog()
        await gate.enter()
        gate.submit { order.append("work 1") }
        let caller = Task {
            await gate.enter()
            order.append("caller")
            gate.leave()
        }
        while gate.waiting < 2 { try await Task.sleep(for: .milliseconds(2)) }
        gate.submit { order.append("work 2") }
        try await Task.sleep(for: .milliseconds(50))
        #expect(order.all.isEmpty, "nothing runs while the place is taken")
        gate.leave()
        await caller.value
        let deadline = ContinuousClock.now + .seconds(5)
        while order.all.count < 3, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
        #expect(order.all == ["work 1", "caller", "work 2"])
        // The last work gave its place back: it can be taken at once.
        await gate.enter()
        #expect(gate.waiting == 0)
    }
}
