import NIOCore

/// MQTT 3.1.1 (OASIS standard) control packets, one value per packet, each with its own
/// `read` and `write`. Validation happens while reading: a packet that breaks the specification
/// never reaches the broker's logic.

public enum QoS: UInt8, Sendable, Comparable, CaseIterable {
    case atMostOnce = 0
    case atLeastOnce = 1
    case exactlyOnce = 2

    public static func < (a: QoS, b: QoS) -> Bool { a.rawValue < b.rawValue }
}

/// CONNACK return codes (MQTT 3.1.1 §3.2.2.3).
public enum ConnectReturnCode: UInt8, Sendable {
    case accepted = 0
    case unacceptableProtocolVersion = 1
    case identifierRejected = 2
    case serverUnavailable = 3
    case badUsernameOrPassword = 4
    case notAuthorized = 5
}

public struct Will: Sendable, Equatable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: QoS
    public var retain: Bool
    public init(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

public struct Connect: Sendable, Equatable {
    public var protocolLevel: UInt8
    public var cleanSession: Bool
    public var keepAlive: UInt16
    public var clientId: String
    public var will: Will?
    public var username: String?
    public var password: ByteBuffer?
    public init(
        protocolLevel: UInt8 = 4, cleanSession: Bool, keepAlive: UInt16, clientId: String, will: Will? = nil,
        username: String? = nil, password: ByteBuffer? = nil
    ) {
        self.protocolLevel = protocolLevel
        self.cleanSession = cleanSession
        self.keepAlive = keepAlive
        self.clientId = clientId
        self.will = will
        self.username = username
        self.password = password
    }
}

public struct Publish: Sendable, Equatable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: QoS
    public var retain: Bool
    public var dup: Bool
    /// Present exactly when `qos` is above 0.
    public var packetId: UInt16?
    public init(
        topic: String, payload: ByteBuffer, qos: QoS = .atMostOnce, retain: Bool = false, dup: Bool = false,
        packetId: UInt16? = nil
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetId = packetId
    }
}

public struct Subscription: Sendable, Equatable {
    public var filter: String
    public var qos: QoS
    public init(filter: String, qos: QoS) {
        self.filter = filter
        self.qos = qos
    }
}

public enum MQTTPacket: Sendable, Equatable {
    case connect(Connect)
    case connack(sessionPresent: Bool, returnCode: ConnectReturnCode)
    case publish(Publish)
    case puback(UInt16)
    case pubrec(UInt16)
    case pubrel(UInt16)
    case pubcomp(UInt16)
    case subscribe(packetId: UInt16, subscriptions: [Subscription])
    /// Return codes: the granted QoS (0, 1, 2) or 0x80 for a refused filter.
    case suback(packetId: UInt16, returnCodes: [UInt8])
    case unsubscribe(packetId: UInt16, filters: [String])
    case unsuback(UInt16)
    case pingreq
    case pingresp
    case disconnect

    public static let subackFailure: UInt8 = 0x80
}

/// Why a byte stream is not MQTT. Every case closes the connection that sent it, and only that one.
public enum MQTTProtocolError: Error, Equatable, Sendable {
    case malformedRemainingLength
    case packetTooLarge(size: Int, limit: Int)
    case reservedPacketType(UInt8)
    case invalidFlags(type: UInt8, flags: UInt8)
    case malformed(String)
    case invalidUTF8
    case invalidTopic(String)
    case unsupportedProtocol(name: String, level: UInt8)
}
