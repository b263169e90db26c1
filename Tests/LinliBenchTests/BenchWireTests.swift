import LinliAlink
import LinliMQTT
import NIOCore
import NIOEmbedded
import Testing

@testable import LinliBench

@Suite("Raw MQTT bytes of the generator")
struct BenchWireTests {
    // MARK: writing

    @Test(
        "a property post is the PUBLISH LinliMQTT would write, byte for byte",
        arguments: [UInt64(0), 9, 10, 99, 100, 12_345, 9_999_999, 1_000_000_000_000, .max])
    func propertyPostsAreTheSameBytes(sequence: UInt64) {
        let topics = [
            "/sys/a1benchmark/bench-b-17/thing/event/property/post", "bench/3",
            "b",
        ]  // "b" at QoS 0 puts the remaining length on both sides of 128 (one or two bytes)
        for topic in topics {
            for qos in [QoS.atLeastOnce, .atMostOnce] {
                var payload = ByteBuffer()
                PropertyPost.write(sequence: sequence, into: &payload)
                #expect(payload.readableBytes == PropertyPost.length(sequence: sequence))
                let packetId: UInt16? = qos == .atMostOnce ? nil : UInt16(truncatingIfNeeded: sequence % 65_535 + 1)
                var expected = ByteBuffer()
                MQTTPacket.publish(Publish(topic: topic, payload: payload, qos: qos, packetId: packetId)).write(
                    to: &expected)

                var raw = ByteBuffer()
                PropertyPostPacket(topic: topic, qos: qos).write(
                    sequence: sequence, packetId: packetId ?? 0, into: &raw)
                #expect(raw == expected, "\(topic), QoS \(qos.rawValue), sequence \(sequence)")
            }
        }
    }

    @Test func pubackPingAndDisconnectAreTheSameBytes() {
        func bytes(_ packet: MQTTPacket) -> ByteBuffer {
            var out = ByteBuffer()
            packet.write(to: &out)
            return out
        }
        var puback = ByteBuffer()
        BenchWire.writePuback(0x1234, into: &puback)
        #expect(puback == bytes(.puback(0x1234)))
        #expect(ByteBuffer(integer: BenchWire.pingreq) == bytes(.pingreq))
        #expect(ByteBuffer(integer: BenchWire.disconnect) == bytes(.disconnect()))
    }

    // MARK: reading

    static let successReply = ByteBuffer(bytes: AlinkCode.success(id: "41"))
    static let failureReply = ByteBuffer(
        bytes: AlinkCode.reply(id: "42", code: AlinkCode.invalidValue, message: "CurrentTemperature is above 120"))
    static let replyTopic = "/sys/a1benchmark/bench-b-17/thing/event/property/post_reply"

    /// What a server might send one device over a while, as LinliMQTT writes it.
    static func serverStream() -> (bytes: ByteBuffer, expected: [ServerPacket]) {
        let packets: [(MQTTPacket, ServerPacket)] = [
            (
                .connack(sessionPresent: false, returnCode: .accepted),
                .connack(sessionPresent: false, returnCode: .accepted)
            ),
            (.suback(packetId: 1, returnCodes: [1]), .suback(packetId: 1, returnCode: 1)),
            (.puback(9), .puback(packetId: 9)),
            (.publish(Publish(topic: replyTopic, payload: successReply)), .publish(packetId: nil, reply: .success)),
            (
                .publish(Publish(topic: replyTopic, payload: successReply, qos: .atLeastOnce, packetId: 7)),
                .publish(packetId: 7, reply: .success)
            ),
            (.pingresp, .pingresp),
            (
                .publish(Publish(topic: replyTopic, payload: failureReply)),
                .publish(packetId: nil, reply: .failure(payload: failureReply))
            ),
            (.puback(65_535), .puback(packetId: 65_535)),
        ]
        var bytes = ByteBuffer()
        for (packet, _) in packets { packet.write(to: &bytes) }
        return (bytes, packets.map(\.1))
    }

    static func readAll(_ chunks: [ByteBuffer], judgesReplies: Bool = true) throws(ServerProtocolError)
        -> [ServerPacket]
    {
        var reader = ServerPacketReader(judgesReplies: judgesReplies)
        var packets: [ServerPacket] = []
        for var chunk in chunks { try reader.read(&chunk) { packets.append($0) } }
        return packets
    }

    @Test func severalPacketsInOneReadAreAllRead() throws {
        let (bytes, expected) = Self.serverStream()
        #expect(try Self.readAll([bytes]) == expected)
    }

    @Test func packetsSplitAcrossReadsAreReadWhole() throws {
        let (bytes, expected) = Self.serverStream()
        // Cut in two at every place, then byte by byte: the same packets come out.
        for cut in 1..<bytes.readableBytes {
            let chunks = [
                bytes.getSlice(at: 0, length: cut)!, bytes.getSlice(at: cut, length: bytes.readableBytes - cut)!,
            ]
            #expect(try Self.readAll(chunks) == expected, "cut at \(cut)")
        }
        let single = (0..<bytes.readableBytes).map { bytes.getSlice(at: $0, length: 1)! }
        #expect(try Self.readAll(single) == expected)
    }

    @Test func aPacketCutShortWaitsForItsRest() throws {
        var reader = ServerPacketReader(judgesReplies: true)
        var packets: [ServerPacket] = []
        var start = ByteBuffer(bytes: [0x40, 0x02, 0x00])  // PUBACK missing its last byte
        try reader.read(&start) { packets.append($0) }
        #expect(packets.isEmpty)
        var lengthOnly = ByteBuffer(bytes: [0x07])
        try reader.read(&lengthOnly) { packets.append($0) }
        #expect(packets == [.puback(packetId: 7)])
        // A remaining length whose continuation bit is set at the end of a read is not an error yet.
        var halfLength = ByteBuffer(bytes: [0x30, 0x80])
        try reader.read(&halfLength) { packets.append($0) }
        #expect(packets.count == 1)
    }

    @Test func repliesAreJudgedOnlyForDevices() throws {
        let (bytes, _) = Self.serverStream()
        let read = try Self.readAll([bytes], judgesReplies: false)
        #expect(read.filter { if case .publish(_, .notJudged) = $0 { true } else { false } }.count == 3)
    }

    @Test func aFailureReplyCarriesItsPayload() throws {
        var bytes = ByteBuffer()
        MQTTPacket.publish(Publish(topic: Self.replyTopic, payload: ByteBuffer(string: #"{"code":2001,"id":"1"}"#)))
            .write(to: &bytes)
        MQTTPacket.publish(Publish(topic: Self.replyTopic, payload: Self.failureReply, qos: .atLeastOnce, packetId: 3))
            .write(to: &bytes)
        MQTTPacket.publish(Publish(topic: Self.replyTopic, payload: ByteBuffer())).write(to: &bytes)
        let read = try Self.readAll([bytes])
        #expect(
            read == [
                .publish(packetId: nil, reply: .failure(payload: ByteBuffer(string: #"{"code":2001,"id":"1"}"#))),
                .publish(packetId: 3, reply: .failure(payload: Self.failureReply)),
                .publish(packetId: nil, reply: .failure(payload: ByteBuffer())),
            ])
    }

    @Test(
        "malformed input is a protocol error",
        arguments: [
            [0x40, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],  // a remaining length of five bytes
            [0x40, 0x03, 0x00, 0x01, 0x00],  // PUBACK with a body of three bytes
            [0x41, 0x02, 0x00, 0x01],  // PUBACK with flags
            [0x00, 0x00],  // reserved packet type 0
            [0xF0, 0x00],  // reserved packet type 15
            [0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61],  // SUBSCRIBE: a client's packet
            [0x30, 0x03, 0x00, 0x05, 0x61],  // PUBLISH whose topic runs past its end
            [0x32, 0x04, 0x00, 0x01, 0x61, 0x00],  // QoS 1 PUBLISH whose packet id runs past its end
            [0x32, 0x05, 0x00, 0x01, 0x61, 0x00, 0x00],  // QoS 1 PUBLISH with packet id 0
            [0x34, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01],  // QoS 2
            [0x38, 0x03, 0x00, 0x01, 0x61],  // DUP at QoS 0
            [0x20, 0x02, 0x00, 0x09],  // CONNACK with an unknown return code
            [0xD0, 0x01, 0x00],  // PINGRESP with a body
            [0x90, 0x02, 0x00, 0x01],  // SUBACK without a return code
            [0x30, 0xFF, 0xFF, 0x7F],  // 2 MiB: above the packet size limit, refused before it arrives
        ] as [[UInt8]])
    func malformedInputIsAnError(bytes: [UInt8]) {
        #expect(throws: ServerProtocolError.self) { try Self.readAll([ByteBuffer(bytes: bytes)]) }
        // Whatever came before it was still read.
        var reader = ServerPacketReader(judgesReplies: true)
        var read: [ServerPacket] = []
        var stream = ByteBuffer(bytes: [0xD0, 0x00] + bytes)
        #expect(throws: ServerProtocolError.self) { try reader.read(&stream) { read.append($0) } }
        #expect(read == [.pingresp])
    }

    // MARK: the client on a channel

    /// A device on an `EmbeddedChannel`, signed in: the CONNECT read off and a CONNACK given.
    static func connectedDevice(inflight: Int = 2) throws -> (EmbeddedChannel, BenchClientHandler, LoopDriver) {
        let loop = EmbeddedEventLoop()
        let driver = LoopDriver(eventLoop: loop)
        let handler = BenchClientHandler(
            identity: .plain(clientId: "bench-t-0", index: 0), role: .device, qos: .atLeastOnce, inflight: inflight,
            keepAlive: 60, driver: driver, ready: loop.makePromise())
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1883)).wait()
        var connect = try #require(try channel.readOutbound(as: ByteBuffer.self))
        guard case let .connect(c)? = try MQTTPacket.read(from: &connect, limits: MQTTLimits()) else {
            throw ServerProtocolError("no CONNECT")
        }
        #expect(c.clientId == "bench-t-0")
        var connack = ByteBuffer()
        MQTTPacket.connack(sessionPresent: false, returnCode: .accepted).write(to: &connack)
        try channel.writeInbound(connack)
        #expect(driver.readyDevices == 1)
        return (channel, handler, driver)
    }

    @Test func aDevicePostsWithinItsWindowAndTimesEachPuback() throws {
        let (channel, handler, driver) = try Self.connectedDevice(inflight: 2)
        #expect(handler.publish(upTo: 3) == 2)  // the window holds two
        #expect(handler.publish(upTo: 1) == 0)
        var written = try #require(try channel.readOutbound(as: ByteBuffer.self))  // both posts, one write
        var ids: [UInt16] = []
        while let packet = try MQTTPacket.read(from: &written, limits: MQTTLimits()) {
            guard case let .publish(p) = packet else {
                Issue.record("\(packet)")
                continue
            }
            #expect(p.topic == "bench/0" && p.qos == .atLeastOnce)
            ids.append(p.packetId!)
        }
        #expect(ids == [1, 2])
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)

        var acks = ByteBuffer()
        MQTTPacket.puback(2).write(to: &acks)
        MQTTPacket.puback(1).write(to: &acks)
        MQTTPacket.puback(1).write(to: &acks)  // not in flight any more
        try channel.writeInbound(acks)
        #expect(driver.counters.acked == 2 && driver.counters.latency.count == 2)
        #expect(driver.counters.protocolErrors == 1)
        #expect(handler.inflightCount == 0)
        #expect(handler.publish(upTo: 1) == 1)
        _ = try channel.finish()
    }

    @Test func repliesAreCountedAndQoS1DeliveriesAcknowledgedOncePerRead() throws {
        let (channel, _, driver) = try Self.connectedDevice()
        var bytes = ByteBuffer()
        MQTTPacket.publish(Publish(topic: Self.replyTopic, payload: Self.successReply)).write(to: &bytes)
        MQTTPacket.publish(Publish(topic: Self.replyTopic, payload: Self.failureReply, qos: .atLeastOnce, packetId: 5))
            .write(to: &bytes)
        MQTTPacket.publish(Publish(topic: Self.replyTopic, payload: Self.successReply, qos: .atLeastOnce, packetId: 6))
            .write(to: &bytes)
        try channel.writeInbound(bytes)
        #expect(driver.counters.replies == 3 && driver.counters.rejectedReplies == 1)
        #expect(driver.counters.firstRejection == String(buffer: Self.failureReply))
        var acks = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(try MQTTPacket.read(from: &acks, limits: MQTTLimits()) == .puback(5))
        #expect(try MQTTPacket.read(from: &acks, limits: MQTTLimits()) == .puback(6))
        #expect(acks.readableBytes == 0)
        _ = try channel.finish()
    }

    @Test func malformedBytesCloseTheClientAsAProtocolError() throws {
        let (channel, _, driver) = try Self.connectedDevice()
        try channel.writeInbound(ByteBuffer(bytes: [0xD0, 0x00, 0x00, 0x00]))
        #expect(driver.counters.protocolErrors == 1)
        #expect(!channel.isActive)
        #expect(driver.readyDevices == 0 && driver.counters.disconnects == 1)
    }
}
