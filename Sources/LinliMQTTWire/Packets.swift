import NIOCore

/// MQTT 3.1.1 and 5.0 (OASIS standards) control packets, one value per packet. The 5.0 parts
/// (reason codes, properties) have defaults, so that a 3.1.1 packet is written as before; a
/// packet is read and written for the version its connection speaks, and what 3.1.1 lacks is
/// left out when writing it. Validation happens while reading: a packet that breaks the
/// specification never reaches the broker's logic.

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
    /// MQTT 5: the will delay, and the properties its message goes out with.
    public var properties: MQTTProperties
    public init(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool, properties: MQTTProperties = .none) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }

    /// The message the will becomes: its properties without the will delay, which is not a
    /// message's.
    public var message: Publish {
        Publish(
            topic: topic, payload: payload, qos: qos, retain: retain,
            properties: MQTTProperties(properties.items.filter { $0.identifier != 0x18 }))
    }
}

public struct Connect: Sendable, Equatable {
    public var protocolLevel: UInt8
    /// MQTT 3.1.1: clean session; MQTT 5: clean start (the session's life is `properties`'
    /// session expiry interval).
    public var cleanSession: Bool
    public var keepAlive: UInt16
    public var clientId: String
    public var will: Will?
    public var username: String?
    public var password: ByteBuffer?
    public var properties: MQTTProperties
    public init(
        protocolLevel: UInt8 = 4, cleanSession: Bool, keepAlive: UInt16, clientId: String, will: Will? = nil,
        username: String? = nil, password: ByteBuffer? = nil, properties: MQTTProperties = .none
    ) {
        self.protocolLevel = protocolLevel
        self.cleanSession = cleanSession
        self.keepAlive = keepAlive
        self.clientId = clientId
        self.will = will
        self.username = username
        self.password = password
        self.properties = properties
    }

    public var version: MQTTVersion { MQTTVersion(rawValue: protocolLevel) ?? .v3_1_1 }
}

public struct Publish: Sendable, Equatable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: QoS
    public var retain: Bool
    public var dup: Bool
    /// Present exactly when `qos` is above 0.
    public var packetId: UInt16?
    /// MQTT 5 properties, passed on to subscribers as they came (but the topic alias, which is
    /// the connection's, and the message expiry, counted down).
    public var properties: MQTTProperties
    /// When a message with an expiry interval stops being delivered (milliseconds since 1970):
    /// set by the broker as it routes the message.
    public var expiresAt: Int64?
    public init(
        topic: String, payload: ByteBuffer, qos: QoS = .atMostOnce, retain: Bool = false, dup: Bool = false,
        packetId: UInt16? = nil, properties: MQTTProperties = .none, expiresAt: Int64? = nil
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetId = packetId
        self.properties = properties
        self.expiresAt = expiresAt
    }
}

public struct Subscription: Sendable, Equatable {
    public var filter: String
    public var qos: QoS
    /// MQTT 5 subscription options (§3.8.3.1): the subscriber's own messages are not sent back.
    public var noLocal: Bool
    /// Messages keep the retain flag they were published with.
    public var retainAsPublished: Bool
    /// 0: retained messages are sent on subscribing; 1: only if the subscription is new; 2: never.
    public var retainHandling: UInt8
    /// The SUBSCRIBE's subscription identifier, sent with every message this subscription brings.
    public var identifier: Int?
    public init(
        filter: String, qos: QoS, noLocal: Bool = false, retainAsPublished: Bool = false, retainHandling: UInt8 = 0,
        identifier: Int? = nil
    ) {
        self.filter = filter
        self.qos = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
        self.identifier = identifier
    }

    /// The options byte of an MQTT 5 SUBSCRIBE (QoS in the low bits).
    public var optionsByte: UInt8 {
        qos.rawValue | (noLocal ? 0x04 : 0) | (retainAsPublished ? 0x08 : 0) | (retainHandling << 4)
    }
}

public enum MQTTPacket: Sendable, Equatable {
    case connect(Connect)
    /// `reason`: an MQTT 5 reason code more precise than `returnCode`; nil for `returnCode`'s own.
    case connack(
        sessionPresent: Bool, returnCode: ConnectReturnCode, reason: ReasonCode? = nil,
        properties: MQTTProperties = .none)
    case publish(Publish)
    case puback(UInt16, reason: ReasonCode = .success, properties: MQTTProperties = .none)
    case pubrec(UInt16, reason: ReasonCode = .success, properties: MQTTProperties = .none)
    case pubrel(UInt16, reason: ReasonCode = .success, properties: MQTTProperties = .none)
    case pubcomp(UInt16, reason: ReasonCode = .success, properties: MQTTProperties = .none)
    case subscribe(packetId: UInt16, subscriptions: [Subscription], properties: MQTTProperties = .none)
    /// Return codes: the granted QoS (0, 1, 2) or a failure (0x80 and up; 3.1.1 knows only 0x80).
    case suback(packetId: UInt16, returnCodes: [UInt8], properties: MQTTProperties = .none)
    case unsubscribe(packetId: UInt16, filters: [String], properties: MQTTProperties = .none)
    /// MQTT 5 gives a reason per filter; 3.1.1 none.
    case unsuback(UInt16, reasons: [ReasonCode] = [], properties: MQTTProperties = .none)
    case pingreq
    case pingresp
    case disconnect(reason: ReasonCode = .success, properties: MQTTProperties = .none)
    /// MQTT 5 enhanced authentication, which Linli does not offer: read only to be refused.
    case auth(reason: ReasonCode, properties: MQTTProperties)

    public static let subackFailure: UInt8 = 0x80
}

extension MQTTPacket {
    /// A PUBACK or PUBCOMP: the end of an outgoing message's exchange.
    package var isCompletion: Bool {
        switch self {
        case .puback, .pubcomp: true
        default: false
        }
    }
}

extension ConnectReturnCode {
    /// The MQTT 5 reason code that says the same.
    public var reason: ReasonCode {
        switch self {
        case .accepted: .success
        case .unacceptableProtocolVersion: .unsupportedProtocolVersion
        case .identifierRejected: .clientIdentifierNotValid
        case .serverUnavailable: .serverUnavailable
        case .badUsernameOrPassword: .badUsernameOrPassword
        case .notAuthorized: .notAuthorized
        }
    }

    /// The 3.1.1 return code nearest an MQTT 5 CONNACK reason code.
    init(reason: ReasonCode) {
        switch reason.rawValue {
        case 0x00: self = .accepted
        case 0x84: self = .unacceptableProtocolVersion
        case 0x85: self = .identifierRejected
        case 0x86: self = .badUsernameOrPassword
        case 0x88, 0x89, 0x97, 0x9F: self = .serverUnavailable
        default: self = .notAuthorized
        }
    }
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
    /// Well-formed bytes that break a rule of the protocol (MQTT 5 tells this apart).
    case protocolError(String)

    /// What an MQTT 5 DISCONNECT (or CONNACK) says of it.
    public var reason: ReasonCode {
        switch self {
        case .packetTooLarge: .packetTooLarge
        case .protocolError, .reservedPacketType: .protocolError
        case .invalidTopic: .topicNameInvalid
        case .unsupportedProtocol: .unsupportedProtocolVersion
        default: .malformedPacket
        }
    }
}
