import Crypto
import Foundation
import LinliMQTT
import LinliThings

/// A device's sign-in as Alink defines it: client id `{id}|securemode=3,signmethod=hmacsha256,timestamp=…|`,
/// username `{deviceName}&{productKey}`, password the HMAC of the sorted parameters with the device secret.
public struct AlinkSignIn: Sendable, Equatable {
    public var clientId: String
    public var productKey: String
    public var deviceName: String
    public var secureMode: Int
    public var signMethod: SignMethod
    public var timestamp: Int64?
    public var password: String

    public enum SignMethod: String, Sendable, CaseIterable {
        case hmacsha1, hmacsha256, hmacmd5
    }

    /// Reads the sign-in from a CONNECT; nil when it is not an Alink device sign-in at all.
    public init?(_ connect: Connect) {
        guard let username = connect.username, let password = connect.password.map({ String(buffer: $0) }) else { return nil }
        let userParts = username.split(separator: "&", omittingEmptySubsequences: false)
        guard userParts.count == 2, !userParts[0].isEmpty, !userParts[1].isEmpty else { return nil }
        let idParts = connect.clientId.split(separator: "|", omittingEmptySubsequences: false)
        guard idParts.count >= 2 else { return nil }
        var options: [String: String] = [:]
        for pair in idParts[1].split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { options[String(kv[0])] = String(kv[1]) }
        }
        guard let mode = options["securemode"].flatMap(Int.init), let method = options["signmethod"].flatMap(SignMethod.init(rawValue:)) else { return nil }
        clientId = String(idParts[0])
        deviceName = String(userParts[0])
        productKey = String(userParts[1])
        secureMode = mode
        signMethod = method
        timestamp = options["timestamp"].flatMap(Int64.init)
        self.password = password
    }

    /// The string a device signs: parameter names and values, sorted by name, concatenated.
    public var signedContent: String {
        var parts = ["clientId": clientId, "deviceName": deviceName, "productKey": productKey]
        if let timestamp { parts["timestamp"] = String(timestamp) }
        return parts.keys.sorted().map { $0 + parts[$0]! }.joined()
    }

    public static func sign(_ content: String, secret: String, method: SignMethod) -> String {
        let key = SymmetricKey(data: Data(secret.utf8))
        let data = Data(content.utf8)
        let mac: [UInt8]
        switch method {
        case .hmacsha1: mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: data, using: key))
        case .hmacsha256: mac = Array(HMAC<SHA256>.authenticationCode(for: data, using: key))
        case .hmacmd5: mac = Array(HMAC<Insecure.MD5>.authenticationCode(for: data, using: key))
        }
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    /// Whether the password is the right signature (compared in constant time, case-insensitively).
    public func verify(secret: String) -> Bool {
        let expected = Array(Self.sign(signedContent, secret: secret, method: signMethod).utf8)
        let given = Array(password.lowercased().utf8)
        guard expected.count == given.count else { return false }
        return zip(expected, given).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// Replay protection: the signed timestamp must be within `window` of now. Devices send
    /// milliseconds (the C SDK) or seconds (the Python Link Kit); anything below 10^11 is seconds.
    public func isFresh(now: Date = Date(), window: TimeInterval = 15 * 60) -> Bool {
        guard let timestamp else { return false }
        let seconds = timestamp < 100_000_000_000 ? Double(timestamp) : Double(timestamp) / 1000
        return abs(seconds - now.timeIntervalSince1970) <= window
    }

    /// The topics a device may use: its own system topics and its own custom topics.
    public var policy: TopicPolicy {
        let own = ["/sys/\(productKey)/\(deviceName)/#", "/\(productKey)/\(deviceName)/user/#"]
        // Firmware: the device tells its version on inform and listens for upgrades.
        return TopicPolicy(publish: own + ["/ota/device/inform/\(productKey)/\(deviceName)"],
                           subscribe: own + ["/ota/device/upgrade/\(productKey)/\(deviceName)"])
    }
}

/// What a device's topic means.
public enum AlinkTopic: Equatable, Sendable {
    case propertyPost
    case eventPost(String)
    case propertySetReply
    case serviceReply(String)
    /// `/ota/device/inform/{pk}/{dn}`: the device's firmware version.
    case firmwareInform
    case other

    /// Parses `/sys/{pk}/{dn}/thing/...`; nil when the topic is not a device system topic.
    public static func parse(_ topic: String) -> (productKey: String, deviceName: String, kind: AlinkTopic)? {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count == 6, parts[0].isEmpty, parts[1] == "ota", parts[2] == "device", parts[3] == "inform" {
            return (String(parts[4]), String(parts[5]), .firmwareInform)
        }
        guard parts.count >= 5, parts[0].isEmpty, parts[1] == "sys" else { return nil }
        let pk = String(parts[2]), dn = String(parts[3])
        let rest = parts[4...].joined(separator: "/")
        let kind: AlinkTopic
        if rest == "thing/event/property/post" {
            kind = .propertyPost
        } else if rest == "thing/service/property/set_reply" {
            kind = .propertySetReply
        } else if parts.count == 8, parts[4] == "thing", parts[5] == "event", parts[7] == "post" {
            kind = .eventPost(String(parts[6]))
        } else if parts.count == 7, parts[4] == "thing", parts[5] == "service", parts[6].hasSuffix("_reply") {
            kind = .serviceReply(String(parts[6].dropLast("_reply".count)))
        } else {
            kind = .other
        }
        return (pk, dn, kind)
    }
}

/// Alink request and reply bodies: `{"id": "1", "version": "1.0", "params": {…}, "method": "…"}` and
/// `{"id": "1", "code": 200, "data": {}, "message": "success"}`.
public struct AlinkRequest: Sendable, Equatable {
    public var id: String
    public var params: JSONValue
    public var method: String?

    public static func parse(_ payload: Data) -> AlinkRequest? {
        guard let json = JSONValue.parse(payload), case .object = json, let params = json["params"] else { return nil }
        let id: String
        switch json["id"] {
        case let .string(s)?: id = s
        case let .int(i)?: id = String(i)
        default: return nil
        }
        return AlinkRequest(id: id, params: params, method: json["method"]?.textValue)
    }
}

public enum AlinkCode {
    public static let success = 200
    /// The request is not an Alink request: not JSON, no id, no params.
    public static let invalidRequest = 460
    /// A value does not fit the thing model (wrong type, out of range, too long).
    public static let invalidValue = 6306
    /// The thing model has no such property, event or service.
    public static let unknownIdentifier = 6304
    /// The product has no thing model to check against.
    public static let noThingModel = 6250

    public static func reply(id: String, code: Int, message: String, data: JSONValue = .object([:])) -> Data {
        JSONValue.object(["id": .string(id), "code": .int(Int64(code)), "data": data, "message": .string(message), "version": .string("1.0")]).serialized()
    }
}

extension JSONValue {
    var textValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }
}
