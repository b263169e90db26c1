import NIOCore

/// Limits a reader enforces on what a peer may send.
public struct MQTTLimits: Sendable {
    /// Largest whole packet (fixed header included), in bytes.
    public var maxPacketSize: Int
    /// Most levels (`a/b/c` has three) in a topic name or filter.
    public var maxTopicLevels: Int
    /// Most filters in one SUBSCRIBE or UNSUBSCRIBE.
    public var maxFiltersPerRequest: Int

    public init(maxPacketSize: Int = 256 * 1024, maxTopicLevels: Int = 32, maxFiltersPerRequest: Int = 64) {
        self.maxPacketSize = maxPacketSize
        self.maxTopicLevels = maxTopicLevels
        self.maxFiltersPerRequest = maxFiltersPerRequest
    }
}

extension MQTTPacket {
    /// Reads one whole packet from `buffer` if it holds one. Returns nil, and leaves the buffer
    /// untouched, when more bytes are needed. Throws when the bytes cannot be MQTT.
    /// `version`: what the connection speaks, once its CONNECT (which says so itself) is read.
    public static func read(
        from buffer: inout ByteBuffer, limits: MQTTLimits, version: MQTTVersion = .v3_1_1
    ) throws(MQTTProtocolError) -> MQTTPacket? {
        var peek = buffer
        guard let first = peek.readInteger(as: UInt8.self) else { return nil }
        var remaining = 0
        var multiplier = 1
        var lengthBytes = 0
        while true {
            guard let byte = peek.readInteger(as: UInt8.self) else {
                // The length itself is incomplete; but a length can never take more than four bytes.
                if lengthBytes >= 4 { throw .malformedRemainingLength }
                return nil
            }
            lengthBytes += 1
            remaining += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 { break }
            if lengthBytes == 4 { throw .malformedRemainingLength }
            multiplier *= 128
        }
        let total = 1 + lengthBytes + remaining
        if total > limits.maxPacketSize { throw .packetTooLarge(size: total, limit: limits.maxPacketSize) }
        guard var body = peek.readSlice(length: remaining) else { return nil }
        buffer.moveReaderIndex(forwardBy: total)
        let packet = try parse(type: first >> 4, flags: first & 0x0F, body: &body, limits: limits, version: version)
        if body.readableBytes != 0 {
            throw .malformed("\(body.readableBytes) bytes left after the packet: its remaining length lies")
        }
        return packet
    }

    static func parse(
        type: UInt8, flags: UInt8, body: inout ByteBuffer, limits: MQTTLimits, version: MQTTVersion
    ) throws(MQTTProtocolError) -> MQTTPacket {
        func requireFlags(_ expected: UInt8) throws(MQTTProtocolError) {
            if flags != expected { throw .invalidFlags(type: type, flags: flags) }
        }
        let v5 = version == .v5
        /// An MQTT 5 acknowledgement's reason and properties, each left out when the rest is.
        func reasonAndProperties(_ place: PropertyPlace) throws(MQTTProtocolError) -> (ReasonCode, MQTTProperties) {
            guard v5, let code = body.readInteger(as: UInt8.self) else { return (.success, .none) }
            if body.readableBytes == 0 { return (ReasonCode(code), .none) }
            return (ReasonCode(code), try MQTTProperties.read(&body, place: place))
        }
        switch type {
        case 1:
            try requireFlags(0)
            return .connect(try readConnect(&body, limits: limits))
        case 2:
            try requireFlags(0)
            guard let ack = body.readInteger(as: UInt8.self), let code = body.readInteger(as: UInt8.self) else {
                throw .malformed("CONNACK is too short")
            }
            if v5 {
                guard ack & 0xFE == 0 else { throw .malformed("CONNACK has reserved bits") }
                let properties = try MQTTProperties.read(&body, place: .connack)
                let reason = ReasonCode(code)
                return .connack(
                    sessionPresent: ack & 1 == 1, returnCode: ConnectReturnCode(reason: reason), reason: reason,
                    properties: properties)
            }
            guard ack & 0xFE == 0, let returnCode = ConnectReturnCode(rawValue: code) else {
                throw .malformed("CONNACK has reserved bits or an unknown return code")
            }
            return .connack(sessionPresent: ack & 1 == 1, returnCode: returnCode)
        case 3:
            guard let qos = QoS(rawValue: (flags >> 1) & 0x03) else { throw .invalidFlags(type: type, flags: flags) }
            let topic = try readString(&body)
            var packetId: UInt16? = nil
            if qos != .atMostOnce {
                guard let id = body.readInteger(as: UInt16.self), id != 0 else {
                    throw .malformed("PUBLISH at QoS \(qos.rawValue) needs a non-zero packet identifier")
                }
                packetId = id
            } else if flags & 0x08 != 0 {
                throw .invalidFlags(type: type, flags: flags)  // DUP must be 0 at QoS 0
            }
            let properties = v5 ? try MQTTProperties.read(&body, place: .publish) : .none
            // MQTT 5: an empty topic stands for the one its topic alias was last given with.
            if !(topic.isEmpty && properties.topicAlias != nil) { try Topic.validateName(topic, limits: limits) }
            let payload = body.readSlice(length: body.readableBytes) ?? ByteBuffer()
            return .publish(
                Publish(
                    topic: topic, payload: payload, qos: qos, retain: flags & 0x01 == 1, dup: flags & 0x08 != 0,
                    packetId: packetId, properties: properties))
        case 4, 5, 6, 7:
            try requireFlags(type == 6 ? 0x02 : 0)
            guard let id = body.readInteger(as: UInt16.self) else {
                throw .malformed("acknowledgement without a packet identifier")
            }
            let (reason, properties) = try reasonAndProperties(.ack)
            switch type {
            case 4: return .puback(id, reason: reason, properties: properties)
            case 5: return .pubrec(id, reason: reason, properties: properties)
            case 6: return .pubrel(id, reason: reason, properties: properties)
            default: return .pubcomp(id, reason: reason, properties: properties)
            }
        case 8:
            try requireFlags(0x02)
            guard let id = body.readInteger(as: UInt16.self), id != 0 else {
                throw .malformed("SUBSCRIBE needs a non-zero packet identifier")
            }
            let properties = v5 ? try MQTTProperties.read(&body, place: .subscribe) : .none
            let identifier = properties.subscriptionIdentifiers.first
            var subscriptions: [Subscription] = []
            while body.readableBytes > 0 {
                let filter = try readString(&body)
                try Topic.validateFilter(filter, limits: limits)
                guard let options = body.readInteger(as: UInt8.self) else {
                    throw .malformed("SUBSCRIBE filter without its QoS")
                }
                guard options & (v5 ? 0xC0 : 0xFC) == 0, let qos = QoS(rawValue: options & 0x03) else {
                    throw .malformed("SUBSCRIBE options have reserved bits set, or a QoS that is not 0, 1 or 2")
                }
                let retainHandling = (options >> 4) & 0x03
                if retainHandling == 3 { throw .protocolError("SUBSCRIBE retain handling 3") }
                let noLocal = options & 0x04 != 0
                // MQTT-3.8.3-4: a shared subscription with No Local is a protocol error.
                if noLocal, Topic.shared(filter) != nil { throw .protocolError("No Local on a shared subscription") }
                subscriptions.append(
                    Subscription(
                        filter: filter, qos: qos, noLocal: noLocal, retainAsPublished: options & 0x08 != 0,
                        retainHandling: retainHandling, identifier: identifier))
                if subscriptions.count > limits.maxFiltersPerRequest {
                    throw .malformed("more than \(limits.maxFiltersPerRequest) filters in one SUBSCRIBE")
                }
            }
            if subscriptions.isEmpty { throw .protocolError("SUBSCRIBE without any filter") }
            return .subscribe(packetId: id, subscriptions: subscriptions, properties: properties)
        case 9:
            try requireFlags(0)
            guard let id = body.readInteger(as: UInt16.self) else {
                throw .malformed("SUBACK without a packet identifier")
            }
            let properties = v5 ? try MQTTProperties.read(&body, place: .suback) : .none
            let codes = body.readBytes(length: body.readableBytes) ?? []
            return .suback(packetId: id, returnCodes: codes, properties: properties)
        case 10:
            try requireFlags(0x02)
            guard let id = body.readInteger(as: UInt16.self), id != 0 else {
                throw .malformed("UNSUBSCRIBE needs a non-zero packet identifier")
            }
            let properties = v5 ? try MQTTProperties.read(&body, place: .unsubscribe) : .none
            var filters: [String] = []
            while body.readableBytes > 0 {
                let filter = try readString(&body)
                try Topic.validateFilter(filter, limits: limits)
                filters.append(filter)
                if filters.count > limits.maxFiltersPerRequest {
                    throw .malformed("more than \(limits.maxFiltersPerRequest) filters in one UNSUBSCRIBE")
                }
            }
            if filters.isEmpty { throw .protocolError("UNSUBSCRIBE without any filter") }
            return .unsubscribe(packetId: id, filters: filters, properties: properties)
        case 11:
            try requireFlags(0)
            guard let id = body.readInteger(as: UInt16.self) else {
                throw .malformed("UNSUBACK without a packet identifier")
            }
            guard v5 else { return .unsuback(id) }
            let properties = try MQTTProperties.read(&body, place: .unsuback)
            let reasons = (body.readBytes(length: body.readableBytes) ?? []).map(ReasonCode.init(rawValue:))
            return .unsuback(id, reasons: reasons, properties: properties)
        case 14 where v5:
            try requireFlags(0)
            let (reason, properties) = try reasonAndProperties(.disconnect)
            return .disconnect(reason: reason, properties: properties)
        case 15 where v5:
            try requireFlags(0)
            let (reason, properties) = try reasonAndProperties(.auth)
            return .auth(reason: reason, properties: properties)
        case 12, 13, 14:
            try requireFlags(0)
            if body.readableBytes != 0 { throw .malformed("PINGREQ, PINGRESP and DISCONNECT carry no body") }
            return type == 12 ? .pingreq : type == 13 ? .pingresp : .disconnect()
        default:
            throw .reservedPacketType(type)
        }
    }

    static func readConnect(_ body: inout ByteBuffer, limits: MQTTLimits) throws(MQTTProtocolError) -> Connect {
        let name = try readString(&body)
        guard let level = body.readInteger(as: UInt8.self) else { throw .malformed("CONNECT without a protocol level") }
        // "MQTT" level 4 is 3.1.1 and 5 is 5.0; "MQIsdp" level 3 is 3.1, which Linli also accepts
        // from older devices.
        guard (name == "MQTT" && (level == 4 || level == 5)) || (name == "MQIsdp" && level == 3) else {
            throw .unsupportedProtocol(name: name, level: level)
        }
        let v5 = level == 5
        guard let flags = body.readInteger(as: UInt8.self), let keepAlive = body.readInteger(as: UInt16.self) else {
            throw .malformed("CONNECT header is too short")
        }
        if flags & 0x01 != 0 { throw .malformed("CONNECT reserved flag is set") }
        let willFlag = flags & 0x04 != 0
        let willQoSBits = (flags >> 3) & 0x03
        let willRetain = flags & 0x20 != 0
        let hasPassword = flags & 0x40 != 0
        let hasUsername = flags & 0x80 != 0
        if !willFlag, willQoSBits != 0 || willRetain { throw .malformed("will QoS or retain set without a will") }
        guard let willQoS = QoS(rawValue: willQoSBits) else { throw .malformed("will QoS 3 is not allowed") }
        // MQTT 5 allows a password without a user name (MQTT-3.1.2-22 is 3.1.1's).
        if hasPassword, !hasUsername, !v5 { throw .malformed("a password without a username") }
        let properties = v5 ? try MQTTProperties.read(&body, place: .connect) : .none
        let clientId = try readString(&body)
        var will: Will? = nil
        if willFlag {
            let willProperties = v5 ? try MQTTProperties.read(&body, place: .will) : .none
            let topic = try readString(&body)
            try Topic.validateName(topic, limits: limits)
            guard let length = body.readInteger(as: UInt16.self), let payload = body.readSlice(length: Int(length))
            else { throw .malformed("will payload is cut short") }
            will = Will(topic: topic, payload: payload, qos: willQoS, retain: willRetain, properties: willProperties)
        }
        let username = hasUsername ? try readString(&body) : nil
        var password: ByteBuffer? = nil
        if hasPassword {
            guard let length = body.readInteger(as: UInt16.self), let bytes = body.readSlice(length: Int(length)) else {
                throw .malformed("password is cut short")
            }
            password = bytes
        }
        return Connect(
            protocolLevel: level, cleanSession: flags & 0x02 != 0, keepAlive: keepAlive, clientId: clientId, will: will,
            username: username, password: password, properties: properties)
    }

    /// A UTF-8 string with its two-byte length; U+0000 is not allowed (MQTT-1.5.3-2).
    static func readString(_ body: inout ByteBuffer) throws(MQTTProtocolError) -> String {
        guard let length = body.readInteger(as: UInt16.self), let bytes = body.readSlice(length: Int(length)) else {
            throw .malformed("a string runs past the end of the packet")
        }
        let view = bytes.readableBytesView
        guard let text = String(validating: view, as: UTF8.self) else { throw .invalidUTF8 }
        if view.contains(0) { throw .invalidUTF8 }
        return text
    }

    // MARK: writing

    /// Writes the packet as `version` has it: for 3.1.1, MQTT 5's reason codes and properties are
    /// left out (a failed SUBACK code is 0x80, a CONNACK reason its nearest return code).
    public func write(to out: inout ByteBuffer, version: MQTTVersion = .v3_1_1) {
        var body = ByteBuffer()
        let header: UInt8
        let v5 = version == .v5
        /// An MQTT 5 acknowledgement's tail: nothing for success without properties (§3.4.2.1).
        func tail(_ reason: ReasonCode, _ properties: MQTTProperties) {
            guard v5, reason != .success || !properties.isEmpty else { return }
            body.writeInteger(reason.rawValue)
            if !properties.isEmpty { properties.write(to: &body) }
        }
        switch self {
        case let .connect(c):
            header = 0x10
            Self.writeString(c.protocolLevel == 3 ? "MQIsdp" : "MQTT", &body)
            body.writeInteger(c.protocolLevel)
            var flags: UInt8 = c.cleanSession ? 0x02 : 0
            if let will = c.will { flags |= 0x04 | (will.qos.rawValue << 3) | (will.retain ? 0x20 : 0) }
            if c.username != nil { flags |= 0x80 }
            if c.password != nil { flags |= 0x40 }
            body.writeInteger(flags)
            body.writeInteger(c.keepAlive)
            let connect5 = c.protocolLevel == 5
            if connect5 { c.properties.write(to: &body) }
            Self.writeString(c.clientId, &body)
            if let will = c.will {
                if connect5 { will.properties.write(to: &body) }
                Self.writeString(will.topic, &body)
                body.writeInteger(UInt16(will.payload.readableBytes))
                body.writeImmutableBuffer(will.payload)
            }
            if let username = c.username { Self.writeString(username, &body) }
            if let password = c.password {
                body.writeInteger(UInt16(password.readableBytes))
                body.writeImmutableBuffer(password)
            }
        case let .connack(sessionPresent, code, reason, properties):
            header = 0x20
            body.writeInteger(UInt8(sessionPresent ? 1 : 0))
            if v5 {
                body.writeInteger((reason ?? code.reason).rawValue)
                properties.write(to: &body)
            } else {
                body.writeInteger(code.rawValue)
            }
        case let .publish(p):
            header = 0x30 | (p.dup ? 0x08 : 0) | (p.qos.rawValue << 1) | (p.retain ? 1 : 0)
            Self.writeString(p.topic, &body)
            if let id = p.packetId, p.qos != .atMostOnce { body.writeInteger(id) }
            if v5 { p.properties.write(to: &body) }
            body.writeImmutableBuffer(p.payload)
        case let .puback(id, reason, properties):
            header = 0x40
            body.writeInteger(id)
            tail(reason, properties)
        case let .pubrec(id, reason, properties):
            header = 0x50
            body.writeInteger(id)
            tail(reason, properties)
        case let .pubrel(id, reason, properties):
            header = 0x62
            body.writeInteger(id)
            tail(reason, properties)
        case let .pubcomp(id, reason, properties):
            header = 0x70
            body.writeInteger(id)
            tail(reason, properties)
        case let .subscribe(id, subscriptions, properties):
            header = 0x82
            body.writeInteger(id)
            if v5 { properties.write(to: &body) }
            for s in subscriptions {
                Self.writeString(s.filter, &body)
                body.writeInteger(v5 ? s.optionsByte : s.qos.rawValue)
            }
        case let .suback(id, codes, properties):
            header = 0x90
            body.writeInteger(id)
            if v5 {
                properties.write(to: &body)
                body.writeBytes(codes)
            } else {
                body.writeBytes(codes.map { $0 >= 0x80 ? MQTTPacket.subackFailure : $0 })
            }
        case let .unsubscribe(id, filters, properties):
            header = 0xA2
            body.writeInteger(id)
            if v5 { properties.write(to: &body) }
            for f in filters { Self.writeString(f, &body) }
        case let .unsuback(id, reasons, properties):
            header = 0xB0
            body.writeInteger(id)
            if v5 {
                properties.write(to: &body)
                body.writeBytes(reasons.map(\.rawValue))
            }
        case .pingreq: header = 0xC0
        case .pingresp: header = 0xD0
        case let .disconnect(reason, properties):
            header = 0xE0
            if v5, reason != .success || !properties.isEmpty {
                body.writeInteger(reason.rawValue)
                if !properties.isEmpty { properties.write(to: &body) }
            }
        case let .auth(reason, properties):
            header = 0xF0
            body.writeInteger(reason.rawValue)
            properties.write(to: &body)
        }
        out.writeInteger(header)
        MQTTProperties.writeVariableInteger(body.readableBytes, &out)
        out.writeBuffer(&body)
    }

    static func writeString(_ text: String, _ body: inout ByteBuffer) {
        body.writeInteger(UInt16(text.utf8.count))
        body.writeString(text)
    }
}
