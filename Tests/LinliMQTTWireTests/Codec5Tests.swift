import LinliMQTTTesting
import NIOCore
import Testing

@testable import LinliMQTTWire

@Suite("MQTT 5 packets")
struct Codec5Tests {
    static func bytes(_ packet: MQTTPacket, _ version: MQTTVersion = .v5) -> [UInt8] {
        Array(Wire.bytes(packet, version).readableBytesView)
    }

    static func read(_ raw: [UInt8], version: MQTTVersion = .v5) throws(MQTTProtocolError) -> MQTTPacket? {
        var buffer = ByteBuffer(bytes: raw)
        return try MQTTPacket.read(from: &buffer, limits: MQTTLimits(), version: version)
    }

    static func refusal(_ raw: [UInt8], version: MQTTVersion = .v5) -> MQTTProtocolError? {
        do {
            _ = try read(raw, version: version)
            return nil
        } catch {
            return error
        }
    }

    static let userProperties: [MQTTProperty] = [
        .userProperty(name: "building", value: "1号楼"), .userProperty(name: "building", value: "2号楼"),
    ]

    static let samples: [MQTTPacket] = [
        .connect(
            Connect(
                protocolLevel: 5, cleanSession: false, keepAlive: 30, clientId: "nvr-1",
                will: Will(
                    topic: "frigate/available", payload: ByteBuffer(string: "offline"), qos: .atLeastOnce,
                    retain: true,
                    properties: MQTTProperties([
                        .willDelayInterval(5), .messageExpiryInterval(60), .contentType("text"),
                    ])
                ),
                username: "frigate", password: ByteBuffer(string: "pw"),
                properties: MQTTProperties(
                    [.sessionExpiryInterval(3600), .receiveMaximum(20), .maximumPacketSize(65536)] + userProperties))),
        // MQTT 5 allows a password without a user name.
        .connect(Connect(protocolLevel: 5, cleanSession: true, keepAlive: 0, clientId: "", password: ByteBuffer())),
        .connack(
            sessionPresent: false, returnCode: .accepted, reason: .success,
            properties: MQTTProperties([
                .assignedClientIdentifier("linli-abc"), .receiveMaximum(64), .topicAliasMaximum(64),
                .maximumPacketSize(262_144),
            ])),
        .connack(
            sessionPresent: false, returnCode: .notAuthorized, reason: .badAuthenticationMethod,
            properties: MQTTProperties([.reasonString("enhanced authentication is not offered")])),
        .publish(
            Publish(
                topic: "requests/door", payload: ByteBuffer(string: "open"), qos: .atLeastOnce, packetId: 3,
                properties: MQTTProperties(
                    [
                        .payloadFormatIndicator(1), .messageExpiryInterval(30), .topicAlias(4),
                        .responseTopic("responses/app-7"), .correlationData(ByteBuffer(bytes: [0, 1, 2, 0xFF])),
                        .contentType("text/plain"), .subscriptionIdentifier(1), .subscriptionIdentifier(268_435_455),
                    ] + userProperties))),
        // An empty topic with a topic alias stands for the aliased topic.
        .publish(
            Publish(
                topic: "", payload: ByteBuffer(string: "x"), qos: .atMostOnce,
                properties: MQTTProperties([.topicAlias(4)]))),
        .puback(1), .puback(2, reason: .notAuthorized),
        .pubrec(3, reason: .noMatchingSubscribers, properties: MQTTProperties([.reasonString("nobody listens")])),
        .pubrel(4, reason: .packetIdentifierNotFound), .pubcomp(5),
        .subscribe(
            packetId: 9,
            subscriptions: [
                Subscription(
                    filter: "a/+/c", qos: .exactlyOnce, noLocal: true, retainAsPublished: true, retainHandling: 2,
                    identifier: 42),
                Subscription(filter: "$share/workers/jobs/#", qos: .atLeastOnce, retainHandling: 1, identifier: 42),
            ],
            properties: MQTTProperties([.subscriptionIdentifier(42)])),
        .suback(
            packetId: 9, returnCodes: [2, 1, ReasonCode.notAuthorized.rawValue],
            properties: MQTTProperties([.reasonString("one filter is not yours")])),
        .unsubscribe(packetId: 10, filters: ["a/+/c"], properties: MQTTProperties(userProperties)),
        .unsuback(10, reasons: [.success, .noSubscriptionExisted]),
        .disconnect(), .disconnect(reason: .disconnectWithWill),
        .disconnect(
            reason: .sessionTakenOver, properties: MQTTProperties([.reasonString("another connection took over")])),
        .disconnect(reason: .success, properties: MQTTProperties([.sessionExpiryInterval(0)])),
        .auth(reason: ReasonCode(0x18), properties: MQTTProperties([.authenticationMethod("SCRAM-SHA-1")])),
        .pingreq, .pingresp,
    ]

    @Test("every MQTT 5 packet survives a write and a read", arguments: samples.indices)
    func roundTrip(index: Int) throws {
        let packet = Self.samples[index]
        let read = try Self.read(Self.bytes(packet), version: .v5)
        #expect(read == packet)
    }

    @Test func fedByteByByteTheReaderYieldsEveryPacketInOrder() throws {
        var whole: [UInt8] = []
        for packet in Self.samples { whole += Self.bytes(packet) }
        var pending = ByteBuffer()
        var decoded: [MQTTPacket] = []
        for byte in whole {
            pending.writeInteger(byte)
            while let packet = try MQTTPacket.read(from: &pending, limits: MQTTLimits(), version: .v5) {
                decoded.append(packet)
            }
        }
        #expect(decoded == Self.samples)
    }

    @Test func theShortFormsOfTheSpecificationAreWrittenAndRead() throws {
        // A successful PUBACK without properties is two bytes of packet id (§3.4.2.1); with a
        // reason only, three; a normal DISCONNECT has no body (§3.14.2.1).
        #expect(Self.bytes(.puback(7)) == [0x40, 0x02, 0x00, 0x07])
        #expect(Self.bytes(.puback(7, reason: .notAuthorized)) == [0x40, 0x03, 0x00, 0x07, 0x87])
        #expect(Self.bytes(.disconnect()) == [0xE0, 0x00])
        #expect(Self.bytes(.disconnect(reason: .sessionTakenOver)) == [0xE0, 0x01, 0x8E])
        #expect(try Self.read([0x40, 0x03, 0x00, 0x07, 0x10]) == .puback(7, reason: .noMatchingSubscribers))
        // A CONNACK always carries its property length.
        #expect(Self.bytes(.connack(sessionPresent: true, returnCode: .accepted)) == [0x20, 0x03, 0x01, 0x00, 0x00])
    }

    @Test func aThreeOneOneConnectionGetsNoneOfFivesParts() {
        // The same packets written for 3.1.1: no properties, no reason codes, failures as 0x80.
        #expect(Self.bytes(.puback(2, reason: .notAuthorized), .v3_1_1) == [0x40, 0x02, 0x00, 0x02])
        #expect(
            Self.bytes(
                .suback(packetId: 1, returnCodes: [1, 0x87], properties: MQTTProperties([.reasonString("x")])), .v3_1_1)
                == [0x90, 0x04, 0x00, 0x01, 0x01, 0x80])
        #expect(
            Self.bytes(
                .connack(sessionPresent: false, returnCode: .notAuthorized, reason: .badAuthenticationMethod), .v3_1_1)
                == [0x20, 0x02, 0x00, 0x05])
        #expect(Self.bytes(.disconnect(reason: .sessionTakenOver), .v3_1_1) == [0xE0, 0x00])
        let message = Publish(
            topic: "t", payload: ByteBuffer(string: "p"), properties: MQTTProperties([.contentType("text/plain")]))
        #expect(Self.bytes(.publish(message), .v3_1_1) == [0x30, 0x04, 0x00, 0x01, 0x74, 0x70])
        // AUTH is a reserved type in 3.1.1.
        #expect(Self.refusal([0xF0, 0x00], version: .v3_1_1) == .reservedPacketType(15))
    }

    static func publish(properties: [UInt8]) -> [UInt8] { Wire.publish5(properties: properties) }

    @Test func malformedPropertiesAreRefused() {
        // The same property twice (only user properties may repeat).
        #expect(
            Self.refusal(Self.publish(properties: [0x0A, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]))
                == .protocolError("property 0x2 appears twice"))
        // A property that does not belong in the packet: a session expiry in a PUBLISH.
        #expect(
            Self.refusal(Self.publish(properties: [0x05, 0x11, 0, 0, 0, 1]))
                == .protocolError("property 0x11 does not belong in this packet"))
        // An identifier no property has.
        #expect(Self.refusal(Self.publish(properties: [0x02, 0x7F, 0x00])) != nil)
        // A property length that runs past the packet.
        #expect(
            Self.refusal([0x30, 0x05, 0x00, 0x01, 0x74, 0x09, 0x01])
                == .malformed("the properties run past the end of the packet"))
        // A value cut short inside the properties.
        #expect(Self.refusal(Self.publish(properties: [0x03, 0x02, 0, 0])) == .malformed("a property is cut short"))
        // A payload format indicator other than 0 or 1.
        #expect(Self.refusal(Self.publish(properties: [0x02, 0x01, 0x02])) != nil)
        // A topic alias of 0; a subscription identifier of 0.
        #expect(
            Self.refusal(Self.publish(properties: [0x03, 0x23, 0, 0])) == .protocolError("property 0x23 must not be 0"))
        #expect(
            Self.refusal(Self.publish(properties: [0x02, 0x0B, 0x00]))
                == .protocolError("a subscription identifier must not be 0"))
        // A variable integer of five bytes (as a property length).
        #expect(
            Self.refusal([0x30, 0x09, 0x00, 0x01, 0x74, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00])
                == .malformed("a variable integer longer than four bytes"))
        // A response topic with a wildcard.
        #expect(
            Self.refusal(Self.publish(properties: [0x04, 0x08, 0x00, 0x01, 0x23]))
                == .protocolError("a response topic must be a topic name"))
        // A receive maximum of 0 in a CONNECT.
        var connect = ByteBuffer()
        MQTTPacket.connect(
            Connect(
                protocolLevel: 5, cleanSession: true, keepAlive: 1, clientId: "x",
                properties: MQTTProperties([.receiveMaximum(1)]))
        ).write(to: &connect, version: .v5)
        var raw = Array(connect.readableBytesView)
        raw[raw.count - 4] = 0  // the receive maximum's value: 00 01 → 00 00
        #expect(Self.refusal(raw) == .protocolError("property 0x21 must not be 0"))
        // An empty topic without an alias.
        #expect(Self.refusal([0x30, 0x04, 0x00, 0x00, 0x00, 0x70]) == .invalidTopic("a topic name must not be empty"))
    }

    @Test func malformedSubscribeOptionsAreRefused() throws {
        func subscribe(_ filter: String, options: UInt8, properties: [UInt8] = [0x00]) -> [UInt8] {
            let body: [UInt8] =
                [0x00, 0x01] + properties + [0x00, UInt8(filter.utf8.count)] + Array(filter.utf8) + [options]
            return [0x82, UInt8(body.count)] + body
        }
        #expect(try Self.read(subscribe("a/b", options: 0x2D)) != nil)  // QoS 1, No Local, RAP, retain handling 2
        // Reserved bits 6 and 7.
        #expect(Self.refusal(subscribe("a/b", options: 0x41)) != nil)
        // Retain handling 3.
        #expect(Self.refusal(subscribe("a/b", options: 0x31)) == .protocolError("SUBSCRIBE retain handling 3"))
        // QoS 3.
        #expect(Self.refusal(subscribe("a/b", options: 0x03)) != nil)
        // No Local on a shared subscription (MQTT-3.8.3-4).
        #expect(
            Self.refusal(subscribe("$share/g/a", options: 0x05)) == .protocolError("No Local on a shared subscription"))
        // A shared subscription needs a name and a filter.
        #expect(Self.refusal(subscribe("$share/g", options: 0x01)) != nil)
        #expect(Self.refusal(subscribe("$share//a", options: 0x01)) != nil)
        #expect(Self.refusal(subscribe("$share/g+/a", options: 0x01)) != nil)
        // Two subscription identifiers in one SUBSCRIBE.
        #expect(Self.refusal(subscribe("a", options: 0x01, properties: [0x04, 0x0B, 0x01, 0x0B, 0x02])) != nil)
    }

    @Test func sharedSubscriptionsSplitIntoGroupAndFilter() {
        #expect(Topic.shared("$share/workers/jobs/#")! == ("workers", "jobs/#"))
        #expect(Topic.shared("jobs/#") == nil)
        #expect(Topic.shared("$share/workers") == nil)
        #expect(Topic.shared("$share/w/$share/x/y") == nil)
    }

    @Test func randomBytesNeverCrashTheFiveReader() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<3_000 {
            var bytes = (0..<Int.random(in: 0..<48, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            // Mostly well-framed: a real first byte and a remaining length that fits.
            if bytes.count > 2 {
                bytes[1] = UInt8(bytes.count - 2)
            }
            var buffer = ByteBuffer(bytes: bytes)
            while (try? MQTTPacket.read(from: &buffer, limits: MQTTLimits(maxPacketSize: 4096), version: .v5)) != nil {}
        }
    }
}
