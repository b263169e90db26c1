import Logging
import NIOCore
import Synchronization

/// Where a live connection's outgoing packets go, from the broker's shared state or from inside
/// Linli. Packets gather here and are written on the connection's event loop in one go, so under
/// load many share a flush. Held until the connection has sent its CONNACK: a resumed session's
/// messages must not overtake it.
final class Outbox: Sendable {
    private struct State {
        var packets: [MQTTPacket] = []
        var held = true
        var scheduled = false
        var finished = false
    }
    private let state = Mutex(State())
    private let loop: any EventLoop
    private let connection: NIOLoopBound<MQTTConnection>
    /// Closes the client's socket (session takeover, a device disabled).
    let close: @Sendable () -> Void

    init(loop: any EventLoop, connection: NIOLoopBound<MQTTConnection>, close: @escaping @Sendable () -> Void) {
        self.loop = loop
        self.connection = connection
        self.close = close
    }

    /// Queues a packet; dropped once the outbox is finished.
    func send(_ packet: MQTTPacket) {
        let schedule = state.withLock { s -> Bool in
            guard !s.finished else { return false }
            s.packets.append(packet)
            if s.held || s.scheduled { return false }
            s.scheduled = true
            return true
        }
        if schedule { loop.execute { self.drain() } }
    }

    /// On the connection's loop, once CONNACK is written: what was held goes now, the rest as it comes.
    func release() {
        state.withLock { $0.held = false }
        drain()
    }

    /// No more packets: what is already queued still goes.
    func finish() {
        state.withLock { $0.finished = true }
    }

    private func drain() {
        let packets = state.withLock { s -> [MQTTPacket] in
            s.scheduled = false
            defer { s.packets = [] }
            return s.packets
        }
        if !packets.isEmpty { connection.value.deliver(packets) }
    }
}

/// What the broker remembers of a client: its subscriptions and, for a persistent session, the
/// messages it has not yet acknowledged or not yet been sent.
struct Session {
    var clientId: String
    var persistent: Bool
    var subscriptions: [String: QoS] = [:]
    var outbox: Outbox?
    var connectionId: UInt64 = 0
    var nextPacketId: UInt16 = 0
    /// Sent at QoS 1 or 2 and not yet acknowledged (PUBACK, or PUBREC for QoS 2), each with
    /// when it was sent: a reconnection sends them again in that order (MQTT-4.6.0-1), which
    /// packet ids do not keep once they wrap.
    var inflight: [UInt16: (order: UInt64, message: Publish)] = [:]
    /// QoS 2 messages whose PUBREC came back, with when it did: PUBREL sent, PUBCOMP awaited.
    var released: [UInt16: UInt64] = [:]
    /// The order stamp for the next message sent or released.
    var stamp: UInt64 = 0
    /// A QoS 2 message takes room in the window until its PUBCOMP, not only until its PUBREC:
    /// otherwise a client that never completes would gather released ids without end.
    var inWindow: Int { inflight.count + released.count }
    /// Waiting for room in the in-flight window, or for the client to come back.
    var queued: [Publish] = []
    /// QoS 2 packet ids received and routed, waiting for their PUBREL (MQTT-4.3.3-2).
    var receivedQoS2: Set<UInt16> = []
    var dropped = 0

    mutating func takePacketId() -> UInt16 {
        repeat {
            nextPacketId = nextPacketId == UInt16.max ? 1 : nextPacketId + 1
        } while inflight[nextPacketId] != nil || released[nextPacketId] != nil
        return nextPacketId
    }

    /// What a reconnecting client gets again, before its queue: the unacknowledged messages with
    /// DUP set, in the order they were first sent (MQTT-4.6.0-1), then the PUBRELs in the order
    /// their PUBRECs came (MQTT-4.6.0-3).
    func redelivery() -> [MQTTPacket] {
        let unacknowledged = inflight.values.sorted { $0.order < $1.order }.map { sent -> MQTTPacket in
            var message = sent.message
            message.dup = true
            return .publish(message)
        }
        return unacknowledged + released.sorted { $0.value < $1.value }.map { .pubrel($0.key) }
    }

    /// PUBREC for a QoS 2 message in flight: it now waits for PUBCOMP. False for an id not in flight.
    mutating func release(_ packetId: UInt16) -> Bool {
        guard inflight.removeValue(forKey: packetId) != nil else { return false }
        stamp += 1
        released[packetId] = stamp
        return true
    }

    /// Gives the message a packet id and puts it in flight; returns it as sent.
    mutating func send(_ message: Publish) -> Publish {
        var outgoing = message
        let id = takePacketId()
        outgoing.packetId = id
        stamp += 1
        inflight[id] = (stamp, outgoing)
        return outgoing
    }
}

/// The broker's shared state: sessions, subscriptions and retained messages, behind one actor so
/// routing needs no locks. Connections talk to it; it talks back through their outboxes.
actor BrokerState {
    private var sessions: [String: Session] = [:]
    /// The same subscriptions as the sessions hold, by topic level, for routing.
    private var subscriptions = SubscriptionTree() {
        didSet { subscriptionCount.store(subscriptions.count, ordering: .relaxed) }
    }
    /// How many subscriptions there are, readable without entering the actor: a message nobody
    /// can receive (and that is not retained) need not be routed at all.
    nonisolated let subscriptionCount = Atomic<Int>(0)
    /// The outbox of every connected client, readable without entering the actor: a QoS 0 message
    /// to one client (a reply to a device) needs nothing else.
    nonisolated let outboxes = Mutex<[String: Outbox]>([:])
    private var retained: [String: Publish] = [:]
    private var nextConnectionId: UInt64 = 0
    private var connected = 0
    let configuration: MQTTBrokerConfiguration
    let logger: Logger

    init(configuration: MQTTBrokerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    var connectionCount: Int { connected }
    var retainedCount: Int { retained.count }

    /// Attaches a connection to its session, taking it over from an older connection with the
    /// same client id. Returns the connection's id and whether a session was already present.
    func attach(clientId: String, clean: Bool, outbox: Outbox) -> (connectionId: UInt64, sessionPresent: Bool)? {
        if sessions[clientId]?.outbox == nil, connected >= configuration.maxConnections { return nil }
        nextConnectionId += 1
        var sessionPresent = false
        if var existing = sessions[clientId] {
            if let old = existing.outbox {
                logger.info("session taken over", metadata: ["client": "\(clientId)"])
                old.finish()
                old.close()
                connected -= 1
            }
            if clean || !existing.persistent {
                forget(clientId)
            } else {
                sessionPresent = true
                existing.outbox = outbox
                existing.connectionId = nextConnectionId
                sessions[clientId] = existing
            }
        }
        if sessions[clientId] == nil || !sessionPresent {
            var session = Session(clientId: clientId, persistent: !clean)
            session.outbox = outbox
            session.connectionId = nextConnectionId
            sessions[clientId] = session
        }
        connected += 1
        outboxes.withLock { $0[clientId] = outbox }
        if sessionPresent { resend(clientId) }
        return (nextConnectionId, sessionPresent)
    }

    /// Closes a client's connection from the server's side (a device disabled by an operator).
    func disconnect(clientId: String) -> Bool {
        guard let outbox = sessions[clientId]?.outbox else { return false }
        outbox.finish()
        outbox.close()
        return true
    }

    /// The connection ended. A clean session is forgotten; a persistent one keeps its state.
    /// Returns false when a newer connection had already taken the session over.
    @discardableResult
    func detach(clientId: String, connectionId: UInt64) -> Bool {
        guard var session = sessions[clientId], session.connectionId == connectionId, session.outbox != nil else {
            return false
        }
        session.outbox?.finish()
        session.outbox = nil
        connected -= 1
        outboxes.withLock { _ = $0.removeValue(forKey: clientId) }
        if session.persistent {
            sessions[clientId] = session
        } else {
            forget(clientId)
        }
        return true
    }

    /// Drops a session and its subscriptions.
    private func forget(_ clientId: String) {
        guard let session = sessions.removeValue(forKey: clientId) else { return }
        for filter in session.subscriptions.keys { subscriptions.remove(filter, clientId: clientId) }
    }

    /// Subscribes and returns the granted QoS per filter; then sends the retained messages that match.
    func subscribe(clientId: String, _ subscriptions: [(Subscription, allowed: Bool)]) -> [UInt8] {
        guard var session = sessions[clientId] else { return subscriptions.map { _ in MQTTPacket.subackFailure } }
        var codes: [UInt8] = []
        for (s, allowed) in subscriptions {
            if allowed {
                session.subscriptions[s.filter] = s.qos
                self.subscriptions.insert(s.filter, clientId: clientId, qos: s.qos)
                codes.append(s.qos.rawValue)
            } else {
                codes.append(MQTTPacket.subackFailure)
            }
        }
        sessions[clientId] = session
        return codes
    }

    func retainedMessages(for filters: [Subscription]) -> [(Publish, QoS)] {
        var result: [(Publish, QoS)] = []
        for (topic, message) in retained.sorted(by: { $0.key < $1.key }) {
            let granted = filters.filter { Topic.matches(filter: $0.filter, name: topic) }.map(\.qos).max()
            if let granted { result.append((message, min(granted, message.qos))) }
        }
        return result
    }

    func deliverRetained(clientId: String, _ subscriptions: [Subscription]) {
        for (message, qos) in retainedMessages(for: subscriptions) {
            var copy = message
            copy.retain = true
            deliver(copy, qos: qos, to: clientId)
        }
    }

    func unsubscribe(clientId: String, _ filters: [String]) {
        for filter in filters where sessions[clientId]?.subscriptions.removeValue(forKey: filter) != nil {
            subscriptions.remove(filter, clientId: clientId)
        }
    }

    /// Routes a message to every session with a matching subscription, once per session at the
    /// highest QoS among its matching subscriptions (capped by the message's own QoS).
    func route(_ message: Publish) {
        if message.retain {
            if message.payload.readableBytes == 0 {
                retained[message.topic] = nil
            } else {
                var kept = message
                kept.dup = false
                kept.packetId = nil
                retained[message.topic] = kept
            }
        }
        for (clientId, best) in subscriptions.matches(message.topic) {
            var outgoing = message
            outgoing.retain = false  // MQTT-3.3.1-9: retain is set only for retained messages sent on subscribe
            deliver(outgoing, qos: min(best, message.qos), to: clientId)
        }
    }

    /// Sends a message to one client whether or not it subscribed: the platform addressing a device
    /// on its own system topics, as Alink platforms do. A matching subscription sets the QoS.
    func send(_ message: Publish, to clientId: String) {
        guard let session = sessions[clientId] else { return }
        let subscribed = session.subscriptions.filter { Topic.matches(filter: $0.key, name: message.topic) }.map(
            \.value
        ).max()
        deliver(message, qos: subscribed.map { min($0, message.qos) } ?? message.qos, to: clientId)
    }

    private func deliver(_ message: Publish, qos: QoS, to clientId: String) {
        guard var session = sessions[clientId] else { return }
        var outgoing = message
        outgoing.qos = qos
        outgoing.dup = false
        outgoing.packetId = nil
        if qos == .atMostOnce {
            // QoS 0 goes only to connected clients; nothing is kept for the absent.
            session.outbox?.send(.publish(outgoing))
            return
        }
        // Straight out only when nothing waits before it: messages to a client keep their order
        // (MQTT-4.6.0-6), also when room opens in the window while others are queued.
        if session.outbox != nil, session.queued.isEmpty, session.inWindow < configuration.inflightWindow {
            session.outbox?.send(.publish(session.send(outgoing)))
        } else if session.queued.count < configuration.queueLimit {
            session.queued.append(outgoing)
        } else {
            session.dropped += 1
            if session.dropped == 1 || session.dropped % 1000 == 0 {
                logger.warning(
                    "queue full: dropping messages",
                    metadata: ["client": "\(clientId)", "dropped": "\(session.dropped)"])
            }
        }
        sessions[clientId] = session
    }

    /// PUBACK for QoS 1, PUBCOMP for QoS 2: the message is done; room opens in the window.
    func acknowledged(clientId: String, packetId: UInt16) {
        guard var session = sessions[clientId] else { return }
        session.inflight[packetId] = nil
        session.released[packetId] = nil
        sessions[clientId] = session
        drainQueue(clientId)
    }

    /// PUBREC for an outgoing QoS 2 message: answer PUBREL and wait for PUBCOMP.
    func received(clientId: String, packetId: UInt16) {
        guard var session = sessions[clientId], session.release(packetId) else { return }
        sessions[clientId] = session
        session.outbox?.send(.pubrel(packetId))
    }

    /// An incoming QoS 2 PUBLISH: returns false when this id was already received (a duplicate
    /// that must not be routed again). Refuses (nil) when too many await their PUBREL.
    func firstReceiptOfQoS2(clientId: String, packetId: UInt16) -> Bool? {
        guard var session = sessions[clientId] else { return nil }
        if session.receivedQoS2.contains(packetId) { return false }
        if session.receivedQoS2.count >= configuration.inflightWindow { return nil }
        session.receivedQoS2.insert(packetId)
        sessions[clientId] = session
        return true
    }

    func releasedQoS2(clientId: String, packetId: UInt16) {
        sessions[clientId]?.receivedQoS2.remove(packetId)
    }

    /// On reconnection of a persistent session: unacknowledged messages again (DUP set), pending
    /// PUBRELs again, then the queue.
    private func resend(_ clientId: String) {
        guard let session = sessions[clientId], let outbox = session.outbox else { return }
        for packet in session.redelivery() { outbox.send(packet) }
        drainQueue(clientId)
    }

    private func drainQueue(_ clientId: String) {
        guard var session = sessions[clientId], session.outbox != nil else { return }
        while !session.queued.isEmpty, session.inWindow < configuration.inflightWindow {
            let message = session.queued.removeFirst()
            session.outbox?.send(.publish(session.send(message)))
        }
        sessions[clientId] = session
    }
}
