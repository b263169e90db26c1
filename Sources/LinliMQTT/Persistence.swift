import NIOCore

/// Where the broker keeps what it must not lose: persistent sessions (clean session 0) with their
/// subscriptions, the QoS 1 and 2 messages kept for them, the QoS 2 packet ids received and not yet
/// released, the wills of connected clients, and retained messages. The broker hands over changes
/// in the order it makes them; the store commits them in that order, many callers' changes in one
/// transaction (group commit), and says when each hand-over is committed. The broker answers what
/// a change promises (PUBACK, PUBREC, SUBACK, CONNACK with a session) only after that.
///
/// Without a store the broker keeps all of this in memory only.
public protocol MQTTSessionStore: Sendable {
    /// Everything stored, read once when the broker starts, before it listens.
    func load() async throws -> MQTTStoredState
    /// Takes the changes into the next commit and returns at once, without blocking; the
    /// completion says when they are committed (or why they could not be).
    func save(_ changes: [MQTTStateChange]) -> any SharedCompletion
}

/// What a store holds, as the broker reads it back after a restart.
public struct MQTTStoredState: Sendable {
    public var sessions: [MQTTStoredSession]
    /// Retained messages, by topic.
    public var retained: [Publish]
    /// The wills of clients that were connected when the broker stopped without publishing them
    /// (a crash ends every connection without DISCONNECT: MQTT-3.1.2-8).
    public var wills: [(clientId: String, will: Will)]

    public init(
        sessions: [MQTTStoredSession] = [], retained: [Publish] = [], wills: [(clientId: String, will: Will)] = []
    ) {
        self.sessions = sessions
        self.retained = retained
        self.wills = wills
    }
}

public struct MQTTStoredSession: Sendable, Equatable {
    public var clientId: String
    /// Who signed in last with this client id, for the pages that show an account's sessions.
    public var username: String?
    /// When the client was last seen going away (milliseconds since 1970); nil while connected,
    /// which after a restart means the broker stopped under it.
    public var disconnectedAt: Int64?
    public var subscriptions: [Subscription]
    /// In the order they were routed to the session (`sequence`).
    public var messages: [MQTTStoredMessage]
    public var receivedQoS2: [UInt16]
    /// Messages not kept because the session's queue was full, over its life.
    public var dropped: Int
    /// How long the session outlives its connection (milliseconds); nil for the broker's
    /// configured expiry (sessions stored before MQTT 5 said otherwise).
    public var expiryMillis: Int64?

    public init(
        clientId: String, username: String?, disconnectedAt: Int64?, subscriptions: [Subscription] = [],
        messages: [MQTTStoredMessage] = [], receivedQoS2: [UInt16] = [], dropped: Int = 0, expiryMillis: Int64? = nil
    ) {
        self.clientId = clientId
        self.username = username
        self.disconnectedAt = disconnectedAt
        self.subscriptions = subscriptions
        self.messages = messages
        self.receivedQoS2 = receivedQoS2
        self.dropped = dropped
        self.expiryMillis = expiryMillis
    }
}

/// A QoS 1 or 2 message kept for a session. Its packet id follows from its sequence number
/// (`Session.packetId(for:)`), so it is the same before and after a restart.
public struct MQTTStoredMessage: Sendable, Equatable {
    public var sequence: UInt64
    public var message: Publish
    /// A QoS 2 message whose PUBREC came back: only its PUBREL is still owed (with its packet id).
    public var released: Bool

    public init(sequence: UInt64, message: Publish, released: Bool) {
        self.sequence = sequence
        self.message = message
        self.released = released
    }
}

/// One change to what the broker keeps, in the order the broker made it.
public enum MQTTStateChange: Sendable, Equatable {
    /// A persistent session began, or its client came back (`connected` true) or went (false);
    /// `expiry`: how long it outlives its connection (milliseconds).
    case session(clientId: String, username: String?, connected: Bool, at: Int64, expiry: Int64)
    /// The session and all it held are gone: a clean start, an expiry.
    case sessionEnded(clientId: String)
    case subscribed(clientId: String, Subscription)
    case unsubscribed(clientId: String, filter: String)
    case kept(clientId: String, MQTTStoredMessage)
    /// PUBREC for an outgoing QoS 2 message: its PUBREL is owed now, not the message.
    case released(clientId: String, sequence: UInt64)
    /// PUBACK or PUBCOMP: the message is delivered.
    case delivered(clientId: String, sequence: UInt64)
    case receivedQoS2(clientId: String, packetId: UInt16)
    case releasedQoS2(clientId: String, packetId: UInt16)
    /// A retained message set, or cleared (nil).
    case retained(topic: String, Publish?)
    /// The will of a connected client, or none any more (a DISCONNECT, or published).
    case will(clientId: String, Will?)
    /// Messages dropped for a full queue, in all.
    case dropped(clientId: String, total: Int)
}

extension SharedCompletion {
    /// Waits until the work is done; throws its error.
    package func wait() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            whenDone { error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }
        }
    }
}
