import Logging
import NIOCore
import NIOSSL
import Synchronization

/// One client's connection, from the socket's opening to its close, on the channel's event loop.
///
/// Everything a device's post needs on its way in happens here, without a task or a lock per
/// message: the rate limit, the topic check, the publish hook's fast path (`onPublishNow`), the
/// acknowledgements in arrival order, and writing them with one flush per read or per group
/// commit. What needs the broker's shared state — signing in, subscriptions, routing, QoS 2
/// bookkeeping, acknowledgements of deliveries, a publish hook that must await — goes, in the
/// order it arrived, to the connection's control task (`ConnectionControl`).
///
/// Reading pauses (TCP back-pressure) while the client is signing in, and while as many
/// messages as the in-flight window wait for their completion.
final class MQTTConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = MQTTPacket
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase { case waitingForConnect, signingIn, open, ended }

    /// A received PUBLISH waiting for its completion, then routed and acknowledged in arrival order.
    private struct Slot {
        var message: Publish
        var reply: Publish?
    }

    /// How far each slot is, kept apart from the slots so that looking costs no reference counting.
    private struct Marks: OptionSet {
        let rawValue: UInt8
        static let done = Marks(rawValue: 1)
        /// A QoS 2 duplicate: acknowledged again, not routed again.
        static let notRouted = Marks(rawValue: 2)
        /// Kept for every persistent session it went to, or needing no keeping: it may be acknowledged.
        static let stored = Marks(rawValue: 4)
        /// MQTT 5: to a topic this client may not publish to; acknowledged with 0x87, not routed.
        static let refused = Marks(rawValue: 8)
    }

    let broker: MQTTBroker
    private let secure: Bool
    private let gate: ConnectGate
    /// Held from the socket's opening until its CONNECT arrives (or it closes).
    private var waiting: ConnectGate.Ticket?
    private var context: ChannelHandlerContext?
    private var bound: NIOLoopBound<MQTTConnection>?
    private var mailbox: LoopMailbox?
    private var phase = Phase.waitingForConnect
    private var clientId = ""
    /// What the client speaks, from its CONNECT.
    private(set) var version = MQTTVersion.v3_1_1
    /// MQTT 5 topic aliases the client set, allocated on first use.
    private var topicAliases: [UInt16: String] = [:]
    /// MQTT 5: the session expiry the client connected with, in seconds; a DISCONNECT may change
    /// it but not from 0 (MQTT-3.14.2-2).
    private var sessionExpiry: UInt32 = 0
    private var disconnectExpiry: UInt32?
    private var policy: (any MQTTClientPolicy)?
    /// DISCONNECT arrived: no will.
    private var graceful = false
    /// Packets that arrived while the client was being signed in, handled once it is.
    private var backlog: [MQTTPacket] = []
    // One slot to start with (a slot holds two messages): most connections are devices that have
    // one message in flight at a time; a busy publisher's buffers grow to its window.
    private var slots = CircularBuffer<Slot>(initialCapacity: 1)
    private var marks = CircularBuffer<Marks>(initialCapacity: 1)
    /// The sequence number of `slots.first`; a message's number stays its own while earlier ones leave.
    private var firstSlot: UInt64 = 0
    /// How many slots, from the first, have been handed over for routing (in arrival order, as
    /// soon as their completion is in); those not yet stored wait there for their acknowledgement.
    private var routedSlots = 0
    /// Messages handed to the control task whose publish hook has not returned. While there are
    /// any, later messages follow them there, so the hook sees every message in arrival order.
    private var withControl = 0
    private var tokens: Double
    private var lastPublish = NIODeadline.now()
    private var readPending = false
    private var output: ByteBuffer?
    /// Set by a mailbox while it gathers the connections it will flush.
    var flushQueued = false
    private var control: ConnectionControl?
    private let window: Int

    init(broker: MQTTBroker, secure: Bool, gate: ConnectGate) {
        broker.liveConnections.add(1, ordering: .relaxed)
        self.broker = broker
        self.secure = secure
        self.gate = gate
        tokens = Double(broker.configuration.maxPublishesPerSecond)
        window = max(1, broker.configuration.inflightWindow)
    }

    deinit { broker.liveConnections.subtract(1, ordering: .relaxed) }

    /// The broker's logger with this connection's address and client id, made when something is
    /// logged (rarely) rather than kept: a stored copy's metadata cost every idle connection
    /// half a kilobyte.
    private var logger: Logger {
        Self.logger(broker.logger, channel: context?.channel, secure: secure, clientId: clientId)
    }

    static func logger(_ base: Logger, channel: (any Channel)?, secure: Bool, clientId: String) -> Logger {
        var logger = base
        logger[metadataKey: "remote"] = "\(channel?.remoteAddress?.description ?? "-")"
        if secure { logger[metadataKey: "tls"] = "true" }
        if !clientId.isEmpty { logger[metadataKey: "client"] = "\(clientId)" }
        return logger
    }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        mailbox = broker.mailboxes.mailbox(for: context.eventLoop)
        waiting = gate.admit(context.channel)
    }

    private func stopWaiting() {
        if let waiting { gate.leave(waiting) }
        waiting = nil
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ended()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        ended()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let packet = unwrapInboundIn(data)
        switch phase {
        case .waitingForConnect: first(packet, context: context)
        case .signingIn: backlog.append(packet)
        case .open: handle(packet)
        case .ended: break
        }
    }

    /// The keep-alive passed in silence: an MQTT 5 client is told why before the close.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ReadDeadlineHandler.Expired, phase == .open, version == .v5 {
            emit(.disconnect(reason: .keepAliveTimeout))
            flushOutput()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushOutput()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let MQTTProtocolError.unsupportedProtocol(name, level)
        where phase == .waitingForConnect && ["MQTT", "MQIsdp"].contains(name):
            // MQTT-3.1.2-2: a protocol level the broker does not speak gets CONNACK 1 before the
            // close, so a client can tell and fall back (an MQTT 5 client to 3.1.1, say).
            logger.notice(
                "connection refused: unsupported protocol level",
                metadata: ["protocol": "\(name)", "level": "\(level)"])
            refuse(.unacceptableProtocolVersion)
            return
        case let error as MQTTProtocolError:
            logger.notice("closing: protocol error", metadata: ["error": "\(error)"])
            if phase == .open { return disconnect(error.reason) }
        case NIOSSLError.handshakeFailed(.sslError([.eofDuringHandshake])):
            // Closed before the handshake was done: a port probe or a health check, not worth a notice.
            logger.debug("connection ended during the TLS handshake")
        case NIOSSLError.handshakeFailed(let error):
            // Not TLS at all, an old protocol version, or a client that distrusts our certificate.
            logger.notice("closing: TLS handshake failed", metadata: ["error": "\(error)"])
        default:
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }

    /// Reads only while there is room: the bytes of a client that sends faster than its messages
    /// complete stay in its socket.
    func read(context: ChannelHandlerContext) {
        if shouldPause {
            readPending = true
        } else {
            context.read()
        }
    }

    private var shouldPause: Bool {
        phase == .signingIn || slots.count >= window || withControl >= window
    }

    private func resumeReading() {
        guard readPending, !shouldPause, let context else { return }
        readPending = false
        context.read()
    }

    // MARK: signing in

    private func first(_ packet: MQTTPacket, context: ChannelHandlerContext) {
        stopWaiting()
        guard case let .connect(connect) = packet else {
            logger.notice("closing: first packet is not CONNECT")
            close()
            return
        }
        // CONNECT is here, so the connect timeout is met: from now on silence is measured against
        // the keep-alive (1.5 times it), also while the client is being signed in, which under
        // load can take longer than the connect timeout.
        let keepAlive: TimeAmount? = connect.keepAlive == 0 ? nil : .milliseconds(Int64(connect.keepAlive) * 1500)
        (try? context.pipeline.syncOperations.handler(type: ReadDeadlineHandler.self))?.connected(keepAlive: keepAlive)
        version = connect.version
        var clientId = connect.clientId
        if clientId.isEmpty {
            // MQTT-3.1.3-7/8: in 3.1.1 an empty id is allowed only for a clean session; MQTT 5
            // allows it always (MQTT-3.1.3-6). The broker assigns one, and tells a 5 client.
            guard connect.cleanSession || version == .v5 else { return refuse(.identifierRejected) }
            clientId = "linli-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        }
        if clientId.utf8.count > 256 { return refuse(.identifierRejected) }
        if version == .v5 {
            // Enhanced authentication (AUTH exchanges) is not offered: MQTT-3.1.2-? says to refuse.
            if connect.properties.authenticationMethod != nil {
                return refuse(.notAuthorized, reason: .badAuthenticationMethod)
            }
            sessionExpiry = connect.properties.sessionExpiryInterval ?? 0
        }
        self.clientId = clientId
        phase = .signingIn
        let control = ConnectionControl(
            broker: broker, connection: bound!, loop: context.eventLoop, channel: context.channel,
            secure: secure, clientId: clientId)
        self.control = control
        control.start(.signIn(connect, clientId: clientId))
    }

    /// Refused: CONNACK with the reason (MQTT 5's own, when more precise), then closed.
    func refuse(_ code: ConnectReturnCode, reason: ReasonCode? = nil) {
        emit(.connack(sessionPresent: false, returnCode: code, reason: reason))
        flushOutput()
        close()
    }

    /// Signed in and attached: CONNACK, then whatever the session had waiting for the client.
    func accepted(
        policy: any MQTTClientPolicy, sessionPresent: Bool, outbox: Outbox, properties: MQTTProperties = .none
    ) {
        guard phase == .signingIn else { return }
        self.policy = policy
        emit(.connack(sessionPresent: sessionPresent, returnCode: .accepted, properties: properties))
        outbox.release()
        flushOutput()
    }

    /// The client's presence is recorded: its messages are handled from now on, those that
    /// came meanwhile first.
    func opened() {
        guard phase == .signingIn else { return }
        phase = .open
        let waiting = backlog
        backlog = []
        for packet in waiting where phase == .open { handle(packet) }
        flushOutput()
        resumeReading()
    }

    // MARK: packets

    private func handle(_ packet: MQTTPacket) {
        switch packet {
        case let .publish(message):
            received(message)
        case .pingreq:
            emit(.pingresp)
        case .pubrel, .puback, .pubcomp, .pubrec, .subscribe, .unsubscribe:
            control?.send(.packet(packet))
        case let .disconnect(reason, properties):
            if let expiry = properties.sessionExpiryInterval {
                if sessionExpiry == 0, expiry != 0 {
                    logger.notice("closing: DISCONNECT gives a session expiry to a session without one")
                    return disconnect(.protocolError)
                }
                disconnectExpiry = expiry
            }
            // MQTT 5's 0x04 asks for the will all the same.
            graceful = reason != .disconnectWithWill
            close()
        case .connect:
            logger.notice("closing: a second CONNECT (MQTT-3.1.0-2)")
            disconnect(.protocolError)
        case .connack, .suback, .unsuback, .pingresp, .auth:
            // AUTH too: Linli offers no enhanced authentication, so none can be under way.
            logger.notice("closing: a packet only a server sends, or one not asked for")
            disconnect(.protocolError)
        }
    }

    /// Closes the connection, telling an MQTT 5 client why (§3.14) once it has its CONNACK.
    private func disconnect(_ reason: ReasonCode) {
        if version == .v5, phase == .open { emit(.disconnect(reason: reason)) }
        close()
    }

    /// An MQTT 5 PUBLISH as the broker routes it: its topic alias resolved and removed. Nil when
    /// the alias breaks the rules (the connection is being closed).
    private func resolveAlias(_ message: Publish) -> Publish? {
        var message = message
        if !message.properties.subscriptionIdentifiers.isEmpty {
            logger.notice("closing: a PUBLISH with a subscription identifier (MQTT-3.3.4-6)")
            disconnect(.protocolError)
            return nil
        }
        guard let alias = message.properties.topicAlias else { return message }
        guard alias <= broker.configuration.topicAliasMaximum else {
            logger.notice("closing: topic alias above the maximum", metadata: ["alias": "\(alias)"])
            disconnect(.topicAliasInvalid)
            return nil
        }
        if message.topic.isEmpty {
            guard let topic = topicAliases[alias] else {
                logger.notice("closing: a topic alias never set", metadata: ["alias": "\(alias)"])
                disconnect(.protocolError)
                return nil
            }
            message.topic = topic
        } else {
            topicAliases[alias] = message.topic
        }
        message.properties.topicAlias = nil
        return message
    }

    private func received(_ incoming: Publish) {
        var message = incoming
        if version == .v5 {
            guard let resolved = resolveAlias(incoming) else { return }
            message = resolved
        }
        let now = NIODeadline.now()
        let rate = Double(broker.configuration.maxPublishesPerSecond)
        tokens = min(rate, tokens + rate * Double((now - lastPublish).nanoseconds) / 1e9)
        lastPublish = now
        guard tokens >= 1 else {
            logger.warning("closing: publish rate above the limit", metadata: ["limit": "\(Int(rate))/s"])
            return disconnect(.messageRateTooHigh)
        }
        tokens -= 1
        let sequence = firstSlot + UInt64(slots.count)
        guard policy?.mayPublish(to: message.topic) == true else {
            guard version == .v5 else {
                logger.warning(
                    "closing: publish to a topic this client may not use", metadata: ["topic": "\(message.topic)"])
                return close()
            }
            // MQTT 5 can say no to one message (PUBACK or PUBREC 0x87) and keep the connection; a
            // QoS 0 message has no answer and is dropped.
            logger.warning(
                "refused: publish to a topic this client may not use", metadata: ["topic": "\(message.topic)"])
            guard message.qos != .atMostOnce else { return }
            slots.append(Slot(message: message, reply: nil))
            marks.append([.done, .notRouted, .refused])
            advance()
            return
        }
        // The hook's fast path, here on the loop, when nothing earlier is still with the control
        // task and the message needs no QoS 2 bookkeeping; otherwise the control task calls the
        // hook, in order.
        if withControl == 0, message.qos != .exactlyOnce, let fast = broker.onPublishNow,
            let completion = fast(clientId, message)
        {
            slots.append(Slot(message: message, reply: completion.reply))
            marks.append([])
            start(completion.work, sequence: sequence)
        } else {
            slots.append(Slot(message: message, reply: nil))
            marks.append([])
            withControl += 1
            control?.send(.publish(message, sequence: sequence))
        }
    }

    /// The control task called the hook: `first` is false for a QoS 2 duplicate (nil when the
    /// client has too many QoS 2 messages awaiting PUBREL, which closes the connection, or `why`
    /// else the message could not be taken).
    func hookReturned(
        _ completion: PublishCompletion?, sequence: UInt64, first: Bool, why: ReasonCode = .unspecifiedError
    ) {
        withControl -= 1
        if let completion {
            if let index = slotIndex(sequence) {
                if !first { marks[offset: index].insert(.notRouted) }
                if let reply = completion.reply { slots[offset: index].reply = reply }
            }
            start(completion.work, sequence: sequence)
            resumeReading()
        } else {
            fail(why)
        }
        finishIfDone()
    }

    private func start(_ work: PublishCompletion.Work, sequence: UInt64) {
        switch work {
        case .none:
            completed(sequence, error: nil)
        case let .task(work):
            let (mailbox, bound) = (mailbox!, bound!)
            Task {
                do {
                    try await work()
                    mailbox.post(.one(bound, sequence: sequence, error: nil))
                } catch {
                    mailbox.post(.one(bound, sequence: sequence, error: error))
                }
            }
        case let .notify(register):
            let (mailbox, bound) = (mailbox!, bound!)
            register { error in mailbox.post(.one(bound, sequence: sequence, error: error)) }
        case let .shared(work):
            mailbox!.wait(for: work, connection: self, sequence: sequence)
        }
    }

    /// Where a message's slot is, counted from the first; nil once it has left.
    private func slotIndex(_ sequence: UInt64) -> Int? {
        guard sequence >= firstSlot, sequence - firstSlot < UInt64(slots.count) else { return nil }
        return Int(sequence - firstSlot)
    }

    /// A message's completion is in. Those done are handed over for routing, in arrival order;
    /// those at the head that are also stored are acknowledged, in arrival order. A failure closes
    /// the connection: neither that message nor any later one is acknowledged.
    func completed(_ sequence: UInt64, error: (any Error)?) {
        guard let index = slotIndex(sequence) else { return }  // the connection already failed
        if let error {
            logger.notice("closing: a received message could not be handled", metadata: ["error": "\(error)"])
            fail()
            finishIfDone()
            return
        }
        marks[offset: index].insert(.done)
        advance()
    }

    /// The message `sequence` is kept for the persistent sessions it was routed to (and as
    /// retained): it may be acknowledged. An error closes the connection unacknowledged.
    func stored(_ sequence: UInt64, error: (any Error)?) {
        guard let index = slotIndex(sequence) else { return }
        if let error {
            logger.error(
                "closing: a received message could not be kept for its sessions", metadata: ["error": "\(error)"])
            fail()
            finishIfDone()
            return
        }
        marks[offset: index].insert(.stored)
        advance()
    }

    private func advance() {
        let state = broker.state
        let routing = state.subscriptionCount.load(ordering: .relaxed) > 0
        // A QoS 1 or 2 message waits for the store before its acknowledgement when it may be kept:
        // retained, or possibly for a persistent session. Otherwise it is acknowledged at once,
        // its routing following in the same order.
        let persistent = state.store != nil && state.persistentSubscriptionCount.load(ordering: .relaxed) > 0
        while routedSlots < slots.count, marks[offset: routedSlots].contains(.done) {
            let message = slots[offset: routedSlots].message
            if !marks[offset: routedSlots].contains(.notRouted), message.retain || routing {
                let waits = message.qos != .atMostOnce && state.store != nil && (message.retain || persistent)
                control?.send(.route(message, sequence: waits ? firstSlot + UInt64(routedSlots) : nil))
                if !waits { marks[offset: routedSlots].insert(.stored) }
            } else {
                marks[offset: routedSlots].insert(.stored)
            }
            routedSlots += 1
        }
        while let mark = marks.first, mark.contains(.stored) {
            marks.removeFirst()
            let head = slots.removeFirst()
            firstSlot += 1
            routedSlots -= 1
            if let reply = head.reply { emit(.publish(reply)) }
            let reason: ReasonCode = mark.contains(.refused) ? .notAuthorized : .success
            switch head.message.qos {
            case .atMostOnce: break
            case .atLeastOnce: emit(.puback(head.message.packetId!, reason: reason))
            case .exactlyOnce: emit(.pubrec(head.message.packetId!, reason: reason))
            }
        }
        resumeReading()
        finishIfDone()
    }

    // MARK: output

    /// Packets from the session (deliveries, PUBRELs, commands to a device), on the loop.
    func deliver(_ packets: [MQTTPacket]) {
        guard let context else { return }
        for packet in packets {
            // A QoS 0 message to a client that does not read is dropped rather than buffered
            // without bound; QoS 1 and 2 are bounded by the session's in-flight window.
            if case .disconnect = packet {
                // From the broker: a takeover, an operator, a shutdown. Said to an MQTT 5 client.
                if version == .v5 { emit(packet) }
                close()
                return
            }
            if case let .publish(message) = packet, message.qos == .atMostOnce, !context.channel.isWritable {
                let dropped = broker.dropped.add(1, ordering: .relaxed).newValue
                if dropped == 1 || dropped % 1_000 == 0 {
                    logger.warning(
                        "client not reading: dropping QoS 0 messages to it", metadata: ["dropped in all": "\(dropped)"])
                }
                continue
            }
            emit(packet)
        }
        flushOutput()
    }

    private func emit(_ packet: MQTTPacket) {
        guard let context, phase != .ended else { return }
        // Room for a few acknowledgements with their replies: what one commit usually brings.
        if output == nil { output = context.channel.allocator.buffer(capacity: 1_024) }
        packet.write(to: &output!, version: version)
    }

    /// Writes what `emit` gathered, with one flush.
    func flushOutput() {
        guard let buffer = output else { return }
        output = nil
        guard let context, buffer.readableBytes > 0 else { return }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    // MARK: the end

    private func close() {
        flushOutput()
        context?.close(promise: nil)
    }

    /// Closes without acknowledging any message still waiting, nor routing it.
    private func fail(_ reason: ReasonCode = .unspecifiedError) {
        firstSlot += UInt64(slots.count)
        slots.removeAll()
        marks.removeAll()
        routedSlots = 0
        disconnect(reason)
    }

    private func ended() {
        stopWaiting()
        guard phase != .ended else { return }
        phase = .ended
        backlog = []
        output = nil
        finishIfDone()
    }

    /// Once the connection is over and every message it received has completed (and been
    /// routed), the control task detaches the session and publishes the will if one is due.
    private func finishIfDone() {
        guard phase == .ended, slots.isEmpty, withControl == 0 else { return }
        // Nothing calls back into this connection any more: let go of the references to itself
        // (through `bound` and the control task), so that it is freed.
        bound = nil
        guard let control else { return }
        self.control = nil
        control.finish(graceful: graceful, expiry: disconnectExpiry)
    }
}

/// A connection's control work: what needs the broker's shared state or may await, in the order
/// the connection handed it over, one step at a time.
///
/// A task runs only while there are steps: it drains them and ends. A task that waited for the
/// next step for the whole life of the connection kept its async stack (kilobytes, grown by the
/// deepest call it ever made, such as signing in) for every idle device, about half of what a
/// held connection cost.
final class ConnectionControl: Sendable {
    enum Step: Sendable {
        case signIn(Connect, clientId: String)
        case publish(Publish, sequence: UInt64)
        /// With a sequence, the connection is told when the message is kept (`stored`).
        case route(Publish, sequence: UInt64?)
        case packet(MQTTPacket)
        /// `expiry`: the session expiry an MQTT 5 DISCONNECT set, in seconds.
        case end(graceful: Bool, expiry: UInt32?)
    }

    /// What the control work remembers between steps; only the one running drain has it.
    struct Memory: Sendable {
        var attached: (clientId: String, connectionId: UInt64)? = nil
        var clientId = ""
        var policy: (any MQTTClientPolicy)? = nil
        var outbox: Outbox? = nil
        var will: Will? = nil
    }

    private struct Queue: Sendable {
        /// An array, empty and unallocated while the connection is idle (most of its life); rarely
        /// more than a few steps long. A ring buffer allocated half a kilobyte per connection.
        var steps: [Step] = []
        var draining = false
        var finished = false
        var memory = Memory()
    }

    private let queue = Mutex(Queue())
    private let broker: MQTTBroker
    private let connection: NIOLoopBound<MQTTConnection>
    private let loop: any EventLoop
    private let channel: any Channel
    private let secure: Bool
    private let clientId: String
    private var logger: Logger {
        MQTTConnection.logger(broker.logger, channel: channel, secure: secure, clientId: clientId)
    }

    init(
        broker: MQTTBroker, connection: NIOLoopBound<MQTTConnection>, loop: any EventLoop, channel: any Channel,
        secure: Bool, clientId: String
    ) {
        self.broker = broker
        self.connection = connection
        self.loop = loop
        self.channel = channel
        self.secure = secure
        self.clientId = clientId
    }

    func start(_ first: Step) { send(first) }

    /// Queues a step; starts a drain when none is running. Steps after the end are dropped.
    func send(_ step: Step) {
        let startDrain = queue.withLock { q -> Bool in
            guard !q.finished else { return false }
            q.steps.append(step)
            if case .end = step { q.finished = true }
            guard !q.draining else { return false }
            q.draining = true
            return true
        }
        guard startDrain else { return }
        broker.controlWork.withLock { $0 += 1 }
        if case .end = step {
            // An idle connection's end, its only step: the sign-out waits for its turn at the
            // gate as a closure and gets a task only then (`TurnGate.submit`).
            broker.signIns.submit { await self.drain(holdingTurn: true) }
        } else {
            Task { await self.drain() }
        }
    }

    func finish(graceful: Bool, expiry: UInt32? = nil) { send(.end(graceful: graceful, expiry: expiry)) }

    /// Runs the queued steps in order until none is left. The memory is taken out for the drain
    /// and put back, under the same lock, at the moment the drain ends, so a drain started
    /// after that sees it.
    /// `holdingTurn`: the drain already has a place at the sign-in gate (for the end step).
    private func drain(holdingTurn: Bool = false) async {
        var memory = queue.withLock { $0.memory }
        while true {
            let next = queue.withLock { q -> [Step]? in
                guard let first = q.steps.first else {
                    q.steps = []  // lets go of the buffer the steps took
                    q.memory = memory
                    q.draining = false
                    return nil
                }
                // Routes and acknowledgements queued one behind another go to the broker's state
                // in one turn: a subscriber acknowledging a stream, or a publisher's window of
                // messages, costs one hop onto the actor, not one per message.
                var count = 1
                while count < q.steps.count, count < 256, Self.together(first, q.steps[count]) { count += 1 }
                defer { q.steps.removeFirst(count) }
                return Array(q.steps[0..<count])
            }
            guard let steps = next else {
                broker.controlWork.withLock { $0 -= 1 }
                return
            }
            if steps.count == 1 {
                await run(steps[0], &memory, holdingTurn: holdingTurn)
            } else {
                await runTogether(steps, memory)
            }
        }
    }

    /// Whether `step` may share a turn on the broker's state with `first`.
    private static func together(_ first: Step, _ step: Step) -> Bool {
        switch (first, step) {
        case (.route, .route): true
        case (.packet(let a), .packet(let b)): a.isCompletion && b.isCompletion
        default: false
        }
    }

    /// Several routes, or several PUBACKs and PUBCOMPs, in one call on the broker's state.
    private func runTogether(_ steps: [Step], _ memory: Memory) async {
        let state = broker.state
        let clientId = memory.clientId
        if case .route = steps[0] {
            var messages: [Publish] = []
            var sequences: [UInt64] = []
            for case let .route(message, sequence) in steps {
                messages.append(message)
                if let sequence { sequences.append(sequence) }
            }
            let stored = await state.route(messages, from: clientId)
            guard !sequences.isEmpty else { return }
            let connection = connection
            let waiting = sequences
            if let stored {
                let mailbox = broker.mailboxes.mailbox(for: loop)
                stored.whenDone { error in
                    for sequence in waiting { mailbox.post(.stored(connection, sequence: sequence, error: error)) }
                }
            } else {
                onLoop { c in for sequence in waiting { c.stored(sequence, error: nil) } }
            }
        } else {
            var ids: [UInt16] = []
            for case let .packet(packet) in steps {
                if case let .puback(id, _, _) = packet { ids.append(id) }
                if case let .pubcomp(id, _, _) = packet { ids.append(id) }
            }
            await state.acknowledged(clientId: clientId, packetIds: ids)
        }
    }

    /// Runs a closure on the connection's loop.
    private func onLoop(_ body: @escaping @Sendable (MQTTConnection) -> Void) {
        let connection = connection
        loop.execute {
            let c = connection.value
            body(c)
            c.flushOutput()
        }
    }

    /// Authenticates, attaches the session, answers CONNACK and reports the presence.
    private func signIn(_ connect: Connect, _ id: String, _ memory: inout Memory) async {
        memory.clientId = id
        let remote = channel.remoteAddress?.description
        let policy: any MQTTClientPolicy
        switch await broker.authenticator.authenticate(
            connect,
            connection: MQTTConnectionInfo(
                remote: remote, place: channel.remoteAddress.map { ConnectGate.key($0) }, secure: secure))
        {
        case let .refused(code):
            logger.notice("connection refused", metadata: ["code": "\(code)"])
            onLoop { $0.refuse(code) }
            return
        case let .accepted(granted):
            policy = granted
        }
        memory.policy = policy
        let made = Outbox(loop: loop, connection: connection, close: { [channel] in channel.close(promise: nil) })
        memory.outbox = made
        let will = connect.will.flatMap { policy.mayPublish(to: $0.topic) ? $0 : nil }
        let state = broker.state
        let v5 = connect.version == .v5
        // 3.1.1: a persistent session lasts the configured expiry. MQTT 5: what the client asks
        // for, up to that (0xFFFFFFFF, "never", included), told back in CONNACK when less.
        let asked = v5 ? Int64(connect.properties.sessionExpiryInterval ?? 0) * 1000 : nil
        let expiry = asked.map { min($0, state.expiryMillis) } ?? (connect.cleanSession ? 0 : state.expiryMillis)
        guard
            let (connectionId, present, stored) = await state.attach(
                clientId: id, cleanStart: connect.cleanSession, expiry: expiry, version: connect.version,
                window: connect.properties.receiveMaximum.map(Int.init),
                maxPacketSize: connect.properties.maximumPacketSize.map { Int(clamping: $0) },
                username: connect.username, will: will, outbox: made)
        else {
            logger.warning("connection refused: the broker is at its connection limit")
            onLoop { $0.refuse(.serverUnavailable) }
            return
        }
        memory.attached = (id, connectionId)
        memory.will = will
        do { try await stored?.wait() } catch {
            // A session the client would count on, or a will, that could not be kept: better no
            // connection than a promise broken by the next crash.
            logger.error("connection refused: its session could not be kept", metadata: ["error": "\(error)"])
            onLoop { $0.refuse(.serverUnavailable) }
            return
        }
        var properties = MQTTProperties()
        if v5 {
            let configuration = broker.configuration
            if connect.clientId.isEmpty { properties.items.append(.assignedClientIdentifier(id)) }
            if let asked, asked != expiry { properties.items.append(.sessionExpiryInterval(UInt32(expiry / 1000))) }
            properties.items += [
                .receiveMaximum(UInt16(clamping: max(1, configuration.inflightWindow))),
                .maximumPacketSize(UInt32(clamping: configuration.limits.maxPacketSize)),
                .topicAliasMaximum(UInt16(clamping: configuration.topicAliasMaximum)),
            ]
        }
        onLoop { [properties] in
            $0.accepted(policy: policy, sessionPresent: present, outbox: made, properties: properties)
        }
        await broker.onPresence(id, true)
        onLoop { $0.opened() }
    }

    private func run(_ step: Step, _ memory: inout Memory, holdingTurn: Bool) async {
        let state = broker.state
        let clientId = memory.clientId
        switch step {
        case let .signIn(connect, id):
            await broker.signIns.enter()
            await signIn(connect, id, &memory)
            broker.signIns.leave()
        case let .publish(message, sequence):
            var first = true
            if message.qos == .exactlyOnce {
                guard let receipt = await state.firstReceiptOfQoS2(clientId: clientId, packetId: message.packetId!)
                else {
                    logger.warning("closing: too many QoS 2 messages awaiting PUBREL")
                    onLoop { $0.hookReturned(nil, sequence: sequence, first: false, why: .receiveMaximumExceeded) }
                    return
                }
                first = receipt.first
                // The id is kept before the message goes on: a resend after a crash is known.
                do { try await receipt.stored?.wait() } catch {
                    logger.error("closing: a QoS 2 packet id could not be kept", metadata: ["error": "\(error)"])
                    onLoop { $0.hookReturned(nil, sequence: sequence, first: false) }
                    return
                }
            }
            let completion: PublishCompletion
            do {
                completion = first ? try await broker.onPublish(clientId, message) : .done
            } catch {
                logger.notice("closing: a received message could not be handled", metadata: ["error": "\(error)"])
                onLoop { $0.hookReturned(nil, sequence: sequence, first: false) }
                return
            }
            onLoop { [first] in $0.hookReturned(completion, sequence: sequence, first: first) }
        case let .route(message, sequence):
            let stored = await state.route(message, from: clientId)
            if let sequence {
                let connection = connection
                if let stored {
                    let mailbox = broker.mailboxes.mailbox(for: loop)
                    stored.whenDone { error in mailbox.post(.stored(connection, sequence: sequence, error: error)) }
                } else {
                    onLoop { $0.stored(sequence, error: nil) }
                }
            }
        case let .packet(packet):
            switch packet {
            case let .pubrel(id, _, _):
                // PUBCOMP lets the client use the id again: only once the store has let go of it.
                let (known, stored) = await state.releasedQoS2(clientId: clientId, packetId: id)
                do {
                    try await stored?.wait()
                    memory.outbox?.send(.pubcomp(id, reason: known ? .success : .packetIdentifierNotFound))
                } catch {
                    logger.error("closing: a QoS 2 release could not be kept", metadata: ["error": "\(error)"])
                    channel.close(promise: nil)
                }
            case let .puback(id, _, _), let .pubcomp(id, _, _):
                await state.acknowledged(clientId: clientId, packetId: id)
            case let .pubrec(id, reason, _):
                // An MQTT 5 PUBREC with a failure ends the exchange: no PUBREL follows (§4.3.3).
                if reason.isFailure {
                    await state.acknowledged(clientId: clientId, packetId: id)
                } else {
                    await state.received(clientId: clientId, packetId: id)
                }
            case let .subscribe(id, subscriptions, _):
                guard let policy = memory.policy else { return }
                // A shared subscription is judged by the filter it shares.
                let decided = subscriptions.map {
                    ($0, allowed: policy.maySubscribe(to: Topic.shared($0.filter)?.filter ?? $0.filter))
                }
                let (codes, retainedFor, stored) = await state.subscribe(clientId: clientId, decided)
                do { try await stored?.wait() } catch {
                    logger.error("closing: a subscription could not be kept", metadata: ["error": "\(error)"])
                    channel.close(promise: nil)
                    return
                }
                // Through the outbox, so the SUBACK goes before the retained messages queued next.
                memory.outbox?.send(.suback(packetId: id, returnCodes: codes))
                await state.deliverRetained(clientId: clientId, retainedFor)
            case let .unsubscribe(id, filters, _):
                let (reasons, stored) = await state.unsubscribe(clientId: clientId, filters)
                do { try await stored?.wait() } catch {
                    logger.error("closing: an unsubscription could not be kept", metadata: ["error": "\(error)"])
                    channel.close(promise: nil)
                    return
                }
                memory.outbox?.send(.unsuback(id, reasons: reasons))
            default:
                break
            }
        case let .end(graceful, expiry):
            guard let (clientId, connectionId) = memory.attached else { return }
            // Through the same gate as signing in: when every device drops at once (a network
            // outage), their presence writes wait their turn with a shallow stack.
            if !holdingTurn { await broker.signIns.enter() }
            // MQTT-3.1.2-8: the will is published when the connection ends without DISCONNECT.
            let will = graceful ? nil : memory.will
            // A connection that was taken over leaves presence to its successor.
            if await state.detach(
                clientId: clientId, connectionId: connectionId, will: will, expiry: expiry.map { Int64($0) * 1000 })
            {
                await broker.onPresence(clientId, false)
            } else if let will {
                _ = await state.route(will.message)
            }
            if !holdingTurn { broker.signIns.leave() }
        }
    }
}
