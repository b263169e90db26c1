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
            return Self.alinkConnect(productKey: productKey, deviceName: deviceName, secret: secret, keepAlive: keepAlive, nowMillis: nowMillis)
        case let .plain(clientId, _):
            return Connect(cleanSession: true, keepAlive: keepAlive, clientId: clientId)
        case let .account(clientId, username, password):
            return Connect(cleanSession: true, keepAlive: keepAlive, clientId: clientId, username: username, password: ByteBuffer(string: password))
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
    static func alinkConnect(productKey: String, deviceName: String, secret: String, keepAlive: UInt16, nowMillis: Int64) -> Connect {
        var connect = Connect(cleanSession: true, keepAlive: keepAlive,
                              clientId: "\(deviceName)|securemode=3,signmethod=hmacsha256,timestamp=\(nowMillis)|",
                              username: "\(deviceName)&\(productKey)", password: ByteBuffer())
        let content = AlinkSignIn(connect)!.signedContent  // the CONNECT above is Alink by construction
        connect.password = ByteBuffer(string: AlinkSignIn.sign(content, secret: secret, method: .hmacsha256))
        return connect
    }
}

/// The body of a property post, written straight into a buffer: the same shape as Link Kit's,
/// with values valid for the built-in `environment_sensor` product and varying with the sequence
/// number, so the server sees changing data rather than one cached string.
enum PropertyPost {
    static func write(sequence: UInt64, into buffer: inout ByteBuffer) {
        let tenths = 150 + Int(sequence % 100)  // 15.0 … 24.9 °C, one decimal like the model's step
        buffer.writeStaticString("{\"id\":\"")
        buffer.writeString(String(sequence))
        buffer.writeStaticString("\",\"version\":\"1.0\",\"params\":{\"CurrentTemperature\":")
        buffer.writeString(String(tenths / 10))
        buffer.writeStaticString(".")
        buffer.writeString(String(tenths % 10))
        buffer.writeStaticString(",\"CurrentHumidity\":")
        buffer.writeString(String(30 + Int(sequence % 40)))
        buffer.writeStaticString("},\"method\":\"thing.event.property.post\"}")
    }

    /// Whether an Alink reply says success. The reply is compact JSON (`"code":200`) in any key order.
    static func isSuccessReply(_ payload: ByteBuffer) -> Bool {
        let needle = Array("\"code\":200".utf8)
        let bytes = payload.readableBytesView
        guard bytes.count >= needle.count else { return false }
        var start = bytes.startIndex
        let last = bytes.endIndex - needle.count
        while start <= last {
            if bytes[start] == needle[0], bytes[start..<start + needle.count].elementsEqual(needle) {
                // "code":2001 would be another code: the number must end here.
                let after = start + needle.count
                return after == bytes.endIndex || !(bytes[after] >= UInt8(ascii: "0") && bytes[after] <= UInt8(ascii: "9"))
            }
            start += 1
        }
        return false
    }
}
