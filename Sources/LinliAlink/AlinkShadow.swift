import Foundation
import LinliThings

/// Alibaba's device shadow: one free-form JSON document per device, beside its thing model, with
/// what the device last reported, what the platform wants it to be, when each attribute was set
/// and one version for the whole. Devices written for Alibaba keep settings in it (a barrier
/// gate's opening hours, a camera's detection zones) and read it back after a restart; Link Kit
/// calls it `thing_update_shadow` and `thing_get_shadow`.
///
/// The device publishes requests on `/shadow/update/{pk}/{dn}` and gets every answer, and the
/// platform's changes (`"method": "control"`), on `/shadow/get/{pk}/{dn}`.
public struct ShadowDocument: Sendable, Equatable {
    public var reported: [String: JSONValue] = [:]
    public var desired: [String: JSONValue] = [:]
    /// When each attribute was last set, in seconds, as Alibaba's `metadata` gives it.
    public var reportedAt: [String: Int64] = [:]
    public var desiredAt: [String: Int64] = [:]
    /// Every accepted change names a version above this one; 0 before the first.
    public var version: Int64 = 0
    /// When the document last changed, in seconds.
    public var timestamp: Int64 = 0

    public init() {}

    /// Attributes one side may hold, as Alibaba allows.
    public static let attributeLimit = 128
    /// The largest document, written out, that is kept: beyond it a device is using the shadow
    /// as a store, which it is not.
    public static let sizeLimit = 16 * 1024

    /// `{"reported": {…}, "desired": {…}}`, each side only when it holds something.
    public var state: JSONValue {
        var state: [String: JSONValue] = [:]
        if !reported.isEmpty { state["reported"] = .object(reported) }
        if !desired.isEmpty { state["desired"] = .object(desired) }
        return .object(state)
    }

    /// `{"reported": {"color": {"timestamp": 1469564492}}, "desired": {…}}`.
    public var metadata: JSONValue {
        func side(_ times: [String: Int64]) -> JSONValue {
            .object(times.mapValues { .object(["timestamp": .int($0)]) })
        }
        var metadata: [String: JSONValue] = [:]
        if !reportedAt.isEmpty { metadata["reported"] = side(reportedAt) }
        if !desiredAt.isEmpty { metadata["desired"] = side(desiredAt) }
        return .object(metadata)
    }

    /// The whole document as it is stored and shown: state, metadata, version, timestamp.
    public var json: JSONValue {
        .object(["state": state, "metadata": metadata, "version": .int(version), "timestamp": .int(timestamp)])
    }

    /// Reads a document written by `json`; nil when it is not one.
    public init?(json: JSONValue) {
        guard case let .int(version)? = json["version"], case let .int(timestamp)? = json["timestamp"] else {
            return nil
        }
        self.version = version
        self.timestamp = timestamp
        if case let .object(r)? = json["state"]?["reported"] { reported = r }
        if case let .object(d)? = json["state"]?["desired"] { desired = d }
        func times(_ side: String) -> [String: Int64] {
            guard case let .object(items)? = json["metadata"]?[side] else { return [:] }
            return items.compactMapValues { if case let .int(t)? = $0["timestamp"] { t } else { nil } }
        }
        reportedAt = times("reported")
        desiredAt = times("desired")
    }

    /// The highest version a document may have: 2^53 − 1, the largest whole number every JSON
    /// reader keeps exactly.
    public static let maximumVersion: Int64 = 9_007_199_254_740_991

    /// The document after `request`, made at `now` (seconds). A `get` changes nothing.
    public func applying(_ request: ShadowRequest, at now: Int64) throws(ShadowFault) -> ShadowDocument {
        let change: ShadowRequest.State
        let version: Int64
        let deleting: Bool
        switch request {
        case .get: return self
        case let .update(state, v): (change, version, deleting) = (state, v, false)
        case let .delete(state, v): (change, version, deleting) = (state, v, true)
        }
        guard version > self.version else {
            throw ShadowFault(.versionConflict, "version \(version) is not above the shadow's version \(self.version)")
        }
        // Room is left above every version for the next one (and a JSON number a browser reads
        // exactly): a document at Int64.max could never change again.
        // A step of one past it is taken: a change that names no version counts on from any.
        guard version <= Self.maximumVersion || (self.version < .max && version == self.version + 1) else {
            throw ShadowFault(.invalidVersion, "version \(version) is above \(Self.maximumVersion)")
        }
        var next = self
        func apply(_ side: ShadowRequest.Side?, to values: inout [String: JSONValue], times: inout [String: Int64]) {
            switch side {
            case nil: break
            case .clear?:
                values = [:]
                times = [:]
            case let .attributes(items)?:
                for (name, value) in items {
                    // "null" (Alibaba's word) or null takes an attribute out; a delete takes out
                    // whatever it names.
                    if deleting || value == .null || value == .string("null") {
                        values[name] = nil
                        times[name] = nil
                    } else {
                        values[name] = value
                        times[name] = now
                    }
                }
            }
        }
        apply(change.reported, to: &next.reported, times: &next.reportedAt)
        apply(change.desired, to: &next.desired, times: &next.desiredAt)
        guard next.reported.count <= Self.attributeLimit, next.desired.count <= Self.attributeLimit else {
            throw ShadowFault(
                .tooManyAttributes,
                "a shadow holds at most \(Self.attributeLimit) reported and \(Self.attributeLimit) desired attributes")
        }
        next.version = version
        next.timestamp = now
        guard next.json.serialized().count <= Self.sizeLimit else {
            throw ShadowFault(
                .tooManyAttributes, "the shadow document would be larger than \(Self.sizeLimit / 1024) KiB")
        }
        return next
    }
}

/// What a device asks of its shadow on `/shadow/update/{pk}/{dn}`.
public enum ShadowRequest: Sendable, Equatable {
    /// `{"method": "get"}`: the whole document, answered on `/shadow/get/…`.
    case get
    /// `{"method": "update", "state": {"reported": {…}, "desired": "null"}, "version": n}`.
    case update(State, version: Int64)
    /// `{"method": "delete", "state": {"reported": {"color": "null"}} | {"reported": "null"}, "version": n}`.
    case delete(State, version: Int64)

    public struct State: Sendable, Equatable {
        public var reported: Side?
        public var desired: Side?
        public init(reported: Side? = nil, desired: Side? = nil) {
            self.reported = reported
            self.desired = desired
        }
    }

    /// One side of the document in a request: some attributes, or `"null"` for all of them.
    public enum Side: Sendable, Equatable {
        case clear
        case attributes([String: JSONValue])
    }

    /// Reads a request, or the fault Alibaba's shadow answers it with.
    public static func parse(_ payload: Data) -> Result<ShadowRequest, ShadowFault> {
        guard !payload.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) else {
            return .failure(ShadowFault(.empty, "the request is empty"))
        }
        guard case let .object(body)? = JSONValue.parse(payload) else {
            return .failure(ShadowFault(.invalidJSON, "the request is not a JSON object"))
        }
        guard let method = body["method"] else { return .failure(ShadowFault(.noMethod, "the request has no method")) }
        switch method {
        case .string("get"): return .success(.get)
        case .string("update"), .string("delete"): break
        default: return .failure(ShadowFault(.invalidMethod, "method must be get, update or delete"))
        }
        guard case let .object(stateBody)? = body["state"] else {
            return .failure(ShadowFault(.noState, "state must be an object with reported or desired"))
        }
        guard case let .int(version)? = body["version"], version >= 0 else {
            return .failure(ShadowFault(.invalidVersion, "version must be a whole number, above the shadow's version"))
        }
        var state = State()
        for (name, given) in [("reported", stateBody["reported"]), ("desired", stateBody["desired"])] {
            guard let given else { continue }
            let side: Side
            switch given {
            case .string("null"), .null: side = .clear
            case let .object(items):
                guard !items.isEmpty else {
                    return .failure(ShadowFault(.blankReported, "state.\(name) has no attributes"))
                }
                guard items.count <= ShadowDocument.attributeLimit else {
                    return .failure(
                        ShadowFault(
                            .tooManyAttributes,
                            "state.\(name) has more than \(ShadowDocument.attributeLimit) attributes"))
                }
                side = .attributes(items)
            default:
                return .failure(
                    ShadowFault(.blankReported, "state.\(name) must be an object of attributes or \"null\""))
            }
            if name == "reported" { state.reported = side } else { state.desired = side }
        }
        guard state.reported != nil || state.desired != nil else {
            return .failure(ShadowFault(.noReported, "state must name reported or desired"))
        }
        return .success(
            method == .string("update") ? .update(state, version: version) : .delete(state, version: version))
    }
}

/// A refused shadow request: Alibaba's error code and a message naming what is wrong.
public struct ShadowFault: Error, Sendable, Equatable {
    public enum Code: Int, Sendable {
        case invalidJSON = 400
        case noMethod = 401
        case noState = 402
        case invalidVersion = 403
        case noReported = 404
        case blankReported = 405
        case invalidMethod = 406
        case empty = 407
        case tooManyAttributes = 408
        case versionConflict = 409
        case serverError = 500
    }

    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// The shadow's topics and answers.
public enum AlinkShadow {
    public static func updateTopic(_ productKey: String, _ deviceName: String) -> String {
        "/shadow/update/\(productKey)/\(deviceName)"
    }
    public static func getTopic(_ productKey: String, _ deviceName: String) -> String {
        "/shadow/get/\(productKey)/\(deviceName)"
    }

    /// The device a `/shadow/update/{pk}/{dn}` topic is for; nil for any other topic.
    public static func parseUpdate(_ topic: String) -> (productKey: String, deviceName: String)? {
        // Every message a device sends that is not a post passes here: most leave at the prefix.
        guard topic.hasPrefix("/shadow/update/") else { return nil }
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "shadow", parts[2] == "update", !parts[3].isEmpty,
            !parts[4].isEmpty
        else { return nil }
        return (String(parts[3]), String(parts[4]))
    }

    /// The answer to an accepted update or delete.
    public static func accepted(version: Int64, at now: Int64) -> Data {
        JSONValue.object([
            "method": .string("reply"), "payload": .object(["status": .string("success"), "version": .int(version)]),
            "timestamp": .int(now),
        ]).serialized()
    }

    /// The whole document: the answer to a `get` (`reply`), or the platform's change (`control`).
    public static func document(_ document: ShadowDocument, method: String, at now: Int64) -> Data {
        JSONValue.object([
            "method": .string(method),
            "payload": .object(["status": .string("success"), "state": document.state, "metadata": document.metadata]),
            "version": .int(document.version), "timestamp": .int(now),
        ]).serialized()
    }

    /// The answer to a refused request; Alibaba writes the code as text.
    public static func refused(_ fault: ShadowFault, at now: Int64) -> Data {
        JSONValue.object([
            "method": .string("reply"),
            "payload": .object([
                "status": .string("error"),
                "content": .object([
                    "errorcode": .string(String(fault.code.rawValue)), "errormessage": .string(fault.message),
                ]),
            ]),
            "timestamp": .int(now),
        ]).serialized()
    }
}
