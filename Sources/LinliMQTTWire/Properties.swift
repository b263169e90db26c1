import NIOCore

/// The protocol a connection speaks, from its CONNECT's protocol level.
public enum MQTTVersion: UInt8, Sendable, Comparable {
    /// "MQIsdp" level 3, from older devices; handled as 3.1.1.
    case v3_1 = 3
    case v3_1_1 = 4
    case v5 = 5

    public static func < (a: MQTTVersion, b: MQTTVersion) -> Bool { a.rawValue < b.rawValue }
}

/// An MQTT 5 reason code (§2.4): below 0x80 a success, from 0x80 a failure. A struct, not an
/// enum, so that a code a peer sends which this list lacks is still read and passed on.
public struct ReasonCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    public var isFailure: Bool { rawValue >= 0x80 }

    public static let success = ReasonCode(0x00)
    public static let grantedQoS1 = ReasonCode(0x01)
    public static let grantedQoS2 = ReasonCode(0x02)
    public static let disconnectWithWill = ReasonCode(0x04)
    public static let noMatchingSubscribers = ReasonCode(0x10)
    public static let noSubscriptionExisted = ReasonCode(0x11)
    public static let unspecifiedError = ReasonCode(0x80)
    public static let malformedPacket = ReasonCode(0x81)
    public static let protocolError = ReasonCode(0x82)
    public static let implementationSpecificError = ReasonCode(0x83)
    public static let unsupportedProtocolVersion = ReasonCode(0x84)
    public static let clientIdentifierNotValid = ReasonCode(0x85)
    public static let badUsernameOrPassword = ReasonCode(0x86)
    public static let notAuthorized = ReasonCode(0x87)
    public static let serverUnavailable = ReasonCode(0x88)
    public static let serverBusy = ReasonCode(0x89)
    public static let badAuthenticationMethod = ReasonCode(0x8C)
    public static let keepAliveTimeout = ReasonCode(0x8D)
    public static let sessionTakenOver = ReasonCode(0x8E)
    public static let topicFilterInvalid = ReasonCode(0x8F)
    public static let topicNameInvalid = ReasonCode(0x90)
    public static let packetIdentifierNotFound = ReasonCode(0x92)
    public static let receiveMaximumExceeded = ReasonCode(0x93)
    public static let topicAliasInvalid = ReasonCode(0x94)
    public static let packetTooLarge = ReasonCode(0x95)
    public static let messageRateTooHigh = ReasonCode(0x96)
    public static let quotaExceeded = ReasonCode(0x97)
    public static let administrativeAction = ReasonCode(0x98)
    public static let payloadFormatInvalid = ReasonCode(0x99)
    public static let serverShuttingDown = ReasonCode(0x8B)
    public static let sharedSubscriptionsNotSupported = ReasonCode(0x9E)
    public static let subscriptionIdentifiersNotSupported = ReasonCode(0xA1)

    public var description: String { "0x" + String(rawValue, radix: 16, uppercase: true) }
}

/// One MQTT 5 property (§2.2.2.2), by its identifier's meaning. Which packet may carry which is
/// checked when a packet is read (`MQTTProperties.read`).
public enum MQTTProperty: Sendable, Equatable {
    case payloadFormatIndicator(UInt8)
    case messageExpiryInterval(UInt32)
    case contentType(String)
    case responseTopic(String)
    case correlationData(ByteBuffer)
    case subscriptionIdentifier(Int)
    case sessionExpiryInterval(UInt32)
    case assignedClientIdentifier(String)
    case serverKeepAlive(UInt16)
    case authenticationMethod(String)
    case authenticationData(ByteBuffer)
    case requestProblemInformation(UInt8)
    case willDelayInterval(UInt32)
    case requestResponseInformation(UInt8)
    case responseInformation(String)
    case serverReference(String)
    case reasonString(String)
    case receiveMaximum(UInt16)
    case topicAliasMaximum(UInt16)
    case topicAlias(UInt16)
    case maximumQoS(UInt8)
    case retainAvailable(UInt8)
    case userProperty(name: String, value: String)
    case maximumPacketSize(UInt32)
    case wildcardSubscriptionAvailable(UInt8)
    case subscriptionIdentifierAvailable(UInt8)
    case sharedSubscriptionAvailable(UInt8)

    /// The identifier written before the value.
    public var identifier: UInt8 {
        switch self {
        case .payloadFormatIndicator: 0x01
        case .messageExpiryInterval: 0x02
        case .contentType: 0x03
        case .responseTopic: 0x08
        case .correlationData: 0x09
        case .subscriptionIdentifier: 0x0B
        case .sessionExpiryInterval: 0x11
        case .assignedClientIdentifier: 0x12
        case .serverKeepAlive: 0x13
        case .authenticationMethod: 0x15
        case .authenticationData: 0x16
        case .requestProblemInformation: 0x17
        case .willDelayInterval: 0x18
        case .requestResponseInformation: 0x19
        case .responseInformation: 0x1A
        case .serverReference: 0x1C
        case .reasonString: 0x1F
        case .receiveMaximum: 0x21
        case .topicAliasMaximum: 0x22
        case .topicAlias: 0x23
        case .maximumQoS: 0x24
        case .retainAvailable: 0x25
        case .userProperty: 0x26
        case .maximumPacketSize: 0x27
        case .wildcardSubscriptionAvailable: 0x28
        case .subscriptionIdentifierAvailable: 0x29
        case .sharedSubscriptionAvailable: 0x2A
        }
    }
}

/// Where properties are read, for the check of which identifiers each place allows (§2.2.2.2).
public enum PropertyPlace: Sendable {
    case connect, will, connack, publish, ack, subscribe, suback, unsubscribe, unsuback, disconnect, auth

    func allows(_ id: UInt8) -> Bool {
        switch self {
        case .connect: [0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27].contains(id)
        case .will: [0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26].contains(id)
        case .connack:
            [0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A]
                .contains(id)
        // A subscription identifier in a PUBLISH only ever comes from a server (MQTT-3.3.4-6): it
        // is checked where the client's PUBLISH is read.
        case .publish: [0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26].contains(id)
        case .ack, .suback, .unsubscribe, .unsuback: id == 0x1F || id == 0x26
        case .subscribe: id == 0x0B || id == 0x26
        case .disconnect: [0x11, 0x1C, 0x1F, 0x26].contains(id)
        case .auth: [0x15, 0x16, 0x1F, 0x26].contains(id)
        }
    }
}

/// The properties of one MQTT 5 packet, in the order they came. An array of the few present:
/// empty, as in every 3.1.1 message, it costs one pointer and no allocation.
public struct MQTTProperties: Sendable, Equatable {
    public var items: [MQTTProperty]

    public init(_ items: [MQTTProperty] = []) { self.items = items }

    public static let none = MQTTProperties()

    public var isEmpty: Bool { items.isEmpty }

    private func first<T>(_ pick: (MQTTProperty) -> T?) -> T? {
        for item in items { if let value = pick(item) { return value } }
        return nil
    }

    /// Puts `item` in place of any property with its identifier (or removes them all, for nil).
    private mutating func set(_ id: UInt8, _ item: MQTTProperty?) {
        if let index = items.firstIndex(where: { $0.identifier == id }) {
            items.removeAll { $0.identifier == id }
            if let item { items.insert(item, at: min(index, items.count)) }
        } else if let item {
            items.append(item)
        }
    }

    public var messageExpiryInterval: UInt32? {
        get { first { if case let .messageExpiryInterval(v) = $0 { v } else { nil } } }
        set { set(0x02, newValue.map { .messageExpiryInterval($0) }) }
    }
    public var payloadFormatIndicator: UInt8? {
        first { if case let .payloadFormatIndicator(v) = $0 { v } else { nil } }
    }
    public var sessionExpiryInterval: UInt32? {
        get { first { if case let .sessionExpiryInterval(v) = $0 { v } else { nil } } }
        set { set(0x11, newValue.map { .sessionExpiryInterval($0) }) }
    }
    public var receiveMaximum: UInt16? { first { if case let .receiveMaximum(v) = $0 { v } else { nil } } }
    public var maximumPacketSize: UInt32? { first { if case let .maximumPacketSize(v) = $0 { v } else { nil } } }
    public var topicAliasMaximum: UInt16? { first { if case let .topicAliasMaximum(v) = $0 { v } else { nil } } }
    public var topicAlias: UInt16? {
        get { first { if case let .topicAlias(v) = $0 { v } else { nil } } }
        set { set(0x23, newValue.map { .topicAlias($0) }) }
    }
    public var willDelayInterval: UInt32? { first { if case let .willDelayInterval(v) = $0 { v } else { nil } } }
    public var authenticationMethod: String? {
        first { if case let .authenticationMethod(v) = $0 { v } else { nil } }
    }
    public var requestProblemInformation: UInt8? {
        first { if case let .requestProblemInformation(v) = $0 { v } else { nil } }
    }
    public var reasonString: String? {
        get { first { if case let .reasonString(v) = $0 { v } else { nil } } }
        set { set(0x1F, newValue.map { .reasonString($0) }) }
    }
    public var assignedClientIdentifier: String? {
        first { if case let .assignedClientIdentifier(v) = $0 { v } else { nil } }
    }
    public var responseTopic: String? { first { if case let .responseTopic(v) = $0 { v } else { nil } } }
    public var correlationData: ByteBuffer? { first { if case let .correlationData(v) = $0 { v } else { nil } } }
    public var contentType: String? { first { if case let .contentType(v) = $0 { v } else { nil } } }

    /// Subscription identifiers, in order (a PUBLISH from the server may carry several).
    public var subscriptionIdentifiers: [Int] {
        get { items.compactMap { if case let .subscriptionIdentifier(v) = $0 { v } else { nil } } }
        set {
            items.removeAll { $0.identifier == 0x0B }
            items.append(contentsOf: newValue.map { .subscriptionIdentifier($0) })
        }
    }

    public var userProperties: [(name: String, value: String)] {
        items.compactMap { if case let .userProperty(n, v) = $0 { (n, v) } else { nil } }
    }

    /// Drops reason strings and user properties: what a client that asked for no problem
    /// information (§3.1.2.11.7) must not get outside PUBLISH, CONNACK and DISCONNECT.
    public func withoutProblemInformation() -> MQTTProperties {
        MQTTProperties(items.filter { $0.identifier != 0x1F && $0.identifier != 0x26 })
    }

    // MARK: reading

    /// Reads the property length and the properties after it, checking that each belongs in
    /// `place`, appears at most once (but user properties, and subscription identifiers from a
    /// server), and holds an allowed value.
    static func read(_ body: inout ByteBuffer, place: PropertyPlace) throws(MQTTProtocolError) -> MQTTProperties {
        let length = try readVariableInteger(&body)
        guard var bytes = body.readSlice(length: length) else {
            throw .malformed("the properties run past the end of the packet")
        }
        var items: [MQTTProperty] = []
        var seen: UInt64 = 0
        while bytes.readableBytes > 0 {
            let id = try readVariableInteger(&bytes)
            guard id <= 0x2A, place.allows(UInt8(id)) else {
                throw .protocolError("property 0x\(String(id, radix: 16)) does not belong in this packet")
            }
            let repeatable = id == 0x26 || (id == 0x0B && place == .publish)
            if !repeatable {
                if seen & (1 << UInt64(id)) != 0 {
                    throw .protocolError("property 0x\(String(id, radix: 16)) appears twice")
                }
                seen |= 1 << UInt64(id)
            }
            items.append(try readValue(UInt8(id), &bytes))
        }
        return MQTTProperties(items)
    }

    private static func readValue(_ id: UInt8, _ b: inout ByteBuffer) throws(MQTTProtocolError) -> MQTTProperty {
        func byte(allowed: ClosedRange<UInt8> = 0...1) throws(MQTTProtocolError) -> UInt8 {
            guard let v = b.readInteger(as: UInt8.self) else { throw .malformed("a property is cut short") }
            guard allowed.contains(v) else {
                throw .protocolError("property 0x\(String(id, radix: 16)) has the value \(v)")
            }
            return v
        }
        func two(nonZero: Bool = false) throws(MQTTProtocolError) -> UInt16 {
            guard let v = b.readInteger(as: UInt16.self) else { throw .malformed("a property is cut short") }
            if nonZero, v == 0 { throw .protocolError("property 0x\(String(id, radix: 16)) must not be 0") }
            return v
        }
        func four(nonZero: Bool = false) throws(MQTTProtocolError) -> UInt32 {
            guard let v = b.readInteger(as: UInt32.self) else { throw .malformed("a property is cut short") }
            if nonZero, v == 0 { throw .protocolError("property 0x\(String(id, radix: 16)) must not be 0") }
            return v
        }
        func text() throws(MQTTProtocolError) -> String { try MQTTPacket.readString(&b) }
        func binary() throws(MQTTProtocolError) -> ByteBuffer {
            guard let length = b.readInteger(as: UInt16.self), let bytes = b.readSlice(length: Int(length)) else {
                throw .malformed("a property is cut short")
            }
            return bytes
        }
        switch id {
        case 0x01: return .payloadFormatIndicator(try byte())
        case 0x02: return .messageExpiryInterval(try four())
        case 0x03: return .contentType(try text())
        case 0x08:
            let topic = try text()
            // A response topic is a topic name: no wildcards (MQTT-3.3.2-14).
            if topic.isEmpty || topic.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }) {
                throw .protocolError("a response topic must be a topic name")
            }
            return .responseTopic(topic)
        case 0x09: return .correlationData(try binary())
        case 0x0B:
            let v = try readVariableInteger(&b)
            if v == 0 { throw .protocolError("a subscription identifier must not be 0") }
            return .subscriptionIdentifier(v)
        case 0x11: return .sessionExpiryInterval(try four())
        case 0x12: return .assignedClientIdentifier(try text())
        case 0x13: return .serverKeepAlive(try two())
        case 0x15: return .authenticationMethod(try text())
        case 0x16: return .authenticationData(try binary())
        case 0x17: return .requestProblemInformation(try byte())
        case 0x18: return .willDelayInterval(try four())
        case 0x19: return .requestResponseInformation(try byte())
        case 0x1A: return .responseInformation(try text())
        case 0x1C: return .serverReference(try text())
        case 0x1F: return .reasonString(try text())
        case 0x21: return .receiveMaximum(try two(nonZero: true))
        case 0x22: return .topicAliasMaximum(try two())
        case 0x23: return .topicAlias(try two(nonZero: true))
        case 0x24: return .maximumQoS(try byte())
        case 0x25: return .retainAvailable(try byte())
        case 0x26: return .userProperty(name: try text(), value: try text())
        case 0x27: return .maximumPacketSize(try four(nonZero: true))
        case 0x28: return .wildcardSubscriptionAvailable(try byte())
        case 0x29: return .subscriptionIdentifierAvailable(try byte())
        default: return .sharedSubscriptionAvailable(try byte())  // 0x2A; `read` lets no other id here
        }
    }

    /// A Variable Byte Integer (§1.5.5): at most four bytes, at most 268,435,455.
    static func readVariableInteger(_ b: inout ByteBuffer) throws(MQTTProtocolError) -> Int {
        var value = 0
        var multiplier = 1
        for _ in 0..<4 {
            guard let byte = b.readInteger(as: UInt8.self) else { throw .malformed("a variable integer is cut short") }
            value += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 { return value }
            multiplier *= 128
        }
        throw .malformed("a variable integer longer than four bytes")
    }

    /// The properties as written in a packet, for a store to keep; nil when there are none.
    public var stored: [UInt8]? {
        guard !items.isEmpty else { return nil }
        var out = ByteBuffer()
        write(to: &out)
        return Array(out.readableBytesView)
    }

    /// Properties a store kept (`stored`), read back with the same checks as from a packet.
    public init(stored bytes: [UInt8], place: PropertyPlace) throws(MQTTProtocolError) {
        var buffer = ByteBuffer(bytes: bytes)
        self = try Self.read(&buffer, place: place)
    }

    // MARK: writing

    static func writeVariableInteger(_ value: Int, _ out: inout ByteBuffer) {
        var rest = value
        repeat {
            var byte = UInt8(rest % 128)
            rest /= 128
            if rest > 0 { byte |= 0x80 }
            out.writeInteger(byte)
        } while rest > 0
    }

    static func variableIntegerSize(_ value: Int) -> Int {
        value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4
    }

    /// Writes the property length, then the properties.
    func write(to out: inout ByteBuffer) {
        if items.isEmpty {
            out.writeInteger(UInt8(0))
            return
        }
        var body = ByteBuffer()
        for item in items {
            Self.writeVariableInteger(Int(item.identifier), &body)
            switch item {
            case let .payloadFormatIndicator(v), let .requestProblemInformation(v), let .requestResponseInformation(v),
                let .maximumQoS(v), let .retainAvailable(v), let .wildcardSubscriptionAvailable(v),
                let .subscriptionIdentifierAvailable(v), let .sharedSubscriptionAvailable(v):
                body.writeInteger(v)
            case let .messageExpiryInterval(v), let .sessionExpiryInterval(v), let .willDelayInterval(v),
                let .maximumPacketSize(v):
                body.writeInteger(v)
            case let .serverKeepAlive(v), let .receiveMaximum(v), let .topicAliasMaximum(v), let .topicAlias(v):
                body.writeInteger(v)
            case let .contentType(s), let .responseTopic(s), let .assignedClientIdentifier(s),
                let .authenticationMethod(s), let .responseInformation(s), let .serverReference(s),
                let .reasonString(s):
                MQTTPacket.writeString(s, &body)
            case let .correlationData(d), let .authenticationData(d):
                body.writeInteger(UInt16(d.readableBytes))
                body.writeImmutableBuffer(d)
            case let .subscriptionIdentifier(v):
                Self.writeVariableInteger(v, &body)
            case let .userProperty(name, value):
                MQTTPacket.writeString(name, &body)
                MQTTPacket.writeString(value, &body)
            }
        }
        Self.writeVariableInteger(body.readableBytes, &out)
        out.writeBuffer(&body)
    }
}
