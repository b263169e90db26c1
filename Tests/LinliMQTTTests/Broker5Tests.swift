import LinliMQTTTesting
import NIOCore
import Testing

@testable import LinliMQTT

/// MQTT 5 beside 3.1.1 on the same port, over real sockets.
@Suite("MQTT 5 broker over real sockets")
struct Broker5Tests {
    static func properties(of packet: MQTTPacket?) -> MQTTProperties? {
        if case let .connack(_, _, _, properties)? = packet { return properties }
        if case let .publish(message)? = packet { return message.properties }
        return nil
    }

    /// The next PUBLISH, acknowledged when it asks for it.
    static func nextMessage(_ client: TestClient, within: Duration = .seconds(5)) async throws -> Publish? {
        while let packet = await client.next(within: within) {
            guard case let .publish(message) = packet else { continue }
            if message.qos == .atLeastOnce { try await client.send(.puback(message.packetId!)) }
            return message
        }
        return nil
    }

    @Test func connackSaysWhatTheBrokerTakesAndAssignsAnId() async throws {
        try await withBroker { port, _ in
            let (client, ack) = try await TestClient.connected5(port, id: "", clean: false)
            guard case let .connack(present, code, _, properties)? = ack else {
                Issue.record("no CONNACK: \(String(describing: ack))")
                return
            }
            #expect(!present && code == .accepted)
            #expect(properties.assignedClientIdentifier?.hasPrefix("linli-") == true)
            #expect(properties.receiveMaximum == 64)
            #expect(properties.maximumPacketSize == 262_144)
            #expect(properties.topicAliasMaximum == 64)
            client.close()
            // Asking for a session that never expires gets the broker's cap (7 days), said back.
            let (forever, ack2) = try await TestClient.connected5(
                port, id: "forever", clean: true, properties: MQTTProperties([.sessionExpiryInterval(.max)]))
            #expect(Self.properties(of: ack2)?.sessionExpiryInterval == 604_800, "7 days")
            forever.close()
            // Enhanced authentication is not offered.
            let (auth, ack3) = try await TestClient.connected5(
                port, id: "auth", properties: MQTTProperties([.authenticationMethod("SCRAM-SHA-256")]))
            #expect(
                ack3 == .connack(sessionPresent: false, returnCode: .notAuthorized, reason: .badAuthenticationMethod))
            auth.close()
        }
    }

    @Test func propertiesPassOnToFiveSubscribersAndThreeOneOneGetsThePlainMessage() async throws {
        try await withBroker { port, _ in
            let (five, _) = try await TestClient.connected5(port, id: "five")
            let (old, _) = try await TestClient.connected(port, id: "old")
            try await five.send(
                .subscribe(
                    packetId: 1, subscriptions: [Subscription(filter: "req/#", qos: .atLeastOnce)],
                    properties: MQTTProperties([.subscriptionIdentifier(7)])))
            #expect(await five.next() == .suback(packetId: 1, returnCodes: [1]))
            #expect(try await old.subscribe("req/#", qos: .atLeastOnce) == .suback(packetId: 1, returnCodes: [1]))
            let (publisher, _) = try await TestClient.connected5(port, id: "pub")
            let sent: [MQTTProperty] = [
                .payloadFormatIndicator(1), .responseTopic("resp/app"), .correlationData(ByteBuffer(bytes: [9, 8])),
                .contentType("application/json"), .userProperty(name: "b", value: "1号楼"),
                .userProperty(name: "a", value: "x"),
            ]
            try await publisher.send(
                .publish(
                    Publish(
                        topic: "req/door", payload: ByteBuffer(string: "{}"), qos: .atLeastOnce, packetId: 1,
                        properties: MQTTProperties(sent))))
            #expect(await publisher.next() == .puback(1))
            let got = try #require(try await Self.nextMessage(five))
            #expect(got.properties.items == sent + [.subscriptionIdentifier(7)])
            let plain = try #require(try await Self.nextMessage(old))
            #expect(plain.topic == "req/door" && String(buffer: plain.payload) == "{}")
        }
    }

    @Test func topicAliasesResolveOnTheirConnection() async throws {
        try await withBroker { port, _ in
            let (sub, _) = try await TestClient.connected(port, id: "sub")
            _ = try await sub.subscribe("sensors/#", qos: .atMostOnce)
            let (pub, _) = try await TestClient.connected5(port, id: "pub")
            try await pub.send(
                .publish(
                    Publish(
                        topic: "sensors/1号楼/temperature", payload: ByteBuffer(string: "21"),
                        properties: MQTTProperties([.topicAlias(3)]))))
            try await pub.send(
                .publish(
                    Publish(topic: "", payload: ByteBuffer(string: "22"), properties: MQTTProperties([.topicAlias(3)])))
            )
            for value in ["21", "22"] {
                let got = try #require(try await Self.nextMessage(sub))
                #expect(got.topic == "sensors/1号楼/temperature" && String(buffer: got.payload) == value)
            }
            // An alias above the maximum: DISCONNECT 0x94, then the close.
            try await pub.send(
                .publish(
                    Publish(topic: "sensors/x", payload: ByteBuffer(), properties: MQTTProperties([.topicAlias(65)]))))
            #expect(await pub.next() == .disconnect(reason: .topicAliasInvalid))
            #expect(await pub.closedWithin(.seconds(2)))
            // An alias never set: a protocol error.
            let (other, _) = try await TestClient.connected5(port, id: "other")
            try await other.send(
                .publish(Publish(topic: "", payload: ByteBuffer(), properties: MQTTProperties([.topicAlias(1)]))))
            #expect(await other.next() == .disconnect(reason: .protocolError))
        }
    }

    @Test func subscriptionOptionsAreHonoured() async throws {
        try await withBroker { port, _ in
            let (client, _) = try await TestClient.connected5(port, id: "bridge")
            try await client.send(
                .subscribe(
                    packetId: 1,
                    subscriptions: [
                        Subscription(filter: "home/#", qos: .atMostOnce, noLocal: true, retainAsPublished: true)
                    ]
                ))
            #expect(await client.next() == .suback(packetId: 1, returnCodes: [0]))
            // Its own message does not come back (No Local); another's does, with its retain flag.
            try await client.send(.publish(Publish(topic: "home/own", payload: ByteBuffer(string: "mine"))))
            let (other, _) = try await TestClient.connected5(port, id: "other")
            try await other.send(.publish(Publish(topic: "home/lamp", payload: ByteBuffer(string: "on"), retain: true)))
            let got = try #require(try await Self.nextMessage(client))
            #expect(got.topic == "home/lamp" && got.retain, "retain as published")
            // Retain handling 2: no retained message on subscribing; 1: only for a new subscription.
            try await other.send(
                .subscribe(
                    packetId: 2, subscriptions: [Subscription(filter: "home/lamp", qos: .atMostOnce, retainHandling: 2)]
                ))
            #expect(await other.next() == .suback(packetId: 2, returnCodes: [0]))
            #expect(await other.next(within: .milliseconds(300)) == nil)
            for (id, expectRetained) in [(UInt16(3), true), (4, false)] {
                try await other.send(
                    .subscribe(
                        packetId: id,
                        subscriptions: [Subscription(filter: "home/+", qos: .atMostOnce, retainHandling: 1)]))
                #expect(await other.next() == .suback(packetId: id, returnCodes: [0]))
                let retained = try await Self.nextMessage(other, within: .milliseconds(500))
                #expect((retained?.retain == true) == expectRetained, "subscription \(id)")
            }
            // One copy for overlapping subscriptions, with both identifiers.
            try await other.send(
                .subscribe(
                    packetId: 5, subscriptions: [Subscription(filter: "x/#", qos: .atMostOnce, identifier: 9)],
                    properties: MQTTProperties([.subscriptionIdentifier(9)])))
            _ = await other.next()
            try await other.send(
                .subscribe(
                    packetId: 6, subscriptions: [Subscription(filter: "x/+", qos: .atMostOnce, identifier: 11)],
                    properties: MQTTProperties([.subscriptionIdentifier(11)])))
            _ = await other.next()
            try await client.send(.publish(Publish(topic: "x/y", payload: ByteBuffer())))
            let both = try #require(try await Self.nextMessage(other))
            #expect(Set(both.properties.subscriptionIdentifiers) == [9, 11])
            #expect(try await Self.nextMessage(other, within: .milliseconds(300)) == nil, "one copy")
            // UNSUBACK says which filter had no subscription.
            try await other.send(.unsubscribe(packetId: 7, filters: ["x/#", "never"]))
            #expect(await other.next() == .unsuback(7, reasons: [.success, .noSubscriptionExisted]))
        }
    }

    @Test func aRefusedPublishIsAnsweredNotClosed() async throws {
        try await withBroker { port, _ in
            let (limited, _) = try await TestClient.connected5(port, id: "limited", user: "limited")
            try await limited.send(
                .publish(Publish(topic: "devices/other/x", payload: ByteBuffer(), qos: .atLeastOnce, packetId: 1)))
            #expect(await limited.next() == .puback(1, reason: .notAuthorized))
            try await limited.send(
                .publish(Publish(topic: "devices/limited/x", payload: ByteBuffer(), qos: .atLeastOnce, packetId: 2)))
            #expect(await limited.next() == .puback(2))
            // A PUBREL for an id never received: PUBCOMP 0x92.
            try await limited.send(.pubrel(77))
            #expect(await limited.next() == .pubcomp(77, reason: .packetIdentifierNotFound))
        }
    }

    @Test func sessionAndMessageExpiry() async throws {
        try await withBroker { port, _ in
            let keep = MQTTProperties([.sessionExpiryInterval(60)])
            var (sub, _) = try await TestClient.connected5(port, id: "away", clean: true, properties: keep)
            _ = try await sub.subscribe("news/#", qos: .atLeastOnce)
            try await sub.send(.disconnect())
            _ = await sub.closedWithin(.seconds(2))
            let (pub, _) = try await TestClient.connected5(port, id: "pub")
            for (id, expiry) in [(UInt16(1), UInt32(1)), (2, 120)] {
                try await pub.send(
                    .publish(
                        Publish(
                            topic: "news/\(expiry)", payload: ByteBuffer(), qos: .atLeastOnce, packetId: id,
                            properties: MQTTProperties([.messageExpiryInterval(expiry)]))))
                #expect(await pub.next() == .puback(id))
            }
            try await Task.sleep(for: .milliseconds(1_300))
            var ack: MQTTPacket?
            (sub, ack) = try await TestClient.connected5(port, id: "away", clean: false, properties: keep)
            guard case .connack(true, .accepted, _, _)? = ack else {
                Issue.record("session not present: \(String(describing: ack))")
                return
            }
            let got = try #require(try await Self.nextMessage(sub))
            #expect(got.topic == "news/120", "the one-second message expired while the client was away")
            let left = try #require(got.properties.messageExpiryInterval)
            #expect(left <= 120 && left >= 115)
            #expect(try await Self.nextMessage(sub, within: .milliseconds(300)) == nil)
            // A DISCONNECT may shorten the session expiry; a session with none cannot be given one.
            try await sub.send(.disconnect(properties: MQTTProperties([.sessionExpiryInterval(1)])))
            _ = await sub.closedWithin(.seconds(2))
            try await Task.sleep(for: .milliseconds(1_200))
            let (back, ack2) = try await TestClient.connected5(port, id: "away", clean: false, properties: keep)
            #expect(ack2.map { if case .connack(let present, _, _, _) = $0 { present } else { true } } == false)
            back.close()
            let (none, _) = try await TestClient.connected5(port, id: "none")
            try await none.send(.disconnect(properties: MQTTProperties([.sessionExpiryInterval(10)])))
            #expect(await none.next() == .disconnect(reason: .protocolError))
        }
    }

    /// After CONNACK, bytes that are not MQTT 5 are answered with DISCONNECT and the reason (§4.13),
    /// then the close; the broker carries on.
    @Test func malformedPacketsAreAnsweredWithTheirReason() async throws {
        try await withBroker { port, _ in
            var connect = ByteBuffer()
            MQTTPacket.connect(
                Connect(
                    protocolLevel: 5, cleanSession: true, keepAlive: 30, clientId: "prober", username: "good",
                    password: ByteBuffer(string: "pw"))
            ).write(to: &connect, version: .v5)
            let cases: [(String, [UInt8], ReasonCode)] = [
                (
                    "a property twice", Wire.publish5(properties: [0x0A, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]),
                    .protocolError
                ),
                (
                    "a property not of PUBLISH", Wire.publish5(properties: [0x05, 0x11, 0, 0, 0, 1]),
                    .protocolError
                ),
                ("an unknown property", Wire.publish5(properties: [0x02, 0x7F, 0x00]), .protocolError),
                ("properties past the packet", [0x30, 0x05, 0x00, 0x01, 0x74, 0x09, 0x01], .malformedPacket),
                ("a string past the packet", [0x30, 0x03, 0x00, 0x09, 0x61], .malformedPacket),
                ("a wildcard in a topic", [0x30, 0x05, 0x00, 0x02, 0x61, 0x23, 0x00], .topicNameInvalid),
                ("a second CONNECT", Array(connect.readableBytesView), .protocolError),
                ("an AUTH nobody asked for", [0xF0, 0x00], .protocolError),
            ]
            for (what, bytes, reason) in cases {
                let answer = try await RawClient.answerBeforeClose(
                    port: port, paced: [Array(connect.readableBytesView), bytes])
                var buffer = ByteBuffer(bytes: try #require(answer, "\(what): not closed"))
                guard
                    case .connack(_, .accepted, _, _)? = try MQTTPacket.read(
                        from: &buffer, limits: MQTTLimits(), version: .v5)
                else {
                    Issue.record("\(what): no CONNACK first")
                    continue
                }
                #expect(
                    try MQTTPacket.read(from: &buffer, limits: MQTTLimits(), version: .v5)
                        == .disconnect(reason: reason),
                    "\(what)")
            }
            let (still, ack) = try await TestClient.connected5(port, id: "after")
            if case .connack(_, .accepted, _, _)? = ack {} else { Issue.record("the broker stopped answering") }
            still.close()
        }
    }

    @Test func aTakeoverIsToldToTheConnectionTakenOver() async throws {
        try await withBroker { port, _ in
            let (first, _) = try await TestClient.connected5(port, id: "same")
            let (second, ack) = try await TestClient.connected5(port, id: "same")
            #expect(await first.next() == .disconnect(reason: .sessionTakenOver))
            #expect(await first.closedWithin(.seconds(2)))
            if case .connack(_, .accepted, _, _)? = ack {} else { Issue.record("second not accepted") }
            second.close()
        }
    }

    @Test func theClientsLimitsAreKept() async throws {
        try await withBroker { port, _ in
            let (sub, _) = try await TestClient.connected5(
                port, id: "small", properties: MQTTProperties([.receiveMaximum(2), .maximumPacketSize(200)]))
            _ = try await sub.subscribe("t/#", qos: .atLeastOnce)
            let (pub, _) = try await TestClient.connected5(port, id: "pub")
            // Too large for the client: not sent at all; the small one after it is.
            try await pub.send(.publish(Publish(topic: "t/big", payload: ByteBuffer(repeating: 1, count: 1_000))))
            for n in 0..<5 {
                try await pub.send(
                    .publish(
                        Publish(topic: "t/\(n)", payload: ByteBuffer(), qos: .atLeastOnce, packetId: UInt16(n + 1))))
            }
            // Receive maximum 2: two in flight until one is acknowledged. The first may be slow on
            // a loaded machine; after it, half a second of silence means nothing more is coming.
            var held: [Publish] = []
            if case let .publish(m)? = await sub.next(within: .seconds(10)) { held.append(m) }
            while let packet = await sub.next(within: .milliseconds(500)) {
                if case let .publish(m) = packet { held.append(m) }
            }
            #expect(held.map(\.topic) == ["t/0", "t/1"])
            let first = try #require(held.first)
            try await sub.send(.puback(first.packetId!))
            let third = try #require(await sub.next())
            guard case let .publish(m) = third else {
                Issue.record("not a PUBLISH: \(third)")
                return
            }
            #expect(m.topic == "t/2")
        }
    }

    @Test func aWillWaitsForItsDelayAndNotForAClientThatCameBack() async throws {
        try await withBroker { port, _ in
            let (watcher, _) = try await TestClient.connected(port, id: "watcher")
            _ = try await watcher.subscribe("wills/#", qos: .atMostOnce)
            let will = Will(
                topic: "wills/nvr", payload: ByteBuffer(string: "gone"), qos: .atMostOnce, retain: false,
                properties: MQTTProperties([.willDelayInterval(1)]))
            let keep = MQTTProperties([.sessionExpiryInterval(60)])
            let (nvr, _) = try await TestClient.connected5(port, id: "nvr", will: will, properties: keep)
            nvr.close()
            #expect(await watcher.next(within: .milliseconds(600)) == nil, "not before its delay")
            let got = try #require(try await Self.nextMessage(watcher, within: .seconds(3)))
            #expect(got.topic == "wills/nvr")
            // Back within the delay: no will.
            let (again, _) = try await TestClient.connected5(port, id: "nvr2", will: will, properties: keep)
            again.close()
            try await Task.sleep(for: .milliseconds(300))
            let (back, _) = try await TestClient.connected5(port, id: "nvr2", clean: false, properties: keep)
            #expect(await watcher.next(within: .milliseconds(1_500)) == nil)
            back.close()
        }
    }

    @Test func aSharedSubscriptionSplitsTheMessagesAmongItsMembers() async throws {
        try await withBroker { port, _ in
            var members: [TestClient] = []
            for (n, five) in [(0, true), (1, true), (2, false)] {
                let (member, _) =
                    five
                    ? try await TestClient.connected5(port, id: "worker-\(n)")
                    : try await TestClient.connected(port, id: "worker-\(n)")
                #expect(
                    try await member.subscribe("$share/workers/jobs/#", qos: .atLeastOnce)
                        == .suback(packetId: 1, returnCodes: [1]))
                members.append(member)
            }
            let (everything, _) = try await TestClient.connected5(port, id: "audit")
            _ = try await everything.subscribe("jobs/#", qos: .atMostOnce)
            let (pub, _) = try await TestClient.connected5(port, id: "pub")
            for n in 0..<90 {
                try await pub.send(
                    .publish(
                        Publish(
                            topic: "jobs/\(n)", payload: ByteBuffer(string: "\(n)"), qos: .atLeastOnce,
                            packetId: UInt16(n + 1))))
            }
            var counts: [Int] = []
            var seen: [String] = []
            for member in members {
                var count = 0
                while let message = try await Self.nextMessage(member, within: .milliseconds(500)) {
                    seen.append(message.topic)
                    count += 1
                }
                counts.append(count)
            }
            #expect(seen.count == 90 && Set(seen).count == 90, "each message once among the members")
            #expect(counts == [30, 30, 30], "in turn")
            var all = 0
            while try await Self.nextMessage(everything, within: .milliseconds(300)) != nil { all += 1 }
            #expect(all == 90)
        }
    }
}
