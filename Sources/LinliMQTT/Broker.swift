import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

public struct MQTTBrokerConfiguration: Sendable {
    /// The plain TCP listener.
    public var host: String
    public var port: Int
    /// A second listener with TLS; nil for plain TCP only.
    public var tls: MQTTTLSListener?
    public var limits: MQTTLimits
    public var maxConnections: Int
    /// A client must send CONNECT within this time of opening the socket.
    public var connectTimeout: TimeAmount
    /// Sockets one source address (an IPv6 /64) may hold open before their CONNECT; the oldest
    /// is closed when one more opens (see `ConnectGate`). All addresses together may hold half the
    /// socket budget this way, so the other half stays for clients that have signed in.
    public var pendingPerAddress: Int
    /// Outgoing QoS 1/2 messages per client awaiting acknowledgement; incoming QoS 2 awaiting PUBREL.
    public var inflightWindow: Int
    /// QoS 1 and 2 messages kept per session beyond the window, and for a persistent session
    /// while its client is away. When the queue is full, newer messages for that session are
    /// dropped (counted per session and in `linli_mqtt_messages_dropped_total`), older ones kept:
    /// they are the ones the client has waited for longest.
    public var queueLimit: Int
    /// How long a persistent session is kept while its client is away; then it is forgotten with
    /// its subscriptions and messages (`linli_mqtt_sessions_expired_total`).
    public var sessionExpiry: Duration
    /// PUBLISH packets per second a client may send (a burst of as many is allowed).
    public var maxPublishesPerSecond: Int
    /// Sockets the listeners may hold open together; nil for as many as the open-file limit
    /// (RLIMIT_NOFILE) allows once `reservedFileDescriptors` are set aside. A socket accepted beyond
    /// it is closed at once. `maxConnections` counts signed-in sessions and answers CONNACK 3.
    public var maxSockets: Int?
    /// File descriptors kept free for the rest of the process (database files, HTTP clients, the
    /// runtime's own), beyond those already open when the broker starts.
    public var reservedFileDescriptors: Int
    /// Sign-ins (authentication, session, presence) and sign-outs worked on at once; more wait
    /// their turn. After a restart every device reconnects together, and each sign-in in progress
    /// holds its task's stack while it waits for the database: unbounded, that was more memory at
    /// the peak than all the connections held afterwards. The same when they all drop at once.
    public var concurrentSignIns: Int
    /// MQTT 5 topic aliases a client may set on its connection (0 for none).
    public var topicAliasMaximum: Int

    public init(
        host: String = "127.0.0.1", port: Int = 1883, tls: MQTTTLSListener? = nil, limits: MQTTLimits = MQTTLimits(),
        maxConnections: Int = 50_000,
        connectTimeout: TimeAmount = .seconds(10), pendingPerAddress: Int = 1_000, inflightWindow: Int = 64,
        queueLimit: Int = 10_000,
        sessionExpiry: Duration = .seconds(7 * 86_400), maxPublishesPerSecond: Int = 1_000,
        maxSockets: Int? = nil, reservedFileDescriptors: Int = 128, concurrentSignIns: Int = 64,
        topicAliasMaximum: Int = 64
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.limits = limits
        self.maxConnections = maxConnections
        self.connectTimeout = connectTimeout
        self.pendingPerAddress = max(1, pendingPerAddress)
        self.inflightWindow = inflightWindow
        self.queueLimit = queueLimit
        self.sessionExpiry = sessionExpiry
        self.maxPublishesPerSecond = maxPublishesPerSecond
        self.maxSockets = maxSockets
        self.reservedFileDescriptors = reservedFileDescriptors
        self.concurrentSignIns = max(1, concurrentSignIns)
        self.topicAliasMaximum = min(max(0, topicAliasMaximum), Int(UInt16.max))
    }
}

/// An embedded MQTT 3.1.1 and 5.0 broker on SwiftNIO: QoS 0, 1 and 2, retained messages, wills
/// (with a delay in 5), clean and persistent sessions with a bounded queue and an expiry, message
/// expiry, topic aliases, subscription options and identifiers, shared subscriptions, keep-alive,
/// wildcards, session takeover, reason codes and properties passed on. Each
/// connection lives on its channel's event loop (`MQTTConnection`); one bad client never stops
/// the server.
public final class MQTTBroker: Sendable {
    public let configuration: MQTTBrokerConfiguration
    let authenticator: any MQTTAuthenticator
    let state: BrokerState
    let logger: Logger
    /// Called for every accepted PUBLISH, in the order each connection received them: the place
    /// where a message is understood. What it returns (making the message durable, typically)
    /// must finish before the message is routed and, for QoS 1 and 2, acknowledged; meanwhile the
    /// connection reads on. Acknowledgements keep the order of arrival.
    let onPublish: @Sendable (_ clientId: String, _ message: Publish) async throws -> PublishCompletion
    /// The same hook's fast path, called on the connection's event loop when nothing received
    /// earlier on that connection is still with `onPublish`: it must not block, and returns nil
    /// (having done nothing) to leave the message to `onPublish`. A device's post, checked and
    /// queued for its group commit, needs no task at all this way.
    let onPublishNow: (@Sendable (_ clientId: String, _ message: Publish) -> PublishCompletion?)?
    /// Called when a client's session starts (after CONNACK) and when its connection ends.
    let onPresence: @Sendable (_ clientId: String, _ connected: Bool) async -> Void
    let mailboxes = LoopMailboxes()
    let signIns: TurnGate
    /// Sockets not yet past their CONNECT.
    let connectGate: ConnectGate
    /// Connections' control work in progress (`ConnectionControl` drains): a stopping broker
    /// waits for it, so a sign-out's presence write is done before the database closes.
    let controlWork = Mutex(0)
    /// QoS 0 messages not sent because their client was not reading.
    let dropped = Atomic<Int>(0)
    /// Connection handlers in memory: sockets open, and those closed whose work is not yet done.
    let liveConnections = Atomic<Int>(0)
    /// Open client connections, closed when the broker stops.
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])

    public init(
        configuration: MQTTBrokerConfiguration, authenticator: any MQTTAuthenticator, logger: Logger,
        receive: @escaping @Sendable (_ clientId: String, _ message: Publish) async throws -> PublishCompletion,
        receiveNow: (@Sendable (_ clientId: String, _ message: Publish) -> PublishCompletion?)? = nil,
        onPresence: @escaping @Sendable (_ clientId: String, _ connected: Bool) async -> Void = { _, _ in },
        sessionStore: (any MQTTSessionStore)? = nil
    ) {
        self.configuration = configuration
        self.authenticator = authenticator
        self.logger = logger
        self.onPublish = receive
        self.onPublishNow = receiveNow
        self.onPresence = onPresence
        state = BrokerState(configuration: configuration, store: sessionStore, logger: logger)
        signIns = TurnGate(limit: configuration.concurrentSignIns)
        connectGate = ConnectGate(perAddress: configuration.pendingPerAddress, logger: logger)
    }

    /// With a hook that is done when it returns: each connection handles one message at a time.
    public convenience init(
        configuration: MQTTBrokerConfiguration, authenticator: any MQTTAuthenticator, logger: Logger,
        onPublish: @escaping @Sendable (_ clientId: String, _ message: Publish) async throws -> Void = { _, _ in },
        onPresence: @escaping @Sendable (_ clientId: String, _ connected: Bool) async -> Void = { _, _ in },
        sessionStore: (any MQTTSessionStore)? = nil
    ) {
        self.init(
            configuration: configuration, authenticator: authenticator, logger: logger,
            receive: { clientId, message in
                try await onPublish(clientId, message)
                return .done
            }, onPresence: onPresence, sessionStore: sessionStore)
    }

    public var connectionCount: Int { get async { await state.connectionCount } }

    /// Publishes from inside Linli (a command to a device, for instance), as if a client had.
    /// Returns once the message is kept for every persistent session it went to.
    public func publish(_ message: Publish) async {
        await stored(state.route(message), topic: message.topic)
    }

    private func stored(_ completion: (any SharedCompletion)?, topic: String) async {
        do { try await completion?.wait() } catch {
            logger.error(
                "MQTT message not kept for its sessions", metadata: ["topic": "\(topic)", "error": "\(error)"])
        }
    }

    /// Sends to one client, subscribed or not (replies and commands to a device).
    public func send(_ message: Publish, to clientId: String) async {
        // At QoS 0 the client's subscriptions cannot change the QoS, and nothing is kept for an
        // absent client: straight to its outbox, without a turn on the broker's actor.
        if message.qos == .atMostOnce {
            guard let outbox = state.outboxes.withLock({ $0[clientId] }) else { return }
            var outgoing = message
            outgoing.dup = false
            outgoing.packetId = nil
            outbox.send(.publish(outgoing))
            return
        }
        await stored(state.send(message, to: clientId), topic: message.topic)
    }

    /// Closes a connected client's connection; false when it is not connected.
    @discardableResult
    public func disconnect(clientId: String) async -> Bool {
        await state.disconnect(clientId: clientId)
    }

    /// The ports the broker listens on, once bound (useful with port 0).
    public struct ListeningPorts: Sendable, Equatable {
        public var tcp: Int
        public var tls: Int?
    }

    /// Listens on plain TCP, and on TLS when configured, until the task is cancelled.
    public func run(onListening: @Sendable (ListeningPorts) -> Void = { _ in }) async throws {
        // What the last run kept comes back before any client can connect.
        try await state.restore()
        let files = OpenFileLimit.current()
        let budget = SocketBudget(
            limit: SocketBudget.limit(
                configured: configuration.maxSockets, fileLimit: files?.soft,
                alreadyOpen: OpenFileLimit.openNow(), reserve: configuration.reservedFileDescriptors))
        let gate = connectGate
        gate.total = budget.limit / 2
        logger.info(
            "MQTT sockets allowed",
            metadata: [
                "sockets": "\(budget.limit)", "before CONNECT": "\(gate.total), \(gate.perAddress) per address",
                "open-file limit": "\(files.map { "\($0)" } ?? "unknown")",
            ])
        let tcp = try await bind(
            host: configuration.host, port: configuration.port, tls: nil, budget: budget, gate: gate)
        let tls: (any Channel)?
        if let listener = configuration.tls {
            do {
                tls = try await bind(
                    host: listener.host, port: listener.port, tls: listener.context, budget: budget, gate: gate)
            } catch {
                try? await tcp.close()  // free the plain port again
                throw error
            }
        } else {
            tls = nil
        }
        let tcpPort = tcp.localAddress?.port ?? configuration.port
        let tlsPort = tls?.localAddress?.port
        onListening(ListeningPorts(tcp: tcpPort, tls: tlsPort))
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await self.expireSessions() }
                group.addTask {
                    try await self.serve(
                        tcp, host: self.configuration.host, port: tcpPort, tls: nil, budget: budget, gate: gate)
                }
                if let tls, let listener = configuration.tls, let tlsPort {
                    group.addTask {
                        try await self.serve(
                            tls, host: listener.host, port: tlsPort, tls: listener.context, budget: budget, gate: gate)
                    }
                }
            }
        } catch {
            await stopConnections()
            throw error
        }
        await stopConnections()
    }

    /// Once a minute (more often for a short expiry), forgets the persistent sessions whose
    /// clients stayed away too long.
    private func expireSessions() async throws {
        let interval = min(Duration.seconds(60), max(.seconds(1), configuration.sessionExpiry / 2))
        while true {
            try await Task.sleep(for: interval)
            await state.expire(now: Int64(Date().timeIntervalSince1970 * 1000))
        }
    }

    /// Stopping the broker ends its clients' connections too, and waits (up to 10 s) until their
    /// sign-outs are recorded: what runs after the broker (closing the database) must not pull
    /// the ground from under them. Runs in a task of its own, as the caller is being cancelled.
    private func stopConnections() async {
        await Task { [self] in
            // MQTT 5 clients are told why (0x8B) before their connection closes.
            for outbox in state.outboxes.withLock({ Array($0.values) }) {
                outbox.send(.disconnect(reason: .serverShuttingDown))
            }
            let open = connections.withLock { Array($0.values) }
            for channel in open { channel.close(promise: nil) }
            for channel in open { try? await channel.closeFuture.get() }
            let deadline = ContinuousClock.now + .seconds(10)
            // Quiet twice in a row: a connection's last step can follow its previous drain by a hop.
            var quiet = 0
            while quiet < 2, ContinuousClock.now < deadline {
                quiet = controlWork.withLock { $0 } == 0 ? quiet + 1 : 0
                try? await Task.sleep(for: .milliseconds(20))
            }
            let left = controlWork.withLock { $0 }
            if left > 0 {
                logger.warning(
                    "MQTT broker stopped with connection work unfinished", metadata: ["connections": "\(left)"])
            }
        }.value
    }

    /// Binds one listener. With a TLS context, the handshake runs before any MQTT byte is decoded;
    /// the read deadline still counts from the socket's opening, so a stalled handshake is closed too.
    private func bind(host: String, port: Int, tls: NIOSSLContext?, budget: SocketBudget, gate: ConnectGate)
        async throws -> any Channel
    {
        let limits = configuration.limits
        let connectTimeout = configuration.connectTimeout
        let logger = logger
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ListenerGuard(budget: budget, logger: logger))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // Each connection keeps its receive buffer between reads. NIO starts it at 2 KiB; most
            // MQTT connections are devices that send a packet of a hundred bytes or two now and then,
            // so start at 256 bytes; a busy publisher's buffer grows after a few full reads.
            .childChannelOption(
                .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65_536)
            )
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                    try sync.addHandler(
                        ReadDeadlineHandler(connectTimeout: connectTimeout), name: ReadDeadlineHandler.name)
                    try sync.addHandler(ByteToMessageHandler(MQTTDecoder(limits: limits)))
                    try sync.addHandler(MQTTConnection(broker: self, secure: tls != nil, gate: gate))
                    let key = ObjectIdentifier(channel)
                    connections.withLock { $0[key] = channel }
                    channel.closeFuture.whenComplete { [self] _ in
                        _ = connections.withLock { $0.removeValue(forKey: key) }
                    }
                }
            }
            .bind(host: host, port: port)
            .get()
        logger.info(
            "MQTT broker listening",
            metadata: ["address": "\(host):\(server.localAddress?.port ?? port)", "tls": "\(tls != nil)"])
        return server
    }

    /// Keeps one listener open until cancelled. Accept errors never close it (see `ListenerGuard`);
    /// should the listening socket fail all the same, it is bound again, and the connections it
    /// had accepted carry on meanwhile.
    private func serve(
        _ first: any Channel, host: String, port: Int, tls: NIOSSLContext?, budget: SocketBudget, gate: ConnectGate
    ) async throws {
        var listener: (any Channel)? = first
        while !Task.isCancelled {
            if let current = listener {
                listener = nil
                await withTaskCancellationHandler {
                    try? await current.closeFuture.get()
                } onCancel: {
                    current.close(promise: nil)
                }
                if Task.isCancelled { break }
                logger.error(
                    "MQTT listener closed; listening again in a second", metadata: ["address": "\(host):\(port)"])
            }
            try await Task.sleep(for: .seconds(1))
            do {
                listener = try await bind(host: host, port: port, tls: tls, budget: budget, gate: gate)
            } catch {
                logger.error(
                    "MQTT listener not bound again yet", metadata: ["address": "\(host):\(port)", "error": "\(error)"])
            }
        }
        throw CancellationError()
    }
}

/// Closes a connection that takes too long: until CONNECT arrives, a fixed time from the socket's
/// opening, whatever bytes come meanwhile (a CONNECT dripped a byte at a time is closed all the
/// same); then once it stays silent for 1.5 times the client's keep-alive (MQTT-3.1.2-24). Sits
/// before the decoder, so any byte counts as life. A read only notes the time; the timer, when it
/// fires, looks at that time and sets itself again for the rest of the interval, so a busy
/// connection costs no timer work per read.
final class ReadDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    static let name = "linli-read-deadline"
    /// Sent up the pipeline just before the close, so that an MQTT 5 client hears why.
    struct Expired {}

    private var timeout: TimeAmount?
    private var scheduled: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    private var lastRead = NIODeadline.now()
    /// Reads do not move the deadline: the connect deadline, from the socket's opening.
    private var fixed: Bool

    init(connectTimeout: TimeAmount) {
        timeout = connectTimeout
        fixed = true
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { restart(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        scheduled?.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        restart(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !fixed { lastRead = .now() }
        context.fireChannelRead(data)
    }

    /// CONNECT arrived: from now on silence is measured, against `keepAlive`; nil means none
    /// (keep-alive 0).
    func connected(keepAlive: TimeAmount?) {
        timeout = keepAlive
        fixed = false
        if let context { restart(context) }
    }

    private func restart(_ context: ChannelHandlerContext) {
        lastRead = .now()
        schedule(context)
    }

    private func schedule(_ context: ChannelHandlerContext) {
        scheduled?.cancel()
        scheduled = nil
        guard let timeout else { return }
        let due = lastRead + timeout
        scheduled = context.eventLoop.assumeIsolated().scheduleTask(deadline: due) { [weak self] in
            guard let self, let context = self.context, let timeout = self.timeout else { return }
            if NIODeadline.now() >= self.lastRead + timeout {
                if !self.fixed { context.fireUserInboundEventTriggered(Expired()) }
                context.channel.close(promise: nil)
            } else {
                self.schedule(context)
            }
        }
    }
}
