import LinliMQTT
import NIOCore

/// The broker's changes as one journal entry: a group commit writes them as a single row, and the
/// checkpoint reads them back to apply to the session tables. A kept message costs a few bytes in
/// one row instead of a row of its own for every session it is kept for, which is what made
/// keeping messages for offline subscribers slow; most of them (delivered within the same
/// checkpoint) never reach the tables at all.
///
/// The layout is Linli's own and versioned by its first byte; a change is a tag byte and its
/// fields, strings and byte strings with a 32-bit length before them.
enum BrokerJournal {
    static let version: UInt8 = 1

    struct Unreadable: Error, CustomStringConvertible {
        var description: String
    }

    static func encode(_ changes: [MQTTStateChange]) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: 64 * changes.count + 1)
        out.writeInteger(version)
        for change in changes {
            switch change {
            case let .session(clientId, username, connected, at, expiry):
                out.writeInteger(UInt8(1))
                out.string(clientId)
                out.optionalString(username)
                out.writeInteger(UInt8(connected ? 1 : 0))
                out.writeInteger(at)
                out.writeInteger(expiry)
            case let .sessionEnded(clientId):
                out.writeInteger(UInt8(2))
                out.string(clientId)
            case let .subscribed(clientId, subscription):
                out.writeInteger(UInt8(3))
                out.string(clientId)
                out.string(subscription.filter)
                out.writeInteger(subscription.optionsByte)
                out.optionalInteger(subscription.identifier.map(Int64.init))
            case let .unsubscribed(clientId, filter):
                out.writeInteger(UInt8(4))
                out.string(clientId)
                out.string(filter)
            case let .kept(clientId, message):
                out.writeInteger(UInt8(5))
                out.string(clientId)
                out.writeInteger(message.sequence)
                out.writeInteger(UInt8(message.released ? 1 : 0))
                out.publish(message.message)
            case let .released(clientId, sequence):
                out.writeInteger(UInt8(6))
                out.string(clientId)
                out.writeInteger(sequence)
            case let .delivered(clientId, sequence):
                out.writeInteger(UInt8(7))
                out.string(clientId)
                out.writeInteger(sequence)
            case let .receivedQoS2(clientId, packetId):
                out.writeInteger(UInt8(8))
                out.string(clientId)
                out.writeInteger(packetId)
            case let .releasedQoS2(clientId, packetId):
                out.writeInteger(UInt8(9))
                out.string(clientId)
                out.writeInteger(packetId)
            case let .retained(topic, message):
                out.writeInteger(UInt8(10))
                out.string(topic)
                out.writeInteger(UInt8(message == nil ? 0 : 1))
                if let message { out.publish(message) }
            case let .will(clientId, will):
                out.writeInteger(UInt8(11))
                out.string(clientId)
                out.writeInteger(UInt8(will == nil ? 0 : 1))
                if let will {
                    out.string(will.topic)
                    out.bytes(will.payload)
                    out.writeInteger(will.qos.rawValue)
                    out.writeInteger(UInt8(will.retain ? 1 : 0))
                    out.properties(will.properties)
                }
            case let .dropped(clientId, total):
                out.writeInteger(UInt8(12))
                out.string(clientId)
                out.writeInteger(Int64(total))
            }
        }
        return out
    }

    static func decode(_ entry: ByteBuffer) throws -> [MQTTStateChange] {
        var b = entry
        guard try b.integer(UInt8.self) == version else { throw Unreadable(description: "unknown journal version") }
        var changes: [MQTTStateChange] = []
        while b.readableBytes > 0 {
            let tag = try b.integer(UInt8.self)
            switch tag {
            case 1:
                let clientId = try b.string()
                let username = try b.optionalString()
                let connected = try b.integer(UInt8.self) == 1
                changes.append(
                    .session(
                        clientId: clientId, username: username, connected: connected, at: try b.integer(Int64.self),
                        expiry: try b.integer(Int64.self)))
            case 2: changes.append(.sessionEnded(clientId: try b.string()))
            case 3:
                let clientId = try b.string()
                let filter = try b.string()
                let options = try b.integer(UInt8.self)
                let identifier = try b.optionalInteger().map(Int.init)
                changes.append(
                    .subscribed(
                        clientId: clientId,
                        Subscription(
                            filter: filter, qos: try qos(options & 0x03), noLocal: options & 0x04 != 0,
                            retainAsPublished: options & 0x08 != 0, retainHandling: (options >> 4) & 0x03,
                            identifier: identifier)))
            case 4: changes.append(.unsubscribed(clientId: try b.string(), filter: try b.string()))
            case 5:
                let clientId = try b.string()
                let sequence = try b.integer(UInt64.self)
                let released = try b.integer(UInt8.self) == 1
                changes.append(
                    .kept(
                        clientId: clientId,
                        MQTTStoredMessage(sequence: sequence, message: try b.publish(), released: released)))
            case 6: changes.append(.released(clientId: try b.string(), sequence: try b.integer(UInt64.self)))
            case 7: changes.append(.delivered(clientId: try b.string(), sequence: try b.integer(UInt64.self)))
            case 8: changes.append(.receivedQoS2(clientId: try b.string(), packetId: try b.integer(UInt16.self)))
            case 9: changes.append(.releasedQoS2(clientId: try b.string(), packetId: try b.integer(UInt16.self)))
            case 10:
                let topic = try b.string()
                changes.append(.retained(topic: topic, try b.integer(UInt8.self) == 1 ? try b.publish() : nil))
            case 11:
                let clientId = try b.string()
                var will: Will?
                if try b.integer(UInt8.self) == 1 {
                    let topic = try b.string()
                    let payload = try b.bytes()
                    let qos = try qos(try b.integer(UInt8.self))
                    let retain = try b.integer(UInt8.self) == 1
                    will = Will(
                        topic: topic, payload: payload, qos: qos, retain: retain, properties: try b.properties(.will))
                }
                changes.append(.will(clientId: clientId, will))
            case 12: changes.append(.dropped(clientId: try b.string(), total: Int(try b.integer(Int64.self))))
            default: throw Unreadable(description: "unknown change \(tag)")
            }
        }
        return changes
    }

    private static func qos(_ value: UInt8) throws -> QoS {
        guard let qos = QoS(rawValue: value) else { throw Unreadable(description: "QoS \(value)") }
        return qos
    }
}

extension ByteBuffer {
    fileprivate mutating func string(_ value: String) {
        let at = writerIndex
        writeInteger(UInt32(0))
        let length = writeString(value)
        setInteger(UInt32(length), at: at)
    }

    fileprivate mutating func optionalString(_ value: String?) {
        writeInteger(UInt8(value == nil ? 0 : 1))
        if let value { string(value) }
    }

    fileprivate mutating func optionalInteger(_ value: Int64?) {
        writeInteger(UInt8(value == nil ? 0 : 1))
        if let value { writeInteger(value) }
    }

    fileprivate mutating func bytes(_ value: ByteBuffer) {
        writeInteger(UInt32(value.readableBytes))
        writeImmutableBuffer(value)
    }

    fileprivate mutating func properties(_ value: MQTTProperties) {
        if let stored = value.stored {
            writeInteger(UInt32(stored.count))
            writeBytes(stored)
        } else {
            writeInteger(UInt32(0))
        }
    }

    fileprivate mutating func publish(_ message: Publish) {
        string(message.topic)
        bytes(message.payload)
        writeInteger(message.qos.rawValue)
        writeInteger(UInt8(message.retain ? 1 : 0))
        properties(message.properties)
        optionalInteger(message.expiresAt)
    }

    fileprivate mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
        guard let value = readInteger(as: T.self) else { throw BrokerJournal.Unreadable(description: "cut short") }
        return value
    }

    fileprivate mutating func string() throws -> String {
        let length = Int(try integer(UInt32.self))
        guard let value = readString(length: length) else { throw BrokerJournal.Unreadable(description: "cut short") }
        return value
    }

    fileprivate mutating func optionalString() throws -> String? {
        try integer(UInt8.self) == 1 ? try string() : nil
    }

    fileprivate mutating func optionalInteger() throws -> Int64? {
        try integer(UInt8.self) == 1 ? try integer(Int64.self) : nil
    }

    fileprivate mutating func bytes() throws -> ByteBuffer {
        let length = Int(try integer(UInt32.self))
        guard let value = readSlice(length: length) else { throw BrokerJournal.Unreadable(description: "cut short") }
        return value
    }

    fileprivate mutating func properties(_ place: PropertyPlace) throws -> MQTTProperties {
        let length = Int(try integer(UInt32.self))
        guard length > 0 else { return .none }
        guard let bytes = readBytes(length: length) else { throw BrokerJournal.Unreadable(description: "cut short") }
        return try MQTTProperties(stored: bytes, place: place)
    }

    fileprivate mutating func publish() throws -> Publish {
        let topic = try string()
        let payload = try bytes()
        let qosValue = try integer(UInt8.self)
        guard let qos = QoS(rawValue: qosValue) else { throw BrokerJournal.Unreadable(description: "QoS \(qosValue)") }
        let retain = try integer(UInt8.self) == 1
        let properties = try properties(.publish)
        return Publish(
            topic: topic, payload: payload, qos: qos, retain: retain, properties: properties,
            expiresAt: try optionalInteger())
    }
}
