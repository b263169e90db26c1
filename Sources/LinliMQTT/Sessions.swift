import Foundation
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

/// Messages waiting for a client, oldest first. Empty, it holds no storage: every connected device
/// has a session, and almost all of them have nothing waiting (a ring buffer allocated room for 16
/// per session). Taking from the front moves an index, not the elements.
struct MessageQueue {
    private var items: [(sequence: UInt64, message: Publish)] = []
    private var head = 0

    var count: Int { items.count - head }
    var isEmpty: Bool { head == items.count }
    var first: (sequence: UInt64, message: Publish)? { isEmpty ? nil : items[head] }

    mutating func append(_ item: (sequence: UInt64, message: Publish)) { items.append(item) }

    mutating func removeFirst() -> (sequence: UInt64, message: Publish) {
        let item = items[head]
        head += 1
        if head == items.count {
            items = []
            head = 0
        } else if head >= 1_024, head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return item
    }
}

/// What the broker remembers of a client: its subscriptions and, for a persistent session, the
/// messages it has not yet acknowledged or not yet been sent.
struct Session {
    var clientId: String
    /// How long the session outlives its connection, in milliseconds: 0 for a session that ends
    /// with it (3.1.1's clean session, MQTT 5's session expiry 0).
    var expiryMillis: Int64
    var persistent: Bool { expiryMillis > 0 }
    /// Who signed in with this client id last.
    var username: String? = nil
    /// By the filter as subscribed (`$share/{group}/…` for a shared subscription).
    var subscriptions: [String: Subscription] = [:]
    /// What the client's connection speaks, and what it said it can take (MQTT 5 receive maximum
    /// and maximum packet size).
    var version = MQTTVersion.v3_1_1
    var window: Int
    var maxPacketSize: Int? = nil
    var outbox: Outbox?
    var connectionId: UInt64 = 0
    /// The number of the next QoS 1 or 2 message routed to the session. A message's packet id
    /// follows from its number (`packetId(for:)`), so a message kept across a restart goes out
    /// again with the id it had: a QoS 2 receiver that holds the id knows it for a duplicate.
    var nextSequence: UInt64 = 0
    /// Sent at QoS 1 or 2 and not yet acknowledged (PUBACK, or PUBREC for QoS 2), with their
    /// numbers: a reconnection sends them again in that order (MQTT-4.6.0-1), which packet ids do
    /// not keep once they wrap.
    var inflight: [UInt16: (sequence: UInt64, message: Publish)] = [:]
    /// QoS 2 messages whose PUBREC came back, with when it did: PUBREL sent, PUBCOMP awaited.
    var released: [UInt16: (order: UInt64, sequence: UInt64)] = [:]
    /// The order stamp for the next PUBREC.
    var stamp: UInt64 = 0
    /// A QoS 2 message takes room in the window until its PUBCOMP, not only until its PUBREC:
    /// otherwise a client that never completes would gather released ids without end.
    var inWindow: Int { inflight.count + released.count }
    /// Waiting for room in the in-flight window, or for the client to come back, with their numbers.
    var queued = MessageQueue()
    /// QoS 2 packet ids received and routed, waiting for their PUBREL (MQTT-4.3.3-2).
    var receivedQoS2: Set<UInt16> = []
    /// Messages not kept because the queue was full, and how many of them the store knows of.
    var dropped = 0
    var droppedStored = 0
    /// When the client went away (milliseconds since 1970); nil while connected.
    var disconnectedAt: Int64? = nil

    init(clientId: String, expiryMillis: Int64, window: Int) {
        self.clientId = clientId
        self.expiryMillis = expiryMillis
        self.window = window
    }

    /// Packet ids 1…65535 in turn by message number.
    static func packetId(for sequence: UInt64) -> UInt16 { UInt16(sequence % 65_535) + 1 }

    /// Numbers a message routed to the session.
    mutating func number() -> UInt64 {
        defer { nextSequence += 1 }
        return nextSequence
    }

    /// Whether the next queued message may go out: there is room in the window and its packet id
    /// is not held by an older message still in flight (one stuck for 65,535 messages since).
    func mayDrain() -> Bool {
        guard let next = queued.first, inWindow < window else { return false }
        let id = Self.packetId(for: next.sequence)
        return inflight[id] == nil && released[id] == nil
    }

    /// What a reconnecting client gets again, before its queue: the unacknowledged messages with
    /// DUP set, in the order they were first sent (MQTT-4.6.0-1), then the PUBRELs in the order
    /// their PUBRECs came (MQTT-4.6.0-3).
    func redelivery() -> [MQTTPacket] {
        let unacknowledged = inflight.values.sorted { $0.sequence < $1.sequence }.map { sent -> MQTTPacket in
            var message = sent.message
            message.dup = true
            return .publish(message)
        }
        return unacknowledged + released.sorted { $0.value.order < $1.value.order }.map { .pubrel($0.key) }
    }

    /// PUBREC for a QoS 2 message in flight: it now waits for PUBCOMP. Returns its number; nil
    /// for an id not in flight.
    mutating func release(_ packetId: UInt16) -> UInt64? {
        guard let sent = inflight.removeValue(forKey: packetId) else { return nil }
        stamp += 1
        released[packetId] = (stamp, sent.sequence)
        return sent.sequence
    }

    /// PUBACK or PUBCOMP: the message is done. Returns its number; nil for an id not awaited.
    mutating func complete(_ packetId: UInt16) -> UInt64? {
        if let sent = inflight.removeValue(forKey: packetId) { return sent.sequence }
        return released.removeValue(forKey: packetId)?.sequence
    }

    /// Gives the message its packet id and puts it in flight; returns it as sent.
    mutating func send(_ message: Publish, sequence: UInt64) -> Publish {
        var outgoing = message
        let id = Self.packetId(for: sequence)
        outgoing.packetId = id
        inflight[id] = (sequence, outgoing)
        return outgoing
    }
}

/// The broker's shared state: sessions, subscriptions and retained messages, behind one actor so
/// routing needs no locks. Connections talk to it; it talks back through their outboxes.
///
/// With a store, every change to what must outlive the process (`MQTTStateChange`) is handed to
/// it in the order it is made; the methods whose answer promises something durable return the
/// store's completion, and their callers wait for it before answering the client.
actor BrokerState {
    private var sessions: [String: Session] = [:]
    /// The same subscriptions as the sessions hold, by topic level, for routing.
    private var subscriptions = SubscriptionTree() {
        didSet { subscriptionCount.store(subscriptions.count + shared.count, ordering: .relaxed) }
    }
    /// Shared subscriptions (`$share/{group}/{filter}`) by their filter, each keyed by
    /// `SharedKey`: a message that matches goes to one member of each group.
    private var shared = SubscriptionTree() {
        didSet { subscriptionCount.store(subscriptions.count + shared.count, ordering: .relaxed) }
    }
    /// Whose turn it is in each shared subscription.
    private var sharedTurn: [String: Int] = [:]
    /// Wills waiting for their delay (MQTT 5) after their connection ended, by client.
    private var delayedWills: [String: (connectionId: UInt64, will: Will, task: Task<Void, Never>)] = [:]
    /// How many subscriptions there are, readable without entering the actor: a message nobody
    /// can receive (and that is not retained) need not be routed at all.
    nonisolated let subscriptionCount = Atomic<Int>(0)
    /// Subscriptions of persistent sessions, readable without entering the actor: while there are
    /// none, a QoS 1 or 2 message that is not retained is acknowledged without waiting for its routing.
    nonisolated let persistentSubscriptionCount = Atomic<Int>(0)
    /// The outbox of every connected client, readable without entering the actor: a QoS 0 message
    /// to one client (a reply to a device) needs nothing else.
    nonisolated let outboxes = Mutex<[String: Outbox]>([:])
    private var retained: [String: Publish] = [:]
    private var nextConnectionId: UInt64 = 0
    private var connected = 0
    /// Clients whose will the store holds.
    private var storedWills: Set<String> = []
    /// Changes made in the current call, handed to the store at its end.
    private var changes: [MQTTStateChange] = []
    let store: (any MQTTSessionStore)?
    let configuration: MQTTBrokerConfiguration
    let logger: Logger
    let metrics: BrokerMetrics
    /// QoS 1 and 2 messages waiting in sessions' queues, in all.
    private var queuedMessages = 0 {
        didSet { metrics.queued.record(queuedMessages) }
    }

    init(configuration: MQTTBrokerConfiguration, store: (any MQTTSessionStore)? = nil, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        metrics = BrokerMetrics()
    }

    var connectionCount: Int { connected }
    var retainedCount: Int { retained.count }

    /// Hands the changes made so far to the store; nil when there are none (or no store).
    private func commit() -> (any SharedCompletion)? {
        guard let store, !changes.isEmpty else { return nil }
        defer { changes = [] }
        return store.save(changes)
    }

    private func keep(_ change: MQTTStateChange) {
        if store != nil { changes.append(change) }
    }

    /// The longest a session may outlive its connection: what 3.1.1's persistent sessions get,
    /// and the cap on what an MQTT 5 client asks for.
    nonisolated var expiryMillis: Int64 {
        let (seconds, attoseconds) = configuration.sessionExpiry.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    private static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: start

    /// Reads back what the store kept, before the broker listens: persistent sessions with their
    /// subscriptions and messages, retained messages; then publishes the wills of the clients the
    /// last run ended without a DISCONNECT, and forgets sessions past their expiry.
    func restore() async throws {
        guard let store else { return }
        let stored = try await store.load()
        let now = Self.now()
        for kept in stored.sessions {
            var session = Session(
                clientId: kept.clientId, expiryMillis: min(kept.expiryMillis ?? expiryMillis, expiryMillis),
                window: configuration.inflightWindow)
            session.username = kept.username
            session.disconnectedAt = kept.disconnectedAt ?? now
            if kept.disconnectedAt == nil {
                keep(
                    .session(
                        clientId: kept.clientId, username: kept.username, connected: false, at: now,
                        expiry: session.expiryMillis))
            }
            for s in kept.subscriptions {
                session.subscriptions[s.filter] = s
                insert(s, clientId: kept.clientId)
            }
            for m in kept.messages.sorted(by: { $0.sequence < $1.sequence }) {
                if m.released {
                    session.stamp += 1
                    session.released[Session.packetId(for: m.sequence)] = (session.stamp, m.sequence)
                } else {
                    session.queued.append((m.sequence, m.message))
                }
            }
            session.nextSequence = (kept.messages.map(\.sequence).max() ?? 0) + 1
            session.receivedQoS2 = Set(kept.receivedQoS2)
            session.dropped = kept.dropped
            session.droppedStored = kept.dropped
            queuedMessages += session.queued.count
            sessions[kept.clientId] = session
        }
        countPersistentSubscriptions()
        for message in stored.retained { retained[message.topic] = message }
        metrics.retained.record(retained.count)
        for (clientId, will) in stored.wills {
            logger.info("publishing the will of a client the last run ended", metadata: ["client": "\(clientId)"])
            routeWithin(will.message)
            keep(.will(clientId: clientId, nil))
        }
        expire(now: now)
        try await commit()?.wait()
        if !sessions.isEmpty || !retained.isEmpty {
            logger.info(
                "MQTT sessions restored",
                metadata: [
                    "sessions": "\(sessions.count)", "queued": "\(queuedMessages)", "retained": "\(retained.count)",
                ])
        }
    }

    private func countPersistentSubscriptions() {
        let count = sessions.values.reduce(0) { $0 + ($1.persistent ? $1.subscriptions.count : 0) }
        persistentSubscriptionCount.store(count, ordering: .relaxed)
        metrics.persistentSessions.record(sessions.values.count(where: \.persistent))
    }

    // MARK: sessions

    /// Attaches a connection to its session, taking it over from an older connection with the
    /// same client id. Returns the connection's id, whether a session was already present, and the
    /// store's completion to wait for before CONNACK (the session and the will kept).
    /// 3.1.1's clean session is a clean start and a session that ends with its connection; a
    /// persistent one lasts the configured expiry.
    func attach(clientId: String, clean: Bool, username: String? = nil, will: Will? = nil, outbox: Outbox) -> (
        connectionId: UInt64, sessionPresent: Bool, stored: (any SharedCompletion)?
    )? {
        attach(
            clientId: clientId, cleanStart: clean, expiry: clean ? 0 : expiryMillis, username: username, will: will,
            outbox: outbox)
    }

    /// `expiry`: how long the session may outlive this connection (ms; 0 for not at all), as the
    /// client asked, within `expiryMillis`. `window`, `maxPacketSize`: what an MQTT 5 client said
    /// it can take.
    func attach(
        clientId: String, cleanStart: Bool, expiry: Int64, version: MQTTVersion = .v3_1_1, window: Int? = nil,
        maxPacketSize: Int? = nil, username: String? = nil, will: Will? = nil, outbox: Outbox
    ) -> (connectionId: UInt64, sessionPresent: Bool, stored: (any SharedCompletion)?)? {
        if sessions[clientId]?.outbox == nil, connected >= configuration.maxConnections { return nil }
        nextConnectionId += 1
        var sessionPresent = false
        // MQTT-3.1.3-9: a will waiting for its delay is not sent once its client is back.
        if let delayed = delayedWills.removeValue(forKey: clientId) { delayed.task.cancel() }
        if let existing = sessions[clientId], existing.persistent, existing.outbox == nil,
            let away = existing.disconnectedAt, Self.now() - away >= existing.expiryMillis
        {
            // Came back after its session expired, before the sweep noticed.
            logger.info("persistent session expired", metadata: ["client": "\(clientId)"])
            forget(clientId)
            metrics.expired.increment()
        }
        let window = min(configuration.inflightWindow, window ?? .max)
        if var existing = sessions[clientId] {
            if let old = existing.outbox {
                logger.info("session taken over", metadata: ["client": "\(clientId)"])
                old.send(.disconnect(reason: .sessionTakenOver))
                old.finish()
                old.close()
                connected -= 1
            }
            if cleanStart || (!existing.persistent && existing.outbox == nil) {
                forget(clientId)
            } else {
                sessionPresent = true
                if existing.persistent, expiry == 0 { keep(.sessionEnded(clientId: clientId)) }
                existing.outbox = outbox
                existing.connectionId = nextConnectionId
                existing.username = username
                existing.disconnectedAt = nil
                existing.expiryMillis = expiry
                existing.version = version
                existing.window = window
                existing.maxPacketSize = maxPacketSize
                sessions[clientId] = existing
                if expiry > 0 {
                    // A session kept from now on holds what it had: the store learns of it all.
                    for s in existing.subscriptions.values { keep(.subscribed(clientId: clientId, s)) }
                }
            }
        }
        if sessions[clientId] == nil || !sessionPresent {
            var session = Session(clientId: clientId, expiryMillis: expiry, window: window)
            session.username = username
            session.outbox = outbox
            session.connectionId = nextConnectionId
            session.version = version
            session.maxPacketSize = maxPacketSize
            sessions[clientId] = session
        }
        if expiry > 0 {
            keep(.session(clientId: clientId, username: username, connected: true, at: Self.now(), expiry: expiry))
        }
        if expiry > 0 || sessionPresent { countPersistentSubscriptions() }
        if let will {
            keep(.will(clientId: clientId, will))
            storedWills.insert(clientId)
        } else if storedWills.remove(clientId) != nil {
            keep(.will(clientId: clientId, nil))
        }
        connected += 1
        outboxes.withLock { $0[clientId] = outbox }
        if sessionPresent { resend(clientId) }
        return (nextConnectionId, sessionPresent, commit())
    }

    /// Closes a client's connection from the server's side (a device disabled by an operator).
    func disconnect(clientId: String, reason: ReasonCode = .administrativeAction) -> Bool {
        guard let outbox = sessions[clientId]?.outbox else { return false }
        outbox.send(.disconnect(reason: reason))
        outbox.finish()
        outbox.close()
        return true
    }

    /// The connection ended; `will` is published (the connection ended without DISCONNECT), at
    /// once or after its delay (MQTT 5), but no later than the session's end. A session that ends
    /// with its connection is forgotten; a persistent one keeps its state. `expiry`: the session
    /// expiry an MQTT 5 DISCONNECT set. Returns false, doing nothing, when a newer connection had
    /// already taken the session over.
    @discardableResult
    func detach(clientId: String, connectionId: UInt64, will: Will? = nil, expiry: Int64? = nil) -> Bool {
        guard var session = sessions[clientId], session.connectionId == connectionId, session.outbox != nil else {
            return false
        }
        session.outbox?.finish()
        session.outbox = nil
        connected -= 1
        outboxes.withLock { _ = $0.removeValue(forKey: clientId) }
        if let expiry, session.persistent { session.expiryMillis = min(expiry, expiryMillis) }
        if session.persistent {
            let now = Self.now()
            session.disconnectedAt = now
            keep(
                .session(
                    clientId: clientId, username: session.username, connected: false, at: now,
                    expiry: session.expiryMillis))
            if session.dropped != session.droppedStored {
                keep(.dropped(clientId: clientId, total: session.dropped))
                session.droppedStored = session.dropped
            }
            sessions[clientId] = session
        } else {
            forget(clientId)
        }
        let delay = Int64(will?.properties.willDelayInterval ?? 0) * 1000
        if let will, delay > 0, session.persistent {
            // Kept in the store meanwhile: a restart before the delay is over publishes it then.
            let wait = min(delay, session.expiryMillis)
            let task = Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(wait))
                guard !Task.isCancelled else { return }
                await self?.publishDelayedWill(clientId: clientId, connectionId: connectionId)
            }
            delayedWills[clientId] = (connectionId, will, task)
        } else {
            if let will {
                // MQTT-3.1.2-8: the will is published when the connection ends without DISCONNECT.
                routeWithin(will.message)
            }
            if storedWills.remove(clientId) != nil { keep(.will(clientId: clientId, nil)) }
        }
        _ = commit()
        return true
    }

    private func publishDelayedWill(clientId: String, connectionId: UInt64) {
        guard let delayed = delayedWills[clientId], delayed.connectionId == connectionId else { return }
        delayedWills[clientId] = nil
        routeWithin(delayed.will.message)
        if storedWills.remove(clientId) != nil { keep(.will(clientId: clientId, nil)) }
        _ = commit()
    }

    /// Drops a session and its subscriptions.
    private func forget(_ clientId: String) {
        guard let session = sessions.removeValue(forKey: clientId) else { return }
        for s in session.subscriptions.values { remove(s.filter, clientId: clientId) }
        queuedMessages -= session.queued.count
        if session.persistent {
            keep(.sessionEnded(clientId: clientId))
            countPersistentSubscriptions()
        }
    }

    /// Forgets persistent sessions whose client has been away longer than their session expiry,
    /// and retained messages past their expiry (MQTT 5), and stores the drop counts that changed.
    /// Returns how many sessions expired.
    @discardableResult
    func expire(now: Int64) -> Int {
        var expired: [String] = []
        for (clientId, session) in sessions where session.persistent && session.outbox == nil {
            if let away = session.disconnectedAt, now - away >= session.expiryMillis { expired.append(clientId) }
        }
        for clientId in expired {
            logger.info("persistent session expired", metadata: ["client": "\(clientId)"])
            forget(clientId)
        }
        metrics.expired.increment(by: expired.count)
        for (topic, message) in retained where message.expiresAt.map({ $0 <= now }) == true {
            retained[topic] = nil
            keep(.retained(topic: topic, nil))
        }
        metrics.retained.record(retained.count)
        for (clientId, session) in sessions where session.dropped != session.droppedStored {
            keep(.dropped(clientId: clientId, total: session.dropped))
            sessions[clientId]?.droppedStored = session.dropped
        }
        _ = commit()
        return expired.count
    }

    // MARK: subscriptions

    /// Where a shared subscription's member sits in `shared`: the group and filter (the
    /// subscription's own name), then the client. MQTT strings hold no U+0000.
    private static func sharedKey(group: String, filter: String, clientId: String) -> String {
        group + "\u{0}" + filter + "\u{0}" + clientId
    }

    private func insert(_ s: Subscription, clientId: String) {
        if let (group, filter) = Topic.shared(s.filter) {
            shared.insert(filter, clientId: Self.sharedKey(group: group, filter: filter, clientId: clientId), s)
        } else {
            subscriptions.insert(s.filter, clientId: clientId, s)
        }
    }

    private func remove(_ filter: String, clientId: String) {
        if let (group, inner) = Topic.shared(filter) {
            shared.remove(inner, clientId: Self.sharedKey(group: group, filter: inner, clientId: clientId))
        } else {
            subscriptions.remove(filter, clientId: clientId)
        }
    }

    /// Subscribes and returns a code per filter (the granted QoS, or 0x87 for a filter the client
    /// may not use), the subscriptions that get the retained messages now (retain handling, never a
    /// shared one), and the store's completion to wait for before SUBACK.
    func subscribe(clientId: String, _ subscriptions: [(Subscription, allowed: Bool)]) -> (
        codes: [UInt8], retainedFor: [Subscription], stored: (any SharedCompletion)?
    ) {
        guard var session = sessions[clientId] else {
            return (subscriptions.map { _ in ReasonCode.unspecifiedError.rawValue }, [], nil)
        }
        var codes: [UInt8] = []
        var retainedFor: [Subscription] = []
        for (s, allowed) in subscriptions {
            guard allowed else {
                codes.append(ReasonCode.notAuthorized.rawValue)
                continue
            }
            let existed = session.subscriptions.updateValue(s, forKey: s.filter) != nil
            insert(s, clientId: clientId)
            if session.persistent { keep(.subscribed(clientId: clientId, s)) }
            codes.append(s.qos.rawValue)
            if Topic.shared(s.filter) == nil, s.retainHandling == 0 || (s.retainHandling == 1 && !existed) {
                retainedFor.append(s)
            }
        }
        sessions[clientId] = session
        if session.persistent { countPersistentSubscriptions() }
        return (codes, retainedFor, commit())
    }

    /// The retained messages that match `filters`, each once, at the highest QoS granted among
    /// the filters that match it (and no higher than its own), with their subscription ids.
    func retainedMessages(for filters: [Subscription]) -> [(Publish, QoS, [Int])] {
        var result: [(Publish, QoS, [Int])] = []
        let now = Self.now()
        for (topic, message) in retained.sorted(by: { $0.key < $1.key }) {
            if let deadline = message.expiresAt, deadline <= now { continue }
            let matching = filters.filter { Topic.matches(filter: $0.filter, name: topic) }
            guard let granted = matching.map(\.qos).max() else { continue }
            result.append((message, min(granted, message.qos), matching.compactMap(\.identifier)))
        }
        return result
    }

    func deliverRetained(clientId: String, _ subscriptions: [Subscription]) {
        guard !subscriptions.isEmpty else { return }
        for (message, qos, identifiers) in retainedMessages(for: subscriptions) {
            var copy = message
            copy.retain = true
            deliver(copy, qos: qos, to: clientId, identifiers: identifiers)
        }
        _ = commit()
    }

    /// Unsubscribes; returns a reason per filter (MQTT 5: success, or no subscription existed) and
    /// the store's completion to wait for before UNSUBACK.
    func unsubscribe(clientId: String, _ filters: [String]) -> (reasons: [ReasonCode], stored: (any SharedCompletion)?)
    {
        let persistent = sessions[clientId]?.persistent == true
        var reasons: [ReasonCode] = []
        for filter in filters {
            guard sessions[clientId]?.subscriptions.removeValue(forKey: filter) != nil else {
                reasons.append(.noSubscriptionExisted)
                continue
            }
            reasons.append(.success)
            remove(filter, clientId: clientId)
            if persistent { keep(.unsubscribed(clientId: clientId, filter: filter)) }
        }
        if persistent { countPersistentSubscriptions() }
        return (reasons, commit())
    }

    // MARK: messages

    /// Routes a message to every session with a matching subscription, once per session at the
    /// highest QoS among its matching subscriptions (capped by the message's own QoS), and to one
    /// member of each shared subscription that matches. `from`: the client that published it
    /// (for No Local). Returns the store's completion: the message is kept for every persistent
    /// session it went to, and as retained when it is.
    func route(_ message: Publish, from publisher: String? = nil) -> (any SharedCompletion)? {
        routeWithin(message, from: publisher)
        return commit()
    }

    /// Messages one client published one behind another, routed in order, kept in one hand-over.
    func route(_ messages: [Publish], from publisher: String? = nil) -> (any SharedCompletion)? {
        for message in messages { routeWithin(message, from: publisher) }
        return commit()
    }

    private func routeWithin(_ received: Publish, from publisher: String? = nil) {
        var message = received
        if message.expiresAt == nil, let interval = message.properties.messageExpiryInterval {
            message.expiresAt = Self.now() + Int64(interval) * 1000
        }
        if message.retain {
            if message.payload.readableBytes == 0 {
                if retained.removeValue(forKey: message.topic) != nil { keep(.retained(topic: message.topic, nil)) }
            } else {
                var kept = message
                kept.dup = false
                kept.packetId = nil
                retained[message.topic] = kept
                keep(.retained(topic: message.topic, kept))
            }
            metrics.retained.record(retained.count)
        }
        for (clientId, match) in subscriptions.matches(message.topic, from: publisher) {
            var outgoing = message
            // MQTT-3.3.1-9: retain is set only for retained messages sent on subscribe, unless the
            // subscription asks for it as published (MQTT 5).
            outgoing.retain = match.retainAsPublished && message.retain
            deliver(outgoing, qos: min(match.qos, message.qos), to: clientId, identifiers: match.identifiers)
        }
        if shared.count > 0 { routeShared(message) }
    }

    /// One member of each matching shared subscription gets the message, in turn: the connected
    /// members first; with none connected, the persistent sessions of those away keep it.
    private func routeShared(_ message: Publish) {
        var groups: [String: [(clientId: String, match: SubscriptionTree.Match)]] = [:]
        for (key, match) in shared.matches(message.topic) {
            guard let split = key.utf8.lastIndex(of: 0) else { continue }
            let clientId = String(key[key.utf8.index(after: split)...])
            groups[String(key[..<split]), default: []].append((clientId, match))
        }
        for (group, members) in groups {
            let sorted = members.sorted { $0.clientId < $1.clientId }
            let connected = sorted.filter { sessions[$0.clientId]?.outbox != nil }
            let pool = connected.isEmpty ? sorted.filter { sessions[$0.clientId]?.persistent == true } : connected
            guard !pool.isEmpty else { continue }
            let turn = sharedTurn[group, default: 0]
            sharedTurn[group] = turn &+ 1
            let (clientId, match) = pool[turn % pool.count]
            var outgoing = message
            outgoing.retain = match.retainAsPublished && message.retain
            deliver(outgoing, qos: min(match.qos, message.qos), to: clientId, identifiers: match.identifiers)
        }
    }

    /// Sends a message to one client whether or not it subscribed: the platform addressing a device
    /// on its own system topics, as Alink platforms do. A matching subscription sets the QoS.
    func send(_ message: Publish, to clientId: String) -> (any SharedCompletion)? {
        guard let session = sessions[clientId] else { return nil }
        let subscribed = session.subscriptions.values.filter { Topic.matches(filter: $0.filter, name: message.topic) }
            .map(\.qos).max()
        deliver(message, qos: subscribed.map { min($0, message.qos) } ?? message.qos, to: clientId)
        return commit()
    }

    /// Whether a message's expiry (MQTT 5) has passed; if not, its expiry interval is set to what
    /// is left, as the receiver is to see it (MQTT-3.3.2-6).
    private static func countDown(_ message: inout Publish, now: Int64) -> Bool {
        guard let deadline = message.expiresAt else { return true }
        let left = deadline - now
        guard left > 0 else { return false }
        message.properties.messageExpiryInterval = UInt32(clamping: (left + 999) / 1000)
        return true
    }

    /// Changes a session where it lies in the dictionary. A session copied out, changed and put
    /// back shares its queue's storage with the copy at the moment of the change, so every append
    /// copied the whole queue: a session holding 10,000 messages made each message cost 10,000.
    /// `body` must not touch `sessions` itself.
    private func withSession<T>(_ clientId: String, _ body: (inout Session) -> T) -> T? {
        guard let index = sessions.index(forKey: clientId) else { return nil }
        return body(&sessions.values[index])
    }

    private func deliver(_ message: Publish, qos: QoS, to clientId: String, identifiers: [Int] = []) {
        guard let index = sessions.index(forKey: clientId) else { return }
        var outgoing = message
        outgoing.qos = qos
        outgoing.dup = false
        outgoing.packetId = nil
        if !identifiers.isEmpty || !outgoing.properties.isEmpty {
            outgoing.properties.subscriptionIdentifiers = identifiers
        }
        if outgoing.expiresAt != nil, !Self.countDown(&outgoing, now: Self.now()) {
            metrics.expiredMessages.increment()
            return
        }
        if let limit = sessions.values[index].maxPacketSize {
            // MQTT-3.1.2-25: a packet larger than the client takes is not sent at all.
            var bytes = ByteBuffer()
            MQTTPacket.publish(
                Publish(
                    topic: outgoing.topic, payload: outgoing.payload, qos: qos, packetId: 1,
                    properties: outgoing.properties)
            ).write(to: &bytes, version: sessions.values[index].version)
            if bytes.readableBytes > limit {
                metrics.tooLarge.increment()
                logger.notice(
                    "message larger than the client's maximum packet size: not sent",
                    metadata: ["client": "\(clientId)", "bytes": "\(bytes.readableBytes)", "maximum": "\(limit)"])
                return
            }
        }
        if qos == .atMostOnce {
            // QoS 0 goes only to connected clients; nothing is kept for the absent.
            sessions.values[index].outbox?.send(.publish(outgoing))
            return
        }
        let queueLimit = configuration.queueLimit
        let kept = { (session: inout Session) -> Bool in
            // Straight out only when nothing waits before it: messages to a client keep their
            // order (MQTT-4.6.0-6), also when room opens in the window while others are queued.
            let direct = session.outbox != nil && session.queued.isEmpty && session.inWindow < session.window
            guard direct || session.queued.count < queueLimit else {
                session.dropped += 1
                metrics.dropped.increment()
                if session.persistent {
                    keep(.dropped(clientId: clientId, total: session.dropped))
                    session.droppedStored = session.dropped
                }
                if session.dropped == 1 || session.dropped % 1000 == 0 {
                    logger.warning(
                        "queue full: dropping messages",
                        metadata: ["client": "\(clientId)", "dropped": "\(session.dropped)"])
                }
                return false
            }
            let sequence = session.number()
            if session.persistent {
                keep(
                    .kept(clientId: clientId, MQTTStoredMessage(sequence: sequence, message: outgoing, released: false))
                )
            }
            session.queued.append((sequence, outgoing))
            return true
        }(&sessions.values[index])
        guard kept else { return }
        queuedMessages += 1
        drainQueue(clientId)
    }

    /// PUBACK for QoS 1, PUBCOMP for QoS 2 (or an MQTT 5 PUBREC with a failure, which ends the
    /// exchange): the message is done; room opens in the window.
    func acknowledged(clientId: String, packetId: UInt16) {
        acknowledged(clientId: clientId, packetIds: [packetId])
    }

    /// Several acknowledgements that came one behind another, in one turn.
    func acknowledged(clientId: String, packetIds: [UInt16]) {
        let persistent = sessions[clientId]?.persistent == true
        for packetId in packetIds {
            guard let done = withSession(clientId, { $0.complete(packetId) }), let sequence = done else { continue }
            if persistent { keep(.delivered(clientId: clientId, sequence: sequence)) }
        }
        drainQueue(clientId)
        // Nothing waits for this: at worst a crash sends the message once more.
        _ = commit()
    }

    /// PUBREC for an outgoing QoS 2 message: answer PUBREL and wait for PUBCOMP. For a persistent
    /// session the PUBREL goes once the store knows, so that after a crash the broker does not send
    /// the message again to a client that has completed it.
    func received(clientId: String, packetId: UInt16) {
        guard let done = withSession(clientId, { ($0.release(packetId), $0.persistent, $0.outbox) }),
            let sequence = done.0
        else { return }
        if done.1 { keep(.released(clientId: clientId, sequence: sequence)) }
        let outbox = done.2
        if let stored = commit() {
            stored.whenDone { error in if error == nil { outbox?.send(.pubrel(packetId)) } }
        } else {
            outbox?.send(.pubrel(packetId))
        }
    }

    /// An incoming QoS 2 PUBLISH: `first` is false when this id was already received (a duplicate
    /// that must not be routed again), with the store's completion to wait for before PUBREC.
    /// Refuses (nil) when too many await their PUBREL.
    func firstReceiptOfQoS2(clientId: String, packetId: UInt16) -> (first: Bool, stored: (any SharedCompletion)?)? {
        let window = configuration.inflightWindow
        let outcome = withSession(clientId) { session -> (first: Bool, persistent: Bool)? in
            if session.receivedQoS2.contains(packetId) { return (false, false) }
            if session.receivedQoS2.count >= window { return nil }
            session.receivedQoS2.insert(packetId)
            return (true, session.persistent)
        }
        guard let outcome, let (first, persistent) = outcome else { return nil }
        guard first else { return (false, nil) }
        if persistent { keep(.receivedQoS2(clientId: clientId, packetId: packetId)) }
        return (true, commit())
    }

    /// PUBREL from a publisher; `known` is false for an id not awaiting its release (MQTT 5
    /// answers PUBCOMP 0x92), with the store's completion to wait for before PUBCOMP (after which
    /// the client may use the id again for a new message).
    func releasedQoS2(clientId: String, packetId: UInt16) -> (known: Bool, stored: (any SharedCompletion)?) {
        let outcome = withSession(clientId) { ($0.receivedQoS2.remove(packetId) != nil, $0.persistent) }
        guard let (known, persistent) = outcome, known else { return (false, nil) }
        if persistent { keep(.releasedQoS2(clientId: clientId, packetId: packetId)) }
        return (true, commit())
    }

    /// On reconnection of a persistent session: unacknowledged messages again (DUP set), pending
    /// PUBRELs again, then the queue.
    private func resend(_ clientId: String) {
        // No copy of the session outlives this line: the queue is drained in place below.
        guard let (packets, outbox) = withSession(clientId, { s in s.outbox.map { (s.redelivery(), $0) } }) ?? nil
        else { return }
        for packet in packets { outbox.send(packet) }
        drainQueue(clientId)
    }

    /// Sends what the window has room for, oldest first; a message whose expiry passed while it
    /// waited is dropped instead (MQTT-3.3.2-5).
    private func drainQueue(_ clientId: String) {
        let sent =
            withSession(clientId) { session -> Int in
                guard session.outbox != nil else { return 0 }
                var sent = 0
                var now: Int64? = nil
                while session.mayDrain() {
                    var (sequence, message) = session.queued.removeFirst()
                    sent += 1
                    if message.expiresAt != nil {
                        let time = now ?? Self.now()
                        now = time
                        guard Self.countDown(&message, now: time) else {
                            metrics.expiredMessages.increment()
                            if session.persistent { keep(.delivered(clientId: clientId, sequence: sequence)) }
                            continue
                        }
                    }
                    session.outbox?.send(.publish(session.send(message, sequence: sequence)))
                }
                return sent
            } ?? 0
        queuedMessages -= sent
    }
}
