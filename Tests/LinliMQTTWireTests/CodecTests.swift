import LinliMQTTTesting
import NIOCore
import NIOEmbedded
import Testing

@testable import LinliMQTTWire

@Suite("MQTT packets")
struct CodecTests {
    static func bytes(_ packet: MQTTPacket) -> ByteBuffer { Wire.bytes(packet) }

    static let samples: [MQTTPacket] = [
        .connect(
            Connect(
                cleanSession: true, keepAlive: 60, clientId: "door-1|securemode=3,signmethod=hmacsha256,timestamp=1|",
                will: Will(
                    topic: "devices/door-1/status", payload: ByteBuffer(string: "offline"), qos: .atLeastOnce,
                    retain: true),
                username: "door-1&pk", password: ByteBuffer(string: "secret"))),
        .connect(Connect(cleanSession: false, keepAlive: 0, clientId: "")),
        .connack(sessionPresent: true, returnCode: .accepted),
        .connack(sessionPresent: false, returnCode: .notAuthorized),
        .publish(
            Publish(
                topic: "/sys/pk/dn/thing/event/property/post", payload: ByteBuffer(string: "{\"id\":\"1\"}"),
                qos: .atLeastOnce, retain: false, dup: true, packetId: 7)),
        .publish(Publish(topic: "小区/1号楼/温度", payload: ByteBuffer(), qos: .atMostOnce, retain: true)),
        .publish(
            Publish(topic: "a", payload: ByteBuffer(repeating: 1, count: 20_000), qos: .exactlyOnce, packetId: 65535)),
        .puback(1), .pubrec(2), .pubrel(3), .pubcomp(4),
        .subscribe(
            packetId: 9,
            subscriptions: [
                Subscription(filter: "a/+/c", qos: .exactlyOnce), Subscription(filter: "#", qos: .atMostOnce),
            ]),
        .suback(packetId: 9, returnCodes: [2, 0, MQTTPacket.subackFailure]),
        .unsubscribe(packetId: 10, filters: ["a/+/c"]),
        .unsuback(10), .pingreq, .pingresp, .disconnect(),
    ]

    @Test("every packet survives a write and a read", arguments: samples.indices)
    func roundTrip(index: Int) throws {
        let packet = Self.samples[index]
        var buffer = Self.bytes(packet)
        #expect(try MQTTPacket.read(from: &buffer, limits: MQTTLimits()) == packet)
        #expect(buffer.readableBytes == 0)
    }

    @Test func incompletePacketsWaitForTheirBytes() throws {
        var whole = ByteBuffer()
        for packet in Self.samples { packet.write(to: &whole) }
        // Fed one byte at a time, the reader never throws and yields exactly the packets, in order.
        var pending = ByteBuffer()
        var decoded: [MQTTPacket] = []
        while let byte = whole.readSlice(length: 1) {
            var b = byte
            pending.writeBuffer(&b)
            while let packet = try MQTTPacket.read(from: &pending, limits: MQTTLimits()) { decoded.append(packet) }
        }
        #expect(decoded == Self.samples)
    }

    @Test func knownPacketBytesMatchTheSpecification() {
        // PINGREQ is 0xC0 0x00; CONNACK accepted without session is 0x20 0x02 0x00 0x00.
        #expect(Array(Self.bytes(.pingreq).readableBytesView) == [0xC0, 0x00])
        #expect(
            Array(Self.bytes(.connack(sessionPresent: false, returnCode: .accepted)).readableBytesView) == [
                0x20, 0x02, 0x00, 0x00,
            ])
        // A 321-byte body has remaining length 0xC1 0x02.
        let big = Self.bytes(.publish(Publish(topic: "t", payload: ByteBuffer(repeating: 0, count: 318))))
        #expect(Array(big.readableBytesView.prefix(3)) == [0x30, 0xC1, 0x02])
    }

    static func refusal(_ raw: [UInt8], limits: MQTTLimits = MQTTLimits()) -> MQTTProtocolError? {
        var buffer = ByteBuffer(bytes: raw)
        do {
            _ = try MQTTPacket.read(from: &buffer, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    @Test func malformedInputIsRefusedNotCrashedOn() {
        // A remaining length longer than four bytes.
        #expect(Self.refusal([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) == .malformedRemainingLength)
        // A packet larger than the limit is refused from its header, before its bytes arrive.
        #expect(
            Self.refusal([0x30, 0xFF, 0xFF, 0x7F], limits: MQTTLimits(maxPacketSize: 1024))
                == .packetTooLarge(size: 2_097_155, limit: 1024))
        // Reserved packet types 0 and 15.
        #expect(Self.refusal([0x00, 0x00]) == .reservedPacketType(0))
        #expect(Self.refusal([0xF0, 0x00]) == .reservedPacketType(15))
        // SUBSCRIBE must carry flags 0010.
        #expect(Self.refusal([0x80, 0x02, 0x00, 0x01]) == .invalidFlags(type: 8, flags: 0))
        // A zero-length topic.
        #expect(Self.refusal([0x30, 0x02, 0x00, 0x00]) == .invalidTopic("a topic name must not be empty"))
        // A remaining length that lies: CONNACK says 3 bytes, its content is 2.
        #expect(Self.refusal([0x20, 0x03, 0x00, 0x00, 0x00]) != nil)
        // A string whose length runs past the packet.
        #expect(Self.refusal([0x30, 0x03, 0x00, 0x09, 0x61]) == .malformed("a string runs past the end of the packet"))
        // Invalid UTF-8 and U+0000 in a topic.
        #expect(Self.refusal([0x30, 0x04, 0x00, 0x02, 0xC3, 0x28]) == .invalidUTF8)
        #expect(Self.refusal([0x30, 0x04, 0x00, 0x02, 0x61, 0x00]) == .invalidUTF8)
        // QoS 1 PUBLISH with packet identifier 0; QoS 3.
        #expect(Self.refusal([0x32, 0x05, 0x00, 0x01, 0x61, 0x00, 0x00]) != nil)
        #expect(Self.refusal([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]) == .invalidFlags(type: 3, flags: 6))
        // A wildcard in a published topic.
        var plus = ByteBuffer()
        MQTTPacket.publish(Publish(topic: "a/+", payload: ByteBuffer())).write(to: &plus)
        #expect(Self.refusal(Array(plus.readableBytesView)) == .invalidTopic("a topic name must not contain + or #"))
        // An unknown protocol name.
        var connect = Self.bytes(.connect(Connect(cleanSession: true, keepAlive: 1, clientId: "x")))
        connect.setBytes(Array("MQTX".utf8), at: 4)
        #expect(Self.refusal(Array(connect.readableBytesView)) == .unsupportedProtocol(name: "MQTX", level: 4))
    }

    @Test func aTopicWith65000LevelsIsRefused() {
        let topic = String(repeating: "a/", count: 32_499) + "a"
        #expect(topic.utf8.count < 65_535)
        var buffer = ByteBuffer()
        MQTTPacket.publish(Publish(topic: topic, payload: ByteBuffer())).write(to: &buffer)
        #expect(Self.refusal(Array(buffer.readableBytesView)) == .invalidTopic("more than 32 levels"))
    }

    @Test func garbageBytesNeverCrashTheReader() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let count = Int.random(in: 0..<64, using: &generator)
            var buffer = ByteBuffer(bytes: (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
            // Either a packet, a wait for more bytes, or a refusal: never a trap.
            while (try? MQTTPacket.read(from: &buffer, limits: MQTTLimits(maxPacketSize: 4096))) != nil {}
        }
    }

    @Test func decoderInAPipelineRewindsAndClosesOnGarbage() throws {
        let channel = EmbeddedChannel(handlers: [
            ByteToMessageHandler(MQTTDecoder()), MessageToByteHandler(MQTTEncoder()),
        ])
        var bytes = Self.bytes(.subscribe(packetId: 5, subscriptions: [Subscription(filter: "x/#", qos: .atLeastOnce)]))
        let head = bytes.readSlice(length: 3)!
        try channel.writeInbound(head)
        #expect(try channel.readInbound(as: MQTTPacket.self) == nil)
        try channel.writeInbound(bytes)
        #expect(
            try channel.readInbound(as: MQTTPacket.self)
                == .subscribe(packetId: 5, subscriptions: [Subscription(filter: "x/#", qos: .atLeastOnce)]))
        try channel.writeOutbound(MQTTPacket.pingresp)
        #expect(try channel.readOutbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == [0xD0, 0x00])
        #expect(throws: MQTTProtocolError.self) { try channel.writeInbound(ByteBuffer(bytes: [0xF0, 0x00])) }
        _ = try? channel.finish()
    }
}

@Suite("MQTT topics")
struct TopicTests {
    @Test(arguments: [
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
        ("sport/#", "sport", true),
        ("#", "a/b/c", true),
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("#", "$SYS/broker/load", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("$SYS/#", "$SYS/broker/load", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("/sys/pk/dn/thing/service/+", "/sys/pk/dn/thing/service/property/set", false),
        ("/sys/pk/dn/thing/service/#", "/sys/pk/dn/thing/service/property/set", true),
    ])
    func matching(filter: String, name: String, expected: Bool) {
        #expect(Topic.matches(filter: filter, name: name) == expected)
    }

    /// The in-place matcher agrees with matching split levels on every combination of a few levels.
    @Test func matchingInPlaceAgreesWithSplitLevels() {
        func reference(_ filter: String, _ name: String) -> Bool {
            if name.hasPrefix("$"), filter.hasPrefix("+") || filter.hasPrefix("#") { return false }
            var f = filter.split(separator: "/", omittingEmptySubsequences: false)[...]
            var n = name.split(separator: "/", omittingEmptySubsequences: false)[...]
            while let level = f.first {
                if level == "#" { return true }
                guard let part = n.first else { return false }
                if level != "+", level != part { return false }
                f = f.dropFirst()
                n = n.dropFirst()
            }
            return n.isEmpty
        }
        let nameLevels = ["", "a", "b", "ab", "$S", "é"]
        let filterLevels = nameLevels + ["+", "#"]
        func strings(_ levels: [String], upTo depth: Int) -> [String] {
            var all = levels
            var last = levels
            for _ in 1..<depth {
                last = last.flatMap { prefix in levels.map { prefix + "/" + $0 } }
                all += last
            }
            return all
        }
        let names = strings(nameLevels, upTo: 3)
        for filter in strings(filterLevels, upTo: 3) {
            for name in names where Topic.matches(filter: filter, name: name) != reference(filter, name) {
                Issue.record("filter '\(filter)' name '\(name)': expected \(reference(filter, name))")
            }
        }
    }

    @Test func filtersAreChecked() {
        let limits = MQTTLimits()
        for good in ["#", "+", "a/+/b", "a/#", "/", "+/+/#"] {
            #expect(throws: Never.self) { try Topic.validateFilter(good, limits: limits) }
        }
        for bad in ["", "a#", "a/#/b", "a+", "+a/b", "#/a"] {
            #expect(throws: MQTTProtocolError.self) { try Topic.validateFilter(bad, limits: limits) }
        }
    }
}
