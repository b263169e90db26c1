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

        /// SDKs write it as `hmacsha256` in the client id and `hmacSha256` in gateway requests.
        public init?(name: String) { self.init(rawValue: name.lowercased()) }
    }

    /// Reads the sign-in from a CONNECT; nil when it is not an Alink device sign-in at all.
    public init?(_ connect: Connect) {
        guard let username = connect.username, let password = connect.password.map({ String(buffer: $0) }) else {
            return nil
        }
        let userParts = username.split(separator: "&", omittingEmptySubsequences: false)
        guard userParts.count == 2, !userParts[0].isEmpty, !userParts[1].isEmpty else { return nil }
        let idParts = connect.clientId.split(separator: "|", omittingEmptySubsequences: false)
        guard idParts.count >= 2 else { return nil }
        var options: [String: String] = [:]
        for pair in idParts[1].split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { options[String(kv[0])] = String(kv[1]) }
        }
        guard let mode = options["securemode"].flatMap(Int.init),
            let method = options["signmethod"].flatMap(SignMethod.init(name:))
        else { return nil }
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
        Self.signedContent(
            clientId: clientId, deviceName: deviceName, productKey: productKey, timestamp: timestamp.map { String($0) })
    }

    static func signedContent(clientId: String, deviceName: String, productKey: String, timestamp: String?) -> String {
        var parts = ["clientId": clientId, "deviceName": deviceName, "productKey": productKey]
        if let timestamp { parts["timestamp"] = timestamp }
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
        return hex(mac)
    }

    /// Lowercase hex, two digits a byte. Every device sign-in computes one; String(format:) took
    /// a microsecond a byte, a tenth of a sign-in's time on the server.
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            for (i, byte) in bytes.enumerated() {
                out[2 * i] = digits[Int(byte >> 4)]
                out[2 * i + 1] = digits[Int(byte & 0x0f)]
            }
            return bytes.count * 2
        }
    }

    /// Whether the password is the right signature (compared in constant time, case-insensitively).
    public func verify(secret: String) -> Bool {
        Self.matches(Self.sign(signedContent, secret: secret, method: signMethod), given: password)
    }

    static func matches(_ expected: String, given: String) -> Bool {
        let expected = Array(expected.utf8)
        let given = Array(given.lowercased().utf8)
        guard expected.count == given.count else { return false }
        return zip(expected, given).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// Replay protection: the signed timestamp must be within `window` of now.
    public func isFresh(now: Date = Date(), window: TimeInterval = 15 * 60) -> Bool {
        guard let timestamp else { return false }
        return Self.isFresh(timestamp, now: now, window: window)
    }

    /// Devices send milliseconds (the C SDK) or seconds (the Python Link Kit); below 10^11 is seconds.
    static func isFresh(_ timestamp: Int64, now: Date, window: TimeInterval) -> Bool {
        let seconds = timestamp < 100_000_000_000 ? Double(timestamp) : Double(timestamp) / 1000
        return abs(seconds - now.timeIntervalSince1970) <= window
    }

    /// The topics a device may use: its own (see `AlinkTopicPolicy`).
    public var policy: AlinkTopicPolicy { AlinkTopicPolicy(productKey: productKey, deviceName: deviceName) }

    /// The topics a device may use, named by its product key and device name.
    public static func policy(productKey: String, deviceName: String) -> AlinkTopicPolicy {
        AlinkTopicPolicy(productKey: productKey, deviceName: deviceName)
    }
}

/// Alink's time service, for devices without a clock of their own (cheap sensors, meters): the
/// device publishes `{"deviceSendTime": "…"}` (its own clock, milliseconds) at QoS 0 on
/// `/ext/ntp/{pk}/{dn}/request`; the answer on `…/response` adds when the server received it and
/// when it answered, and the device takes the server's time as
/// `(serverRecvTime + serverSendTime + deviceRecvTime - deviceSendTime) / 2`. Since the `time` of
/// a measurement must be real UTC, this is how such a device gets one.
public enum AlinkTime {
    public static func requestTopic(_ productKey: String, _ deviceName: String) -> String {
        "/ext/ntp/\(productKey)/\(deviceName)/request"
    }
    public static func responseTopic(_ productKey: String, _ deviceName: String) -> String {
        "/ext/ntp/\(productKey)/\(deviceName)/response"
    }

    /// The device a request topic names; nil for any other topic.
    public static func parseRequest(_ topic: String) -> (productKey: String, deviceName: String)? {
        guard topic.hasPrefix("/ext/ntp/") else { return nil }
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0].isEmpty, parts[1] == "ext", parts[2] == "ntp", parts[5] == "request",
            !parts[3].isEmpty, !parts[4].isEmpty
        else { return nil }
        return (String(parts[3]), String(parts[4]))
    }

    /// The answer: the device's own send time echoed (when it gave one as a whole number of
    /// milliseconds, as text or number), and the server's receive and send times, as text like
    /// Alibaba's. A request without a usable send time still gets the server's times.
    public static func response(to payload: Data, receivedAt: Int64, sentAt: Int64) -> [UInt8] {
        var answer: [String: JSONValue] = [
            "serverRecvTime": .string(String(receivedAt)), "serverSendTime": .string(String(sentAt)),
        ]
        if case let .object(request)? = JSONValue.parse(payload) {
            switch request["deviceSendTime"] {
            case let .string(text)? where Int64(text).map({ $0 >= 0 }) == true: answer["deviceSendTime"] = .string(text)
            case let .int(n)? where n >= 0: answer["deviceSendTime"] = .string(String(n))
            default: break
            }
        }
        return Array(JSONValue.object(answer).serialized())
    }
}

/// Alibaba's RRPC, which is how a thing model's `sync` service is called: the platform publishes the
/// Alink request on `/ext/rrpc/{messageId}/sys/{pk}/{dn}/thing/service/{identifier}` and the device
/// publishes its Alink reply on that same topic. The messageId in the topic pairs the two, and
/// Alibaba waits for the reply at most 8 s. (An `async` service goes on `/sys/…/thing/service/{identifier}`
/// and is answered on `…_reply`.)
public enum AlinkRRPC {
    /// The longest a sync call waits for its reply, as on Alibaba's platform: the device answers
    /// while the caller is still there, or the call has failed.
    public static let longestWait: Duration = .seconds(8)

    /// Where a sync call to a device's service goes, and where its reply comes back.
    public static func serviceTopic(messageId: String, productKey: String, deviceName: String, identifier: String)
        -> String
    {
        "/ext/rrpc/\(messageId)/sys/\(productKey)/\(deviceName)/thing/service/\(identifier)"
    }

    /// The call a service's RRPC topic names; nil for any other topic. The messageId is digits, as
    /// Alibaba's and Linli's are; the other levels are written out, not wildcards.
    public static func parseService(_ topic: String) -> (
        messageId: String, productKey: String, deviceName: String, identifier: String
    )? {
        guard topic.hasPrefix(prefix) else { return nil }
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 10, parts[4] == "sys", parts[7] == "thing", parts[8] == "service" else { return nil }
        let messageId = parts[3]
        guard !messageId.isEmpty, messageId.utf8.count <= 32,
            messageId.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        for level in [parts[5], parts[6], parts[9]]
        where level.isEmpty || level.contains(where: { $0 == "+" || $0 == "#" }) { return nil }
        return (String(messageId), String(parts[5]), String(parts[6]), String(parts[9]))
    }

    /// The device whose RRPC topics a topic or subscription filter is under (`/ext/rrpc/{x}/sys/{pk}/{dn}/…`),
    /// with its key and name written out; nil otherwise. Says nothing of what the rest may be: that
    /// is the device's `policy`.
    public static func device(in topic: String) -> (productKey: String, deviceName: String)? {
        guard topic.hasPrefix(prefix) else { return nil }
        let parts = topic.split(separator: "/", maxSplits: 7, omittingEmptySubsequences: false)
        guard parts.count >= 7, parts[4] == "sys" else { return nil }
        let (pk, dn) = (parts[5], parts[6])
        guard !pk.isEmpty, !dn.isEmpty, !pk.contains(where: { $0 == "+" || $0 == "#" }),
            !dn.contains(where: { $0 == "+" || $0 == "#" })
        else { return nil }
        return (String(pk), String(dn))
    }

    private static let prefix = "/ext/rrpc/"
}

/// A sub-device's credentials as a gateway presents them in `thing.topo.add` and in a sub-device
/// login: the sub-device's key, name, client id and timestamp, signed with the sub-device's secret
/// (so a gateway can only bring in devices whose secrets it was given).
public struct SubDeviceSignIn: Sendable, Equatable {
    public var productKey: String
    public var deviceName: String
    public var clientId: String
    public var timestamp: String
    public var signMethod: AlinkSignIn.SignMethod
    public var sign: String

    public enum Fault: Error, Equatable, CustomStringConvertible {
        case missing(String)
        case unknownSignMethod(String)
        public var description: String {
            switch self {
            case let .missing(field): "\(field) is missing or not text"
            case let .unknownSignMethod(m): "signmethod \(m) is not one of hmacsha1, hmacsha256, hmacmd5"
            }
        }
    }

    /// Reads one entry; `signMethod` is for batch logins, which name it once for the whole list.
    public init(_ json: JSONValue, signMethod batchMethod: String? = nil) throws(Fault) {
        func text(_ key: String) throws(Fault) -> String {
            switch json[key] {
            case let .string(s)? where !s.isEmpty: return s
            case let .int(i)?: return String(i)
            default: throw .missing(key)
            }
        }
        productKey = try text("productKey")
        deviceName = try text("deviceName")
        clientId = try text("clientId")
        timestamp = try text("timestamp")
        sign = try text("sign")
        let methodName = json["signmethod"]?.text ?? json["signMethod"]?.text ?? batchMethod
        guard let methodName else { throw .missing("signMethod") }
        guard let method = AlinkSignIn.SignMethod(name: methodName) else { throw .unknownSignMethod(methodName) }
        signMethod = method
    }

    public func verify(secret: String) -> Bool {
        let content = AlinkSignIn.signedContent(
            clientId: clientId, deviceName: deviceName, productKey: productKey, timestamp: timestamp)
        return AlinkSignIn.matches(AlinkSignIn.sign(content, secret: secret, method: signMethod), given: sign)
    }

    public func isFresh(now: Date = Date(), window: TimeInterval = 15 * 60) -> Bool {
        guard let t = Int64(timestamp) else { return false }
        return AlinkSignIn.isFresh(t, now: now, window: window)
    }
}

/// What a gateway asks of the platform for its sub-devices.
public enum GatewayRequest: Equatable, Sendable {
    /// `/sys/{pk}/{dn}/thing/topo/add|delete|get`
    case topologyAdd, topologyDelete, topologyGet
    /// `/sys/{pk}/{dn}/thing/sub/register`: the secrets of registered sub-devices, for a gateway.
    case register
    /// `/ext/session/{pk}/{dn}/combine/login|batch_login|logout|batch_logout`
    case login(batch: Bool), logout(batch: Bool)

    /// Parses a gateway's own request topic; nil for any other topic.
    public static func parse(_ topic: String) -> (productKey: String, deviceName: String, request: GatewayRequest)? {
        // Every device message comes through here first; most have other than six slashes.
        guard topic.utf8.reduce(0, { $1 == UInt8(ascii: "/") ? $0 + 1 : $0 }) == 6 else { return nil }
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 7, parts[0].isEmpty else { return nil }
        if parts[1] == "sys", parts[4] == "thing", parts[5] == "topo" {
            let pk = String(parts[2])
            let dn = String(parts[3])
            switch parts[6] {
            case "add": return (pk, dn, .topologyAdd)
            case "delete": return (pk, dn, .topologyDelete)
            case "get": return (pk, dn, .topologyGet)
            default: return nil
            }
        }
        if parts[1] == "sys", parts[4] == "thing", parts[5] == "sub", parts[6] == "register" {
            return (String(parts[2]), String(parts[3]), .register)
        }
        if parts[1] == "ext", parts[2] == "session", parts[5] == "combine" {
            let gpk = String(parts[3])
            let gdn = String(parts[4])
            switch parts[6] {
            case "login": return (gpk, gdn, .login(batch: false))
            case "batch_login": return (gpk, gdn, .login(batch: true))
            case "logout": return (gpk, gdn, .logout(batch: false))
            case "batch_logout": return (gpk, gdn, .logout(batch: true))
            default: return nil
            }
        }
        return nil
    }
}

/// What a device's topic means.
public enum AlinkTopic: Equatable, Sendable {
    case propertyPost
    case eventPost(String)
    /// `thing/event/property/batch/post`: many timed values and events at once.
    case batchPost
    /// `thing/event/property/pack/post`: a gateway's values and events, and its sub-devices'.
    case packPost
    case propertySetReply
    case serviceReply(String)
    /// `thing/property/desired/get`: the device asks for desired values (all, or those it names).
    case desiredGet
    /// `thing/property/desired/delete`: the device is done with desired values.
    case desiredDelete
    /// `/ota/device/inform/{pk}/{dn}`: the device's firmware version.
    case firmwareInform
    /// `/ota/device/progress/{pk}/{dn}`: how far an upgrade got.
    case firmwareProgress
    /// `thing/ota/firmware/get`: the device asks whether a package waits for it.
    case firmwareGet
    /// `thing/deviceinfo/update` and `…/delete`: labels the device states about itself.
    case labelsUpdate
    case labelsDelete
    case other

    /// Parses `/sys/{pk}/{dn}/thing/...`; nil when the topic is not a device system topic.
    public static func parse(_ topic: String) -> (productKey: String, deviceName: String, kind: AlinkTopic)? {
        // Nearly every message is a property post: found without splitting the topic.
        if topic.hasPrefix(sysPrefix), topic.hasSuffix(propertyPostSuffix) {
            let utf8 = topic.utf8
            let start = utf8.index(utf8.startIndex, offsetBy: sysPrefix.utf8.count)
            let end = utf8.index(utf8.endIndex, offsetBy: -propertyPostSuffix.utf8.count)
            if start <= end, let slash = utf8[start..<end].firstIndex(of: UInt8(ascii: "/")),
                !utf8[utf8.index(after: slash)..<end].contains(UInt8(ascii: "/"))
            {
                return (String(topic[start..<slash]), String(topic[utf8.index(after: slash)..<end]), .propertyPost)
            }
        }
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count == 6, parts[0].isEmpty, parts[1] == "ota", parts[2] == "device",
            parts[3] == "inform" || parts[3] == "progress"
        {
            return (String(parts[4]), String(parts[5]), parts[3] == "inform" ? .firmwareInform : .firmwareProgress)
        }
        guard parts.count >= 5, parts[0].isEmpty, parts[1] == "sys" else { return nil }
        let pk = String(parts[2])
        let dn = String(parts[3])
        let rest = parts[4...].joined(separator: "/")
        let kind: AlinkTopic
        if rest == "thing/event/property/post" {
            kind = .propertyPost
        } else if rest == "thing/event/property/batch/post" {
            kind = .batchPost
        } else if rest == "thing/event/property/pack/post" {
            kind = .packPost
        } else if rest == "thing/service/property/set_reply" {
            kind = .propertySetReply
        } else if rest == "thing/property/desired/get" {
            kind = .desiredGet
        } else if rest == "thing/property/desired/delete" {
            kind = .desiredDelete
        } else if rest == "thing/ota/firmware/get" {
            kind = .firmwareGet
        } else if rest == "thing/deviceinfo/update" {
            kind = .labelsUpdate
        } else if rest == "thing/deviceinfo/delete" {
            kind = .labelsDelete
        } else if parts.count == 8, parts[4] == "thing", parts[5] == "event", parts[7] == "post" {
            kind = .eventPost(String(parts[6]))
        } else if parts.count == 7, parts[4] == "thing", parts[5] == "service", parts[6].hasSuffix("_reply") {
            kind = .serviceReply(String(parts[6].dropLast("_reply".count)))
        } else {
            kind = .other
        }
        return (pk, dn, kind)
    }

    private static let sysPrefix = "/sys/"
    private static let propertyPostSuffix = "/thing/event/property/post"
}

/// Alink request and reply bodies: `{"id": "1", "version": "1.0", "params": {…}, "method": "…"}` and
/// `{"id": "1", "code": 200, "data": {}, "message": "success"}`.
public struct AlinkRequest: Sendable, Equatable {
    public var id: String
    public var params: JSONValue
    public var method: String?
    /// `"sys": {"ack": 0}` asks for no reply (a device that does not read them saves the traffic).
    public var wantsReply: Bool = true

    public static func parse(_ payload: Data) -> AlinkRequest? {
        payload.withUnsafeBytes { parse(bytes: $0) }
    }

    /// The same, over a message's payload in place. The top-level members are read one by one
    /// (the first of duplicates wins, as everywhere else), not gathered into a dictionary.
    public static func parse(bytes: UnsafeRawBufferPointer) -> AlinkRequest? {
        var id: JSONValue?
        var params: JSONValue?
        var method: JSONValue?
        var sys: JSONValue?
        let isObject = JSONValue.forEachMember(ofObject: bytes) { key, value in
            switch key {
            case "id": if id == nil { id = value }
            case "params": if params == nil { params = value }
            case "method": if method == nil { method = value }
            case "sys": if sys == nil { sys = value }
            default: break
            }
        }
        guard isObject, let params else { return nil }
        let text: String
        switch id {
        case let .string(s)?: text = s
        case let .int(i)?: text = String(i)
        default: return nil
        }
        var request = AlinkRequest(id: text, params: params, method: method?.text)
        if case let .int(ack)? = sys?["ack"], ack == 0 { request.wantsReply = false }
        return request
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
    /// A sub-device's signature is wrong or its timestamp is outside the replay window.
    public static let unauthorized = 401
    /// Too many sub-devices in one request, or online through one gateway.
    public static let tooMany = 429
    /// No such device (or not in the gateway's community, which a gateway is not told apart).
    public static let unknownDevice = 6100
    /// The device is disabled.
    public static let deviceDisabled = 6204
    /// The sub-device is not attached to this gateway (no topology relation).
    public static let notAttached = 6401
    /// A gateway cannot attach itself.
    public static let attachSelf = 6402
    /// The device sending is not a gateway, or the sub-device is not signed in through it.
    public static let notGateway = 6403
    public static let notSignedIn = 520

    public static func reply(id: String, code: Int, message: String, data: JSONValue = .object([:])) -> Data {
        JSONValue.object([
            "id": .string(id), "code": .int(Int64(code)), "data": data, "message": .string(message),
            "version": .string("1.0"),
        ]).serialized()
    }

    /// `reply(id:code: 200, message: "success")`, byte for byte, written without building a JSON
    /// value first: every accepted post gets one.
    public static func success(id: String) -> Data {
        Data(successBytes(id: id))
    }

    /// The same bytes, for writing straight into a message.
    public static func successBytes(id: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(72 + id.utf8.count)
        out.append(contentsOf: #"{"code":200,"data":{},"id":"#.utf8)
        if id.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") && $0 < 0x7F }) {
            // Nothing to escape (a counter, nearly always): quoted as it is.
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: id.utf8)
            out.append(UInt8(ascii: "\""))
        } else {
            out.append(contentsOf: JSONValue.string(id).serialized())  // escaped as any JSON string
        }
        out.append(contentsOf: #","message":"success","version":"1.0"}"#.utf8)
        return out
    }
}
