/// What one event loop's clients counted since the last reset; the run adds the loops together.
public struct BenchCounters: Sendable, Equatable {
    /// PUBLISH packets written by the devices.
    public var sent: UInt64 = 0
    /// PUBACKs that matched a message in flight.
    public var acked: UInt64 = 0
    /// publish → PUBACK, nanoseconds.
    public var latency = LatencyHistogram()
    /// Messages due by the pacing that no device could take: every window full or every socket
    /// backed up. The gap between the target rate and what was sent.
    public var notSent: UInt64 = 0
    /// Replies (`…/post_reply`) the server sent back to the devices, and how many said other than 200.
    public var replies: UInt64 = 0
    public var rejectedReplies: UInt64 = 0
    /// Messages the subscriber received (the broker relaying the devices' posts).
    public var relayed: UInt64 = 0
    /// PUBACKs for an id not in flight, and packets a server should not send.
    public var protocolErrors: UInt64 = 0
    /// Connections that closed after CONNACK without the generator asking.
    public var disconnects: UInt64 = 0
    /// QoS 1 messages still awaiting PUBACK when this was taken (a level, not a count of events).
    public var inflight: UInt64 = 0
    /// The first reply that was not a success, to show what the server objected to.
    public var firstRejection: String?

    public init() {}

    public mutating func merge(_ other: BenchCounters) {
        sent += other.sent
        acked += other.acked
        latency.merge(other.latency)
        notSent += other.notSent
        replies += other.replies
        rejectedReplies += other.rejectedReplies
        relayed += other.relayed
        protocolErrors += other.protocolErrors
        disconnects += other.disconnects
        inflight += other.inflight
        firstRejection = firstRejection ?? other.firstRejection
    }
}
