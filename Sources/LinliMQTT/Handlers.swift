import NIOCore

/// Bytes to packets for a channel pipeline: `ByteToMessageHandler(MQTTDecoder(limits: …))`.
/// Waits (keeping the bytes) while a packet is incomplete; throws, closing that connection only,
/// when the bytes are not MQTT.
public struct MQTTDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = MQTTPacket
    public let limits: MQTTLimits

    public init(limits: MQTTLimits = MQTTLimits()) { self.limits = limits }

    public mutating func decode(buffer: inout ByteBuffer) throws -> MQTTPacket? {
        try MQTTPacket.read(from: &buffer, limits: limits)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> MQTTPacket? {
        try decode(buffer: &buffer)
    }
}

/// Packets to bytes: `MessageToByteHandler(MQTTEncoder())`.
public struct MQTTEncoder: MessageToByteEncoder {
    public typealias OutboundIn = MQTTPacket
    public init() {}
    public func encode(data: MQTTPacket, out: inout ByteBuffer) throws {
        data.write(to: &out)
    }
}
