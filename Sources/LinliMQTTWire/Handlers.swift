import NIOCore

/// Bytes to packets for a channel pipeline: `ByteToMessageHandler(MQTTDecoder(limits: …))`.
/// Waits (keeping the bytes) while a packet is incomplete; throws, closing that connection only,
/// when the bytes are not MQTT. A server's decoder learns the version from the CONNECT it reads;
/// a client's is told it.
public struct MQTTDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = MQTTPacket
    public let limits: MQTTLimits
    public private(set) var version: MQTTVersion

    public init(limits: MQTTLimits = MQTTLimits(), version: MQTTVersion = .v3_1_1) {
        self.limits = limits
        self.version = version
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> MQTTPacket? {
        let packet = try MQTTPacket.read(from: &buffer, limits: limits, version: version)
        if case let .connect(connect)? = packet { version = connect.version }
        return packet
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> MQTTPacket? {
        try decode(buffer: &buffer)
    }
}

/// Packets to bytes: `MessageToByteHandler(MQTTEncoder())`.
public struct MQTTEncoder: MessageToByteEncoder {
    public typealias OutboundIn = MQTTPacket
    public let version: MQTTVersion
    public init(version: MQTTVersion = .v3_1_1) { self.version = version }
    public func encode(data: MQTTPacket, out: inout ByteBuffer) throws {
        data.write(to: &out, version: version)
    }
}
