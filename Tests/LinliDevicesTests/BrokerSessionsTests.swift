import Foundation
import LinliBrokerStore
import LinliDevices
import LinliMQTTTesting
import LinliStorage
import LinliTestSupport
import Logging
import NIOCore
import Synchronization
import Testing

/// Lets user "good" with password "pw" do anything.
private struct Everyone: MQTTAuthenticator {
    func authenticate(_ connect: Connect, connection: MQTTConnectionInfo) async -> MQTTAuthentication {
        connect.username == "good" && connect.password.map({ String(buffer: $0) }) == "pw"
            ? .accepted(TopicPolicy(publish: ["#"], subscribe: ["#"])) : .refused(.notAuthorized)
    }
}

/// One run of a broker over a store's database: started, then stopped as a restart would stop it.
private final class BrokerRun: Sendable {
    let broker: MQTTBroker
    let sessions: BrokerSessionStore
    let port: Int
    private let task: Task<Void, any Error>

    init(_ store: Store, _ configuration: MQTTBrokerConfiguration = MQTTBrokerConfiguration(port: 0)) async throws {
        var quiet = Logger(label: "broker-sessions-test")
        quiet.logLevel = .critical
        sessions = BrokerSessionStore(database: store.telemetry, logger: quiet)
        broker = MQTTBroker(
            configuration: configuration, authenticator: Everyone(), logger: quiet, sessionStore: sessions)
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTBroker.ListeningPorts.self)
        task = Task { [broker] in try await broker.run(onListening: { continuation.yield($0) }) }
        var ports = stream.makeAsyncIterator()
        port = try #require(await ports.next()).tcp
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
        await sessions.idle()
    }
}

private func publish(_ topic: String, _ text: String, qos: QoS, id: UInt16? = nil, retain: Bool = false) -> MQTTPacket {
    .publish(Publish(topic: topic, payload: ByteBuffer(string: text), qos: qos, retain: retain, packetId: id))
}

@Suite("The broker's persistent sessions and retained messages in the database")
struct BrokerSessionsTests {
    @Test(arguments: TestEngine.available)
    func queuedMessagesAndRetainedOnesOutliveARestart(_ engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let first = try await BrokerRun(store)
            let (away, ack) = try await TestClient.connected(first.port, id: "nvr-consumer", clean: false)
            #expect(ack == .connack(sessionPresent: false, returnCode: .accepted))
            #expect(try await away.subscribe("frigate/#", qos: .atLeastOnce) == .suback(packetId: 1, returnCodes: [1]))
            try await away.send(.disconnect())
            #expect(await away.closedWithin(.seconds(2)))
            let (publisher, _) = try await TestClient.connected(first.port, id: "nvr")
            for i in 1...100 {
                try await publisher.send(publish("frigate/events", "event \(i)", qos: .atLeastOnce, id: UInt16(i)))
                #expect(await publisher.next() == .puback(UInt16(i)))
            }
            try await publisher.send(publish("frigate/available", "online", qos: .atLeastOnce, id: 101, retain: true))
            #expect(await publisher.next() == .puback(101))
            await first.stop()

            let second = try await BrokerRun(store)
            defer { Task { await second.stop() } }
            let (back, again) = try await TestClient.connected(second.port, id: "nvr-consumer", clean: false)
            #expect(again == .connack(sessionPresent: true, returnCode: .accepted))
            var got: [String] = []
            while got.count < 101, case let .publish(m)? = await back.next() {
                got.append(String(buffer: m.payload))
                try await back.send(.puback(m.packetId!))
            }
            #expect(got == (1...100).map { "event \($0)" } + ["online"], "all of them, in order, then the retained one")
            // A newcomer gets the retained message, flagged as retained.
            let (newcomer, _) = try await TestClient.connected(second.port, id: "dashboard")
            #expect(
                try await newcomer.subscribe("frigate/available", qos: .atLeastOnce)
                    == .suback(packetId: 1, returnCodes: [1]))
            guard case let .publish(retained)? = await newcomer.next() else {
                Issue.record("no retained message after the restart")
                return
            }
            #expect(String(buffer: retained.payload) == "online" && retained.retain)
            // What was acknowledged is not delivered again after the next restart.
            try await back.send(.disconnect())
            #expect(await back.closedWithin(.seconds(2)))
            await second.stop()
            let third = try await BrokerRun(store)
            let (once, present) = try await TestClient.connected(third.port, id: "nvr-consumer", clean: false)
            #expect(present == .connack(sessionPresent: true, returnCode: .accepted))
            #expect(await once.next(within: .milliseconds(500)) == nil)
            // A clean start forgets the session, also for the next run.
            let (clean, fresh) = try await TestClient.connected(third.port, id: "nvr-consumer", clean: true)
            #expect(fresh == .connack(sessionPresent: false, returnCode: .accepted))
            try await clean.send(.disconnect())
            #expect(await clean.closedWithin(.seconds(2)))
            await third.stop()
            let fourth = try await BrokerRun(store)
            let (gone, none) = try await TestClient.connected(fourth.port, id: "nvr-consumer", clean: false)
            #expect(none == .connack(sessionPresent: false, returnCode: .accepted))
            _ = gone
            await fourth.stop()
        }
    }

    /// What MQTT 5 adds to a session is kept as the rest is: its expiry, its subscriptions'
    /// options and identifiers, its messages' properties and expiry, a retained message's
    /// properties, a will's properties.
    @Test(arguments: TestEngine.available)
    func mqtt5PartsOfASessionOutliveARestart(_ engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let first = try await BrokerRun(store)
            let keep = MQTTProperties([.sessionExpiryInterval(3_600)])
            let (away, _) = try await TestClient.connected5(first.port, id: "bridge", properties: keep)
            try await away.send(
                .subscribe(
                    packetId: 1,
                    subscriptions: [
                        Subscription(
                            filter: "home/#", qos: .atLeastOnce, noLocal: true, retainAsPublished: true, identifier: 5)
                    ], properties: MQTTProperties([.subscriptionIdentifier(5)])))
            #expect(await away.next() == .suback(packetId: 1, returnCodes: [1]))
            try await away.send(.disconnect())
            #expect(await away.closedWithin(.seconds(2)))
            let (publisher, _) = try await TestClient.connected5(first.port, id: "hub")
            let sent: [MQTTProperty] = [
                .contentType("application/json"), .responseTopic("replies/hub"),
                .correlationData(ByteBuffer(bytes: [1, 2, 3])), .userProperty(name: "楼", value: "1号楼"),
            ]
            try await publisher.send(
                .publish(
                    Publish(
                        topic: "home/lamp", payload: ByteBuffer(string: "on"), qos: .atLeastOnce, retain: true,
                        packetId: 1, properties: MQTTProperties(sent + [.messageExpiryInterval(600)]))))
            #expect(await publisher.next() == .puback(1))
            // The bridge itself publishes: No Local keeps it from its own session after the restart too.
            let (own, _) = try await TestClient.connected5(first.port, id: "bridge", clean: false, properties: keep)
            try await own.send(
                .publish(Publish(topic: "home/own", payload: ByteBuffer(), qos: .atLeastOnce, packetId: 9)))
            var ownAck: MQTTPacket?
            repeat {
                ownAck = await own.next()
            } while ownAck.map({ if case .puback(9, _, _) = $0 { false } else { true } }) == true
            // (the lamp message came first; it stays unacknowledged, so it is redelivered below)
            try await own.send(.disconnect())
            #expect(await own.closedWithin(.seconds(2)))
            await first.stop()

            let second = try await BrokerRun(store)
            defer { Task { await second.stop() } }
            let (back, ack) = try await TestClient.connected5(second.port, id: "bridge", clean: false, properties: keep)
            guard case .connack(true, .accepted, _, _)? = ack else {
                Issue.record("session not present after the restart: \(String(describing: ack))")
                return
            }
            guard case let .publish(m)? = await back.next() else {
                Issue.record("the kept message did not come back")
                return
            }
            #expect(m.topic == "home/lamp" && m.retain, "retain as published, kept with the subscription")
            #expect(Array(m.properties.items.prefix(4)) == sent)
            #expect(m.properties.subscriptionIdentifiers == [5])
            #expect((590...600).contains(m.properties.messageExpiryInterval ?? 0))
            try await back.send(.puback(m.packetId!))
            #expect(await back.next(within: .milliseconds(500)) == nil, "its own message was not kept for it")
            // A newcomer gets the retained message with its properties.
            let (newcomer, _) = try await TestClient.connected5(second.port, id: "dashboard")
            _ = try await newcomer.subscribe("home/lamp", qos: .atMostOnce)
            guard case let .publish(retained)? = await newcomer.next() else {
                Issue.record("no retained message after the restart")
                return
            }
            #expect(retained.properties.contentType == "application/json" && retained.retain)
        }
    }

    /// QoS 2 in both directions across a restart: the publisher's resent PUBLISH after PUBREC is
    /// not routed twice, and a subscriber that sent PUBREC gets PUBREL, not the message again.
    @Test(arguments: TestEngine.available)
    func qos2IsExactlyOnceAcrossARestart(_ engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let first = try await BrokerRun(store)
            let (sub, _) = try await TestClient.connected(first.port, id: "alarm-panel", clean: false)
            #expect(try await sub.subscribe("alarms/#", qos: .exactlyOnce) == .suback(packetId: 1, returnCodes: [2]))
            let (pub, _) = try await TestClient.connected(first.port, id: "smoke-gateway", clean: false)
            try await pub.send(publish("alarms/smoke", "fire on 4", qos: .exactlyOnce, id: 7))
            #expect(await pub.next() == .pubrec(7))
            guard case let .publish(delivered)? = await sub.next() else {
                Issue.record("not delivered")
                return
            }
            let outgoingId = try #require(delivered.packetId)
            try await sub.send(.pubrec(outgoingId))
            #expect(await sub.next() == .pubrel(outgoingId))
            // Neither PUBREL from the publisher nor PUBCOMP from the subscriber before the restart.
            pub.close()
            sub.close()
            await first.stop()

            let second = try await BrokerRun(store)
            defer { Task { await second.stop() } }
            let (sub2, subAck) = try await TestClient.connected(second.port, id: "alarm-panel", clean: false)
            #expect(subAck == .connack(sessionPresent: true, returnCode: .accepted))
            #expect(await sub2.next() == .pubrel(outgoingId), "the PUBREL owed, not the message again")
            try await sub2.send(.pubcomp(outgoingId))
            let (pub2, pubAck) = try await TestClient.connected(second.port, id: "smoke-gateway", clean: false)
            #expect(pubAck == .connack(sessionPresent: true, returnCode: .accepted))
            var again = Publish(
                topic: "alarms/smoke", payload: ByteBuffer(string: "fire on 4"), qos: .exactlyOnce, packetId: 7)
            again.dup = true
            try await pub2.send(.publish(again))
            #expect(await pub2.next() == .pubrec(7))
            try await pub2.send(.pubrel(7))
            #expect(await pub2.next() == .pubcomp(7))
            #expect(await sub2.next(within: .milliseconds(500)) == nil, "the resent PUBLISH was not routed again")
            // After PUBCOMP the id is free: a new message with it is a new message.
            try await pub2.send(publish("alarms/smoke", "fire on 5", qos: .exactlyOnce, id: 7))
            #expect(await pub2.next() == .pubrec(7))
            guard case let .publish(next)? = await sub2.next() else {
                Issue.record("the next message with the same id was taken for a duplicate")
                return
            }
            #expect(String(buffer: next.payload) == "fire on 5")
        }
    }

    /// A full queue drops the newer messages, counts them, and keeps the older ones.
    @Test(arguments: TestEngine.available)
    func aFullQueueDropsNewerMessagesAndCountsThem(_ engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let configuration = MQTTBrokerConfiguration(port: 0, queueLimit: 5)
            let first = try await BrokerRun(store, configuration)
            let (away, _) = try await TestClient.connected(first.port, id: "meter-reader", clean: false)
            _ = try await away.subscribe("meters/#", qos: .atLeastOnce)
            try await away.send(.disconnect())
            #expect(await away.closedWithin(.seconds(2)))
            let (pub, _) = try await TestClient.connected(first.port, id: "meters")
            for i in 1...8 {
                try await pub.send(publish("meters/1", "reading \(i)", qos: .atLeastOnce, id: UInt16(i)))
                #expect(await pub.next() == .puback(UInt16(i)))
            }
            await first.stop()
            let sessions = try await BrokerSessionStore.sessions(in: store.telemetry, usernames: ["good"])
            #expect(sessions.map(\.clientId) == ["meter-reader"])
            #expect(sessions.first?.kept == 5 && sessions.first?.dropped == 3 && sessions.first?.connected == false)
            let second = try await BrokerRun(store, configuration)
            defer { Task { await second.stop() } }
            let (back, _) = try await TestClient.connected(second.port, id: "meter-reader", clean: false)
            var got: [String] = []
            while got.count < 5, case let .publish(m)? = await back.next() {
                got.append(String(buffer: m.payload))
                try await back.send(.puback(m.packetId!))
            }
            #expect(got == (1...5).map { "reading \($0)" })
            #expect(await back.next(within: .milliseconds(300)) == nil)
        }
    }

    @Test func aSessionExpiresWhenItsClientStaysAway() async throws {
        try await withStore(.sqlite) { store in
            let configuration = MQTTBrokerConfiguration(port: 0, sessionExpiry: .seconds(1))
            let run = try await BrokerRun(store, configuration)
            defer { Task { await run.stop() } }
            let (away, _) = try await TestClient.connected(run.port, id: "visitor-kiosk", clean: false)
            _ = try await away.subscribe("kiosk/#", qos: .atLeastOnce)
            try await away.send(.disconnect())
            #expect(await away.closedWithin(.seconds(2)))
            try await Task.sleep(for: .milliseconds(1_300))
            let (back, ack) = try await TestClient.connected(run.port, id: "visitor-kiosk", clean: false)
            #expect(ack == .connack(sessionPresent: false, returnCode: .accepted))
            _ = back
            #expect(
                try await BrokerSessionStore.sessions(in: store.telemetry, usernames: ["good"]).first?.subscriptions
                    == 0)
        }
    }
}
