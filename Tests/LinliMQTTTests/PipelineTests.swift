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
func withReceivingBroker(_ configuration: MQTTBrokerConfiguration = MQTTBrokerConfiguration(port: 0),
                         receive: @escaping @Sendable (String, Publish) async throws -> PublishCompletion,
                         _ body: @Sendable (Int, MQTTBroker) async throws -> Void) async throws {
    var quiet = Logger(label: "mqtt-test")
    quiet.logLevel = .critical
    let broker = MQTTBroker(configuration: configuration, authenticator: TestAuthenticator(), logger: quiet, receive: receive)
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
                try await publisher.send(.publish(Publish(topic: "t/\(i)", payload: ByteBuffer(string: "\(i)"), qos: .atLeastOnce, packetId: UInt16(i))))
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
            try await client.send(.publish(Publish(topic: "fail", payload: ByteBuffer(), qos: .atLeastOnce, packetId: 2)))
            try? await client.send(.publish(Publish(topic: "ok", payload: ByteBuffer(), qos: .atLeastOnce, packetId: 3)))
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
            try await publisher.send(.publish(Publish(topic: "last/words", payload: ByteBuffer(string: "bye"), qos: .atLeastOnce, packetId: 7)))
            try await publisher.send(.disconnect)
            await gates.open("last/words")
            guard case let .publish(message)? = await subscriber.next() else {
                Issue.record("the message sent before DISCONNECT was not routed")
                return
            }
            #expect(message.topic == "last/words")
        }
    }
}
