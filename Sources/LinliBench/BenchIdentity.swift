import Foundation
import LinliAlink
import LinliMQTT
import NIOCore

/// Who a simulated client is and where it posts. The CONNECT is made when the client connects,
/// because an Alink sign-in carries a timestamp the server checks for freshness.
public enum BenchIdentity: Sendable, Equatable {
    /// An Alink device: signed sign-in, posts to its own property topic.
    case alink(productKey: String, deviceName: String, secret: String)
    /// An anonymous client (for a broker like Mosquitto), posting to `bench/{index}`.
    case plain(clientId: String, index: Int)
    /// A client with a username and password (an integration account on Linli).
    case account(clientId: String, username: String, password: String)

    public func connect(keepAlive: UInt16, nowMillis: Int64) -> Connect {
        switch self {
        case let .alink(productKey, deviceName, secret):
            return Self.alinkConnect(
                productKey: productKey, deviceName: deviceName, secret: secret, keepAlive: keepAlive,
                nowMillis: nowMillis)
        case let .plain(clientId, _):
            return Connect(cleanSession: true, keepAlive: keepAlive, clientId: clientId)
        case let .account(clientId, username, password):
            return Connect(
                cleanSession: true, keepAlive: keepAlive, clientId: clientId, username: username,
                password: ByteBuffer(string: password))
        }
    }

    /// The topic a device posts its properties to.
    public var topic: String {
        switch self {
        case let .alink(productKey, deviceName, _): return "/sys/\(productKey)/\(deviceName)/thing/event/property/post"
        case let .plain(_, index): return "bench/\(index)"
        case let .account(clientId, _, _): return "bench/\(clientId)"
        }
    }

    /// Signs the way a Link Kit device does: the server's own `AlinkSignIn` reads back the parameters
    /// from the CONNECT, so the signed content is exactly what the server will check.
    static func alinkConnect(
        productKey: String, deviceName: String, secret: String, keepAlive: UInt16, nowMillis: Int64
    ) -> Connect {
        var connect = Connect(
            cleanSession: true, keepAlive: keepAlive,
            clientId: "\(deviceName)|securemode=3,signmethod=hmacsha256,timestamp=\(nowMillis)|",
            username: "\(deviceName)&\(productKey)", password: ByteBuffer())
        let content = AlinkSignIn(connect)!.signedContent  // the CONNECT above is Alink by construction
        connect.password = ByteBuffer(string: AlinkSignIn.sign(content, secret: secret, method: .hmacsha256))
        return connect
    }
}

/// The body of a property post, written straight into a buffer: the same shape as Link Kit's,
/// with values valid for the built-in `environment_sensor` product and varying with the sequence
/// number, so the server sees changing data rather than one cached string. Numbers are written as
/// digits into the buffer, not through `String`, because this runs for every post.
enum PropertyPost {
    private static let head: StaticString = "{\"id\":\""
    private static let beforeTemperature: StaticString = "\",\"version\":\"1.0\",\"params\":{\"CurrentTemperature\":"
    private static let beforeHumidity: StaticString = ",\"CurrentHumidity\":"
    private static let tail: StaticString = "},\"method\":\"thing.event.property.post\"}"
    /// Everything but the id's digits: the temperature is always `dd.d` (15.0 … 24.9) and the
    /// humidity `dd` (30 … 69), so only the id changes the length.
    static let fixedLength =
        head.utf8CodeUnitCount + beforeTemperature.utf8CodeUnitCount + 4
        + beforeHumidity.utf8CodeUnitCount + 2 + tail.utf8CodeUnitCount

    /// The payload's length in bytes, for the PUBLISH's remaining length before it is written.
    static func length(sequence: UInt64) -> Int { fixedLength + decimalDigits(sequence) }

    static func write(sequence: UInt64, into buffer: inout ByteBuffer) {
        let tenths = 150 + sequence % 100  // 15.0 … 24.9 °C, one decimal like the model's step
        let humidity = 30 + sequence % 40
        buffer.writeStaticString(head)
        writeDecimal(sequence, into: &buffer)
        buffer.writeStaticString(beforeTemperature)
        buffer.writeInteger(
            UInt32(digit(tenths / 100)) << 24 | UInt32(digit(tenths / 10 % 10)) << 16
                | UInt32(UInt8(ascii: ".")) << 8 | UInt32(digit(tenths % 10)))
        buffer.writeStaticString(beforeHumidity)
        buffer.writeInteger(UInt16(digit(humidity / 10)) << 8 | UInt16(digit(humidity % 10)))
        buffer.writeStaticString(tail)
    }

    private static func digit(_ value: UInt64) -> UInt8 { UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value) }

    static func decimalDigits(_ value: UInt64) -> Int {
        var digits = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        return digits
    }

    static func writeDecimal(_ value: UInt64, into buffer: inout ByteBuffer) {
        let digits = decimalDigits(value)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: digits) { out in
            var rest = value
            for i in stride(from: digits - 1, through: 0, by: -1) {
                out[i] = digit(rest % 10)
                rest /= 10
            }
            return digits
        }
    }

    /// Whether an Alink reply says success. The reply is compact JSON (`"code":200`) in any key order.
    static func isSuccessReply(_ payload: ByteBuffer) -> Bool {
        payload.withUnsafeReadableBytes { isSuccessReply($0) }
    }

    static func isSuccessReply(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let needle: StaticString = "\"code\":200"
        let count = needle.utf8CodeUnitCount
        guard bytes.count >= count else { return false }
        let first = needle.utf8Start[0]
        var start = 0
        while start <= bytes.count - count {
            if bytes[start] == first, memcmp(bytes.baseAddress! + start, needle.utf8Start, count) == 0 {
                // "code":2001 would be another code: the number must end here.
                let after = start + count
                return after == bytes.count || !(bytes[after] >= UInt8(ascii: "0") && bytes[after] <= UInt8(ascii: "9"))
            }
            start += 1
        }
        return false
    }
}
