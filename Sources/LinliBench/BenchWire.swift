import LinliMQTT
import NIOCore

/// The MQTT 3.1.1 packets of the generator's hot path, written and read as raw bytes.
///
/// The generator shares its machine with the server it measures, so every microsecond it spends
/// per post is taken from the server. Going through LinliMQTT's `MQTTPacket` for each post built
/// an enum, a `Publish` with a String topic and a payload buffer, boxed it for the pipeline and
/// encoded it into yet another buffer; reading built a `Publish` with a validated String topic for
/// every reply. Here a post is written straight into the device's one outbound buffer and the
/// server's packets are recognised from their bytes. The bytes on the wire are the same
/// (`BenchWireTests` compares them with `MQTTPacket.write`); CONNECT and SUBSCRIBE, once per
/// connection, still go through LinliMQTT's writer.
enum BenchWire {
    /// PINGREQ and DISCONNECT: a fixed header with a remaining length of zero.
    static let pingreq: UInt16 = 0xC000
    static let disconnect: UInt16 = 0xE000

    /// A packet that happens only once per connection (CONNECT, SUBSCRIBE), through LinliMQTT's writer.
    static func bytes(of packet: MQTTPacket, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: 256)
        packet.write(to: &out)
        return out
    }

    /// PUBACK for `packetId`: 0x40, remaining length 2, the id.
    static func writePuback(_ packetId: UInt16, into out: inout ByteBuffer) {
        out.writeInteger(UInt32(0x4002_0000) | UInt32(packetId))
    }

    static func writeFixedHeader(_ first: UInt8, remainingLength: Int, into out: inout ByteBuffer) {
        out.writeInteger(first)
        var length = remainingLength
        repeat {
            var byte = UInt8(length & 0x7F)
            length >>= 7
            if length > 0 { byte |= 0x80 }
            out.writeInteger(byte)
        } while length > 0
    }
}

/// One device's property post PUBLISH, prepared once per device: the fixed header's first byte
/// and the length-prefixed topic are constant, so each post writes only the remaining length,
/// the packet id and the payload (`PropertyPost`), into a buffer the device reuses.
struct PropertyPostPacket {
    /// 0x30 with the QoS bits; no DUP (the generator never resends) and no RETAIN.
    let firstByte: UInt8
    /// The topic with its two-byte length, as MQTT writes strings.
    let topicField: [UInt8]
    let hasPacketId: Bool

    init(topic: String, qos: QoS) {
        firstByte = 0x30 | (qos.rawValue << 1)
        let utf8 = Array(topic.utf8)
        topicField = [UInt8(utf8.count >> 8), UInt8(utf8.count & 0xFF)] + utf8
        hasPacketId = qos != .atMostOnce
    }

    /// Writes the whole packet; `packetId` is ignored at QoS 0 (the packet has none).
    func write(sequence: UInt64, packetId: UInt16, into out: inout ByteBuffer) {
        let remaining = topicField.count + (hasPacketId ? 2 : 0) + PropertyPost.length(sequence: sequence)
        BenchWire.writeFixedHeader(firstByte, remainingLength: remaining, into: &out)
        out.writeBytes(topicField)
        if hasPacketId { out.writeInteger(packetId) }
        PropertyPost.write(sequence: sequence, into: &out)
    }
}

// MARK: reading what the server sends

/// What the generator needs to know of a packet from the server. A server sends a client only
/// CONNACK, SUBACK, PUBACK, PUBLISH and PINGRESP here (the generator never subscribes at QoS 2,
/// never unsubscribes, publishes at QoS 0 or 1); anything else breaks the protocol.
enum ServerPacket: Equatable {
    case connack(sessionPresent: Bool, returnCode: ConnectReturnCode)
    /// The generator subscribes to one filter at a time: the first return code is its answer.
    case suback(packetId: UInt16, returnCode: UInt8)
    case puback(packetId: UInt16)
    /// `packetId` is present at QoS 1 and then needs a PUBACK back. `reply` is judged only when the
    /// reader was asked to (a device's `…/post_reply`), not for the subscriber's relayed posts.
    case publish(packetId: UInt16?, reply: ReplyVerdict)
    case pingresp
}

enum ReplyVerdict: Equatable {
    case notJudged
    case success
    /// The payload, to show what the server objected to.
    case failure(payload: ByteBuffer)
}

/// The server sent bytes that are not the MQTT a client expects; the connection is closed.
struct ServerProtocolError: Error, Equatable, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Splits a connection's inbound byte stream into `ServerPacket`s. Reads each packet in place from
/// the buffer the socket read into; only a packet cut across two reads is copied (its start kept
/// until the rest arrives), so the event loop's receive buffer can be reused for the next read.
struct ServerPacketReader {
    /// Whether PUBLISH payloads are judged as Alink replies.
    let judgesReplies: Bool
    /// Largest packet accepted, fixed header included: LinliMQTT's default limit.
    let maxPacketSize: Int
    /// The start of a packet whose end has not arrived yet.
    private var carried: ByteBuffer?

    init(judgesReplies: Bool, maxPacketSize: Int = MQTTLimits().maxPacketSize) {
        self.judgesReplies = judgesReplies
        self.maxPacketSize = maxPacketSize
    }

    /// Calls `handle` for every whole packet `incoming` completes, in order.
    mutating func read(_ incoming: inout ByteBuffer, _ handle: (ServerPacket) -> Void) throws(ServerProtocolError) {
        if var pending = carried {
            carried = nil  // `pending` is now the only reference: appending to it does not copy
            pending.writeBuffer(&incoming)
            try readAll(&pending, handle)
            keep(pending)
        } else {
            try readAll(&incoming, handle)
            keep(incoming)
        }
    }

    private func readAll(_ bytes: inout ByteBuffer, _ handle: (ServerPacket) -> Void) throws(ServerProtocolError) {
        while let packet = try Self.readPacket(from: &bytes, judgesReplies: judgesReplies, maxPacketSize: maxPacketSize)
        {
            handle(packet)
        }
    }

    private mutating func keep(_ rest: ByteBuffer) {
        guard rest.readableBytes > 0 else { return }
        var copy = ByteBufferAllocator().buffer(capacity: Swift.max(rest.readableBytes, 1_024))
        copy.writeImmutableBuffer(rest)
        carried = copy
    }

    /// Reads one whole packet from `buffer` if it holds one. Returns nil, and leaves the buffer
    /// untouched, when more bytes are needed.
    static func readPacket(from buffer: inout ByteBuffer, judgesReplies: Bool, maxPacketSize: Int)
        throws(ServerProtocolError) -> ServerPacket?
    {
        let parsed = buffer.withUnsafeReadableBytes {
            parse($0, judgesReplies: judgesReplies, maxPacketSize: maxPacketSize)
        }
        switch parsed {
        case .incomplete:
            return nil
        case let .malformed(reason):
            throw ServerProtocolError(reason)
        case let .packet(packet, length):
            buffer.moveReaderIndex(forwardBy: length)
            return packet
        case let .rejectedReply(packetId, payload, length):
            let packet = ServerPacket.publish(
                packetId: packetId,
                reply: .failure(
                    payload: buffer.getSlice(at: buffer.readerIndex + payload.lowerBound, length: payload.count)!))
            buffer.moveReaderIndex(forwardBy: length)
            return packet
        }
    }

    enum Parsed {
        case incomplete
        case malformed(String)
        case packet(ServerPacket, length: Int)
        /// A reply that is not a success: the payload's place, for the caller to slice out.
        case rejectedReply(packetId: UInt16?, payload: Range<Int>, length: Int)
    }

    /// The first packet in `bytes`, read without copying anything.
    static func parse(_ bytes: UnsafeRawBufferPointer, judgesReplies: Bool, maxPacketSize: Int) -> Parsed {
        guard bytes.count >= 2 else { return .incomplete }
        let first = bytes[0]
        // Remaining length: 7 bits a byte, least significant first, at most four bytes.
        var remaining = 0
        var index = 1
        while true {
            guard index < bytes.count else { return .incomplete }
            let byte = bytes[index]
            remaining |= Int(byte & 0x7F) << (7 * (index - 1))
            index += 1
            if byte & 0x80 == 0 { break }
            if index == 5 { return .malformed("a remaining length longer than four bytes") }
        }
        let body = index
        let length = body + remaining
        guard length <= maxPacketSize else {
            return .malformed("a \(length)-byte packet, above the \(maxPacketSize)-byte limit")
        }
        guard bytes.count >= length else { return .incomplete }
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) }

        switch first {
        case 0x40:
            guard remaining == 2 else { return .malformed("PUBACK with a remaining length of \(remaining)") }
            return .packet(.puback(packetId: u16(body)), length: length)
        case 0x30...0x3F:
            let qos = (first >> 1) & 0x03
            guard qos < 2 else { return .malformed("PUBLISH at QoS \(qos) to a client that asked for at most 1") }
            guard qos == 1 || first & 0x08 == 0 else { return .malformed("PUBLISH at QoS 0 with DUP set") }
            guard remaining >= 2 else { return .malformed("PUBLISH without a topic") }
            var payloadStart = body + 2 + Int(u16(body))
            var packetId: UInt16? = nil
            if qos == 1 {
                guard payloadStart + 2 <= length else {
                    return .malformed("PUBLISH whose topic and packet id run past its end")
                }
                let id = u16(payloadStart)
                guard id != 0 else { return .malformed("PUBLISH at QoS 1 with packet id 0") }
                packetId = id
                payloadStart += 2
            }
            guard payloadStart <= length else { return .malformed("PUBLISH whose topic runs past its end") }
            guard judgesReplies else { return .packet(.publish(packetId: packetId, reply: .notJudged), length: length) }
            let payload = UnsafeRawBufferPointer(rebasing: bytes[payloadStart..<length])
            if PropertyPost.isSuccessReply(payload) {
                return .packet(.publish(packetId: packetId, reply: .success), length: length)
            }
            return .rejectedReply(packetId: packetId, payload: payloadStart..<length, length: length)
        case 0x20:
            guard remaining == 2 else { return .malformed("CONNACK with a remaining length of \(remaining)") }
            guard bytes[body] & 0xFE == 0, let code = ConnectReturnCode(rawValue: bytes[body + 1]) else {
                return .malformed("CONNACK with reserved bits or an unknown return code")
            }
            return .packet(.connack(sessionPresent: bytes[body] == 1, returnCode: code), length: length)
        case 0x90:
            guard remaining >= 3 else { return .malformed("SUBACK without a return code") }
            return .packet(.suback(packetId: u16(body), returnCode: bytes[body + 2]), length: length)
        case 0xD0:
            guard remaining == 0 else { return .malformed("PINGRESP with a body") }
            return .packet(.pingresp, length: length)
        default:
            return .malformed("a packet a server does not send a client (first byte 0x\(String(first, radix: 16)))")
        }
    }
}
