/// Who may connect, and what a connected client may do. The broker asks; Linli's device and
/// integration logic answers. Deny is the default of every implementation.
public protocol MQTTAuthenticator: Sendable {
    /// Decides on a CONNECT, knowing how the client reached the broker.
    func authenticate(_ connect: Connect, connection: MQTTConnectionInfo) async -> MQTTAuthentication
}

/// What the broker knows of a connection when it asks who may use it.
public struct MQTTConnectionInfo: Sendable, Equatable {
    /// The peer's address and port, for logs.
    public var remote: String?
    /// Where the client is, for throttling: the peer's address without its port, an IPv6 address
    /// by its /64 (which one host usually holds all of).
    public var place: String?
    /// Whether the client came in on the TLS listener (so the transport is encrypted).
    public var secure: Bool

    public init(remote: String?, place: String? = nil, secure: Bool) {
        self.remote = remote
        self.place = place
        self.secure = secure
    }
}

public enum MQTTAuthentication: Sendable {
    case accepted(any MQTTClientPolicy)
    case refused(ConnectReturnCode)
}

public protocol MQTTClientPolicy: Sendable {
    func mayPublish(to topic: String) -> Bool
    func maySubscribe(to filter: String) -> Bool
}

/// A policy from topic filter patterns: a client may publish to a topic that matches one of
/// `publish`, and subscribe with a filter that one of `subscribe` covers.
public struct TopicPolicy: MQTTClientPolicy {
    public var publish: [String]
    public var subscribe: [String]
    public init(publish: [String], subscribe: [String]) {
        self.publish = publish
        self.subscribe = subscribe
    }

    public func mayPublish(to topic: String) -> Bool {
        publish.contains { Topic.matches(filter: $0, name: topic) }
    }

    /// A requested filter is allowed when every topic it can match is allowed: it equals an allowed
    /// pattern, or is a narrower one (its wildcards stand where the pattern has wildcards too).
    public func maySubscribe(to filter: String) -> Bool {
        subscribe.contains { Topic.covers(pattern: $0, filter: filter) }
    }
}

extension Topic {
    /// Whether every topic `filter` matches is also matched by `pattern`.
    public static func covers(pattern: String, filter: String) -> Bool {
        let p = pattern.split(separator: "/", omittingEmptySubsequences: false)
        let f = filter.split(separator: "/", omittingEmptySubsequences: false)
        for (i, level) in p.enumerated() {
            if level == "#" { return true }
            guard i < f.count else { return false }
            if f[i] == "#" { return false }
            if level == "+" { continue }
            if f[i] != level { return false }
        }
        return p.count == f.count
    }
}
