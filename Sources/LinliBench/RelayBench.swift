import Foundation
import LinliMQTT
import NIOCore
import NIOPosix
import Synchronization

/// What `linli bench relay` measures: one publisher, N subscribers with persistent sessions at
/// QoS 1, on any broker (Linli with an integration account, Mosquitto anonymously).
///
/// - online: the subscribers are connected; the publisher offers `rate` messages a second for the
///   warm-up and the measured time; each message carries its send time, so a subscriber records
///   publish → delivery.
/// - offline: the subscribers subscribe and leave; the publisher sends `messages` as fast as its
///   window allows (each PUBACK means the broker took it for every session); the subscribers come
///   back and drain what was kept for them.
/// - idle: `connections` clients connect and hold, nothing else, so that the broker's memory per
///   idle connection can be read.
/// - connect: sign-ins, each CONNECT → CONNACK → DISCONNECT: first `coldAccounts` accounts
///   `{username}-{i}` once each (a password never checked before; 8 at a time at most), then
///   `connections` times the one account `username` (the same password again and again),
///   `concurrency` at a time.
public struct RelaySettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 1883
    public var username: String?
    public var password: String?
    public var version = MQTTVersion.v3_1_1
    public var subscribers = 10
    public var rate: Double = 5_000
    public var duration: Double = 20
    public var warmup: Double = 3
    public var messages = 10_000
    public var payloadBytes = 64
    /// The publisher's QoS 1 messages awaiting PUBACK at most.
    public var inflight = 256
    public var connections = 1_000
    public var hold: Double = 10
    public var runId = "relay"
    public var coldAccounts = 0
    public var concurrency = 16
    public var serverPid: Int32?
    public init() {}
}

public struct RelayResult: Codable, Sendable {
    public var phase: String
    public var version: Int
    public var subscribers: Int
    public var offered: Double?
    public var published: Int
    /// Messages the publisher had acknowledged, per second.
    public var publishedPerSecond: Double
    /// Deliveries to all subscribers together, per second.
    public var deliveredPerSecond: Double
    public var delivered: Int
    public var expected: Int
    public var duplicates: Int
    public var p50Milliseconds: Double?
    public var p99Milliseconds: Double?
    public var drainSeconds: Double?
    public var connections: Int?
    public var rssMiB: Double?
    public var peakRssMiB: Double?
    public var rssPerConnectionKiB: Double?
    public var connectsPerSecond: Double?
    public var coldConnects: Int?
    public var coldConnectsPerSecond: Double?
    public var coldP50Milliseconds: Double?
    public var coldP99Milliseconds: Double?
    public var refused: Int?
}

/// The connect phase's next name to sign in with, and the sign-ins refused.
final class ConnectTally: Sendable {
    let next = Atomic<Int>(0)
    let refused = Atomic<Int>(0)
}

/// Counts shared by the clients on every loop.
final class RelayCounters: Sendable {
    let acked = Atomic<Int>(0)
    let delivered = Atomic<Int>(0)
    let duplicates = Atomic<Int>(0)
    /// Deliveries counted only while measuring.
    let measuring = Atomic<Bool>(false)
    let measuredDeliveries = Atomic<Int>(0)
    let measuredAcks = Atomic<Int>(0)
}

/// One client's MQTT over its channel: the CONNACK, SUBACKs, PUBACKs; a subscriber acknowledges
/// each PUBLISH and records its latency; the publisher keeps its window full.
final class RelayClient: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = MQTTPacket
    typealias OutboundOut = MQTTPacket

    enum Role { case publisher, subscriber }

    let role: Role
    let counters: RelayCounters
    let connected: EventLoopPromise<Bool>
    var answered = false
    var subscribed: EventLoopPromise<Void>?
    var context: ChannelHandlerContext?
    var histogram = LatencyHistogram()
    /// The last sequence number seen from the publisher: a lower or equal one is a duplicate.
    var lastSequence: UInt64 = 0
    var received = 0
    var inflight = 0
    var nextPacketId: UInt16 = 0
    /// The publisher's message number, across the warm-up and the measured run.
    var sequence: UInt64 = 0
    var readPending = false

    init(role: Role, counters: RelayCounters, connected: EventLoopPromise<Bool>) {
        self.role = role
        self.counters = counters
        self.connected = connected
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .connack(_, code, _, _):
            answered = true
            connected.succeed(code == .accepted)
        case .suback:
            subscribed?.succeed(())
            subscribed = nil
        case let .publish(message):
            var payload = message.payload
            if let sent = payload.readInteger(as: UInt64.self), let sequence = payload.readInteger(as: UInt64.self) {
                let now = DispatchTime.now().uptimeNanoseconds
                if sequence <= lastSequence {
                    counters.duplicates.add(1, ordering: .relaxed)
                } else {
                    lastSequence = sequence
                    received += 1
                    counters.delivered.add(1, ordering: .relaxed)
                    if counters.measuring.load(ordering: .relaxed) {
                        histogram.record(now >= sent ? now - sent : 0)
                        counters.measuredDeliveries.add(1, ordering: .relaxed)
                    }
                }
            }
            if let id = message.packetId { context.write(wrapOutboundOut(.puback(id)), promise: nil) }
        case .puback:
            inflight -= 1
            counters.acked.add(1, ordering: .relaxed)
            if counters.measuring.load(ordering: .relaxed) { counters.measuredAcks.add(1, ordering: .relaxed) }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

    func channelInactive(context: ChannelHandlerContext) {
        if !answered { connected.succeed(false) }
        answered = true
        subscribed?.fail(ChannelError.ioOnClosedChannel)
        subscribed = nil
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    /// Sends up to `count` messages while the window has room; returns how many went.
    func publish(upTo count: Int, window: Int, payloadBytes: Int) -> Int {
        guard let context else { return 0 }
        var sent = 0
        while sent < count, inflight < window {
            sequence += 1
            nextPacketId = nextPacketId == .max ? 1 : nextPacketId + 1
            var payload = context.channel.allocator.buffer(capacity: max(16, payloadBytes))
            payload.writeInteger(DispatchTime.now().uptimeNanoseconds)
            payload.writeInteger(sequence)
            if payloadBytes > 16 { payload.writeRepeatingByte(0x2A, count: payloadBytes - 16) }
            let message = Publish(topic: "relay/t", payload: payload, qos: .atLeastOnce, packetId: nextPacketId)
            context.write(wrapOutboundOut(.publish(message)), promise: nil)
            inflight += 1
            sent += 1
        }
        if sent > 0 { context.flush() }
        return sent
    }
}

public struct RelayBench: Sendable {
    public var settings: RelaySettings
    public var progress: @Sendable (String) -> Void

    public init(settings: RelaySettings, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.settings = settings
        self.progress = progress
    }

    struct Connection {
        let channel: any Channel
        let client: NIOLoopBound<RelayClient>
    }

    private func connect(
        _ clientId: String, clean: Bool, role: RelayClient.Role, counters: RelayCounters, username: String? = nil
    ) async throws -> Connection {
        var s = settings
        if let username { s.username = username }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: Bool.self)
        let made = try await ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: s.host, port: s.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let client = RelayClient(role: role, counters: counters, connected: promise)
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(MQTTDecoder(version: s.version)))
                    try sync.addHandler(MessageToByteHandler(MQTTEncoder(version: s.version)))
                    try sync.addHandler(client)
                    return Connection(channel: channel, client: NIOLoopBound(client, eventLoop: channel.eventLoop))
                }
            }
        // An MQTT 5 persistent session asks for its expiry; 3.1.1's clean session 0 has the broker's.
        let properties: MQTTProperties =
            s.version == .v5 && !clean ? MQTTProperties([.sessionExpiryInterval(3_600)]) : .none
        let connect = Connect(
            protocolLevel: s.version.rawValue, cleanSession: clean, keepAlive: 120, clientId: clientId,
            username: s.username, password: s.username == nil ? nil : s.password.map { ByteBuffer(string: $0) },
            properties: properties)
        try await made.channel.writeAndFlush(MQTTPacket.connect(connect))
        guard try await promise.futureResult.get() else {
            throw BenchSettingsError("\(clientId) was not accepted by the broker at \(s.host):\(s.port)")
        }
        return made
    }

    private func subscribe(_ connection: Connection) async throws {
        let loop = connection.channel.eventLoop
        let done = try await loop.submit { () -> EventLoopFuture<Void> in
            let promise = loop.makePromise(of: Void.self)
            connection.client.value.subscribed = promise
            connection.channel.writeAndFlush(
                MQTTPacket.subscribe(packetId: 1, subscriptions: [Subscription(filter: "relay/#", qos: .atLeastOnce)]),
                promise: nil)
            return promise.futureResult
        }.get()
        try await done.get()
    }

    private func disconnect(_ connection: Connection) async {
        try? await connection.channel.writeAndFlush(MQTTPacket.disconnect())
        try? await connection.channel.close()
    }

    private func sample() -> ProcessSample? { settings.serverPid.flatMap { ProcessProbe.sample(pid: $0) } }

    /// Publishes from `publisher` until `until` says stop: at `rate` a second (nil: as fast as
    /// the window allows), in ticks of a millisecond on the publisher's loop.
    private func drive(_ publisher: Connection, rate: Double?, total: Int?, seconds: Double?) async throws -> Int {
        let s = settings
        let loop = publisher.channel.eventLoop
        let start = DispatchTime.now().uptimeNanoseconds
        let end = seconds.map { start + UInt64($0 * 1e9) }
        let sentBox = try await loop.submit { () -> EventLoopFuture<Int> in
            let promise = loop.makePromise(of: Int.self)
            var sent = 0
            var credit = 0.0
            var last = start
            func tick() {
                let client = publisher.client.value
                let now = DispatchTime.now().uptimeNanoseconds
                if let end, now >= end {
                    promise.succeed(sent)
                    return
                }
                if let total, sent >= total {
                    promise.succeed(sent)
                    return
                }
                var allowed = Int.max
                if let rate {
                    credit = min(credit + rate * Double(now - last) / 1e9, rate / 10)
                    allowed = Int(credit)
                }
                last = now
                if let total { allowed = min(allowed, total - sent) }
                let went = client.publish(
                    upTo: allowed, window: s.inflight, payloadBytes: s.payloadBytes)
                sent += went
                if rate != nil { credit -= Double(went) }
                if client.context == nil {
                    promise.fail(BenchSettingsError("the publisher's connection closed"))
                    return
                }
                loop.scheduleTask(in: .milliseconds(1)) { tick() }
            }
            tick()
            return promise.futureResult
        }.get()
        return try await sentBox.get()
    }

    private func histogram(_ subscribers: [Connection]) async throws -> LatencyHistogram {
        var merged = LatencyHistogram()
        for s in subscribers {
            let h = try await s.channel.eventLoop.submit { s.client.value.histogram }.get()
            merged.merge(h)
        }
        return merged
    }

    private static func milliseconds(_ nanos: UInt64?) -> Double? { nanos.map { Double($0) / 1e6 } }

    private func waitFor(_ counters: RelayCounters, delivered: Int, acked: Int, timeout: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if counters.delivered.load(ordering: .relaxed) >= delivered,
                counters.acked.load(ordering: .relaxed) >= acked
            {
                return true
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    public func online() async throws -> RelayResult {
        let s = settings
        let counters = RelayCounters()
        var subscribers: [Connection] = []
        for i in 0..<s.subscribers {
            let c = try await connect("\(s.runId)-sub-\(i)", clean: false, role: .subscriber, counters: counters)
            try await subscribe(c)
            subscribers.append(c)
        }
        let publisher = try await connect("\(s.runId)-pub", clean: true, role: .publisher, counters: counters)
        progress("online: \(s.subscribers) subscribers connected; publishing \(Int(s.rate))/s")
        _ = try await drive(publisher, rate: s.rate, total: nil, seconds: s.warmup)
        counters.measuring.store(true, ordering: .relaxed)
        let began = Date()
        let sent = try await drive(publisher, rate: s.rate, total: nil, seconds: s.duration)
        let elapsed = Date().timeIntervalSince(began)
        counters.measuring.store(false, ordering: .relaxed)
        let after = sample()
        // Then every message acknowledged is delivered to every subscriber, none lost.
        _ = await waitFor(
            counters, delivered: counters.acked.load(ordering: .relaxed) * s.subscribers, acked: 0, timeout: 60)
        let totalSent = counters.acked.load(ordering: .relaxed)
        let h = try await histogram(subscribers)
        let result = RelayResult(
            phase: "online", version: Int(s.version.rawValue), subscribers: s.subscribers, offered: s.rate,
            published: sent,
            publishedPerSecond: Double(counters.measuredAcks.load(ordering: .relaxed)) / elapsed,
            deliveredPerSecond: Double(counters.measuredDeliveries.load(ordering: .relaxed)) / elapsed,
            delivered: counters.delivered.load(ordering: .relaxed), expected: totalSent * s.subscribers,
            duplicates: counters.duplicates.load(ordering: .relaxed),
            p50Milliseconds: Self.milliseconds(h.percentile(50)),
            p99Milliseconds: Self.milliseconds(h.percentile(99)), drainSeconds: nil, connections: nil,
            rssMiB: after.map { Double($0.rssKiB) / 1024 }, peakRssMiB: after.map { Double($0.peakRssKiB) / 1024 },
            rssPerConnectionKiB: nil)
        await disconnect(publisher)
        for c in subscribers { await disconnect(c) }
        try await forget(prefix: "sub", counters: counters)
        return result
    }

    /// Ends the subscribers' persistent sessions (a clean start, then away), so that the next phase
    /// does not feed them too.
    private func forget(prefix: String, counters: RelayCounters) async throws {
        for i in 0..<settings.subscribers {
            let c = try await connect(
                "\(settings.runId)-\(prefix)-\(i)", clean: true, role: .subscriber, counters: counters)
            await disconnect(c)
        }
    }

    public func offline() async throws -> RelayResult {
        let s = settings
        let counters = RelayCounters()
        // Sessions made (or emptied) and subscribed, then left.
        for i in 0..<s.subscribers {
            let fresh = try await connect("\(s.runId)-away-\(i)", clean: true, role: .subscriber, counters: counters)
            await disconnect(fresh)
            let c = try await connect("\(s.runId)-away-\(i)", clean: false, role: .subscriber, counters: counters)
            try await subscribe(c)
            await disconnect(c)
        }
        let publisher = try await connect("\(s.runId)-pub", clean: true, role: .publisher, counters: counters)
        progress("offline: \(s.subscribers) sessions away; publishing \(s.messages) messages")
        counters.measuring.store(true, ordering: .relaxed)
        let began = Date()
        let sent = try await drive(publisher, rate: nil, total: s.messages, seconds: nil)
        guard await waitFor(counters, delivered: 0, acked: sent, timeout: 120) else {
            throw BenchSettingsError("the broker did not acknowledge all \(sent) messages within 120 s")
        }
        let stored = Date().timeIntervalSince(began)
        counters.measuring.store(false, ordering: .relaxed)
        await disconnect(publisher)
        progress("offline: stored in \(String(format: "%.2f", stored)) s; the subscribers come back")
        var subscribers: [Connection] = []
        let drainStart = Date()
        for i in 0..<s.subscribers {
            subscribers.append(
                try await connect("\(s.runId)-away-\(i)", clean: false, role: .subscriber, counters: counters))
        }
        let expected = sent * s.subscribers
        let complete = await waitFor(counters, delivered: expected, acked: 0, timeout: 300)
        let drained = Date().timeIntervalSince(drainStart)
        try? await Task.sleep(for: .milliseconds(300))  // a duplicate would come right behind
        let after = sample()
        let result = RelayResult(
            phase: "offline", version: Int(s.version.rawValue), subscribers: s.subscribers, offered: nil,
            published: sent, publishedPerSecond: Double(sent) / stored,
            deliveredPerSecond: Double(counters.delivered.load(ordering: .relaxed)) / drained,
            delivered: counters.delivered.load(ordering: .relaxed), expected: expected,
            duplicates: counters.duplicates.load(ordering: .relaxed), p50Milliseconds: nil, p99Milliseconds: nil,
            drainSeconds: complete ? drained : nil, connections: nil,
            rssMiB: after.map { Double($0.rssKiB) / 1024 }, peakRssMiB: after.map { Double($0.peakRssKiB) / 1024 },
            rssPerConnectionKiB: nil)
        for c in subscribers { await disconnect(c) }
        try await forget(prefix: "away", counters: counters)
        return result
    }

    /// Connects `connections` clients (64 at a time), reads the server's memory once they are all
    /// in and again after `hold`, and returns the growth per connection over the memory before.
    public func idle() async throws -> RelayResult {
        let s = settings
        let counters = RelayCounters()
        let before = sample()
        var open: [Connection] = []
        var next = 0
        while next < s.connections {
            let batch = min(64, s.connections - next)
            try await withThrowingTaskGroup(of: Connection.self) { group in
                for i in next..<(next + batch) {
                    group.addTask {
                        try await connect("\(s.runId)-idle-\(i)", clean: true, role: .subscriber, counters: counters)
                    }
                }
                for try await c in group { open.append(c) }
            }
            next += batch
        }
        progress("idle: \(open.count) connected; holding \(Int(s.hold)) s")
        try await Task.sleep(for: .seconds(s.hold))
        let after = sample()
        var perConnection: Double? = nil
        if let before, let after { perConnection = Double(after.rssKiB - before.rssKiB) / Double(open.count) }
        let result = RelayResult(
            phase: "idle", version: Int(s.version.rawValue), subscribers: 0, offered: nil, published: 0,
            publishedPerSecond: 0, deliveredPerSecond: 0, delivered: 0, expected: 0, duplicates: 0,
            p50Milliseconds: nil, p99Milliseconds: nil, drainSeconds: nil, connections: open.count,
            rssMiB: after.map { Double($0.rssKiB) / 1024 }, peakRssMiB: after.map { Double($0.peakRssKiB) / 1024 },
            rssPerConnectionKiB: perConnection)
        for c in open { try? await c.channel.close() }
        return result
    }

    /// Sign-ins as fast as `concurrency` clients at a time get their CONNACKs; see `RelaySettings`.
    public func connects() async throws -> RelayResult {
        let s = settings
        guard let username = s.username else { throw BenchSettingsError("the connect phase needs --username") }
        let counters = RelayCounters()
        /// Connects each name in turn, `concurrency` at once; CONNACK latencies in milliseconds,
        /// the wall time, and how many were refused.
        func run(_ names: [String], lanes: Int) async throws -> (latencies: [Double], seconds: Double, refused: Int) {
            let started = ContinuousClock.now
            let tally = ConnectTally()
            let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
                for lane in 0..<max(1, lanes) {
                    group.addTask {
                        var mine: [Double] = []
                        while true {
                            let i = tally.next.add(1, ordering: .relaxed).oldValue
                            guard i < names.count else { return mine }
                            let start = ContinuousClock.now
                            do {
                                let c = try await connect(
                                    "\(s.runId)-connect-\(lane)", clean: true, role: .subscriber, counters: counters,
                                    username: names[i])
                                mine.append(MQTTBench.seconds(ContinuousClock.now - start) * 1000)
                                await disconnect(c)
                            } catch {
                                tally.refused.add(1, ordering: .relaxed)
                            }
                        }
                    }
                }
                var all: [Double] = []
                for try await part in group { all += part }
                return all.sorted()
            }
            return (
                latencies, MQTTBench.seconds(ContinuousClock.now - started),
                tally.refused.load(ordering: .relaxed)
            )
        }
        func quantile(_ sorted: [Double], _ q: Double) -> Double? {
            sorted.isEmpty ? nil : sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]
        }
        var cold: (latencies: [Double], seconds: Double, refused: Int)?
        if s.coldAccounts > 0 {
            progress("connect: \(s.coldAccounts) accounts once each (cold)")
            // At most 8 at once: a password never seen before costs a bcrypt check, which a server
            // runs only a few at a time and refuses beyond (CONNACK 3); this measures the rate,
            // not the refusals.
            cold = try await run((0..<s.coldAccounts).map { "\(username)-\($0)" }, lanes: min(8, s.concurrency))
        }
        progress("connect: \(username) \(s.connections) times (cached after the first)")
        let cached = try await run(Array(repeating: username, count: s.connections), lanes: s.concurrency)
        let after = sample()
        return RelayResult(
            phase: "connect", version: Int(s.version.rawValue), subscribers: 0, offered: nil, published: 0,
            publishedPerSecond: 0, deliveredPerSecond: 0, delivered: 0, expected: 0, duplicates: 0,
            p50Milliseconds: quantile(cached.latencies, 0.5), p99Milliseconds: quantile(cached.latencies, 0.99),
            drainSeconds: nil, connections: cached.latencies.count,
            rssMiB: after.map { Double($0.rssKiB) / 1024 }, peakRssMiB: after.map { Double($0.peakRssKiB) / 1024 },
            rssPerConnectionKiB: nil, connectsPerSecond: Double(cached.latencies.count) / cached.seconds,
            coldConnects: cold?.latencies.count,
            coldConnectsPerSecond: cold.map { Double($0.latencies.count) / $0.seconds },
            coldP50Milliseconds: cold.flatMap { quantile($0.latencies, 0.5) },
            coldP99Milliseconds: cold.flatMap { quantile($0.latencies, 0.99) },
            refused: cached.refused + (cold?.refused ?? 0))
    }
}
