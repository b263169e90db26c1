import Foundation
import LinliMQTT
import NIOCore
import NIOPosix

/// One run of the load generator: opens the connections (a bounded number at a time), then either
/// holds them (connect-only) or paces property posts across them, measures after a warm-up, and
/// reports. Connections are spread over `MultiThreadedEventLoopGroup.singleton`'s loops; all the
/// per-message work happens there (see `LoopDriver`), this type only steps through the phases.
public struct MQTTBench: Sendable {
    public var settings: MQTTBenchSettings
    /// "alink" or "plain", for the report.
    public var mode: String
    public var clients: [BenchIdentity]
    public var subscriber: BenchIdentity?
    /// Progress lines for people (and for scripts waiting on "connected …").
    public var progress: @Sendable (String) -> Void

    public init(
        settings: MQTTBenchSettings, mode: String, clients: [BenchIdentity], subscriber: BenchIdentity? = nil,
        progress: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.settings = settings
        self.mode = mode
        self.clients = clients
        self.subscriber = subscriber
        self.progress = progress
    }

    /// One event loop and the driver confined to it.
    struct Lane: Sendable {
        let loop: any EventLoop
        let driver: NIOLoopBound<LoopDriver>

        func run<T: Sendable>(_ body: @escaping @Sendable (LoopDriver) -> T) async throws -> T {
            try await loop.submit { body(driver.value) }.get()
        }
    }

    public func run() async throws -> MQTTBenchResult {
        try settings.validate()
        let needed = clients.count + (subscriber == nil ? 0 : 1) + 32
        let limit = ProcessProbe.raiseOpenFileLimit()
        guard needed <= limit else {
            throw BenchSettingsError(
                "\(clients.count) connections need about \(needed) open files but this process may open \(limit) (ulimit -n); "
                    + "run several generators with fewer --devices each and add up their results (bench/mqtt.sh does)")
        }
        var lanes: [Lane] = []
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            lanes.append(
                try await loop.submit {
                    Lane(loop: loop, driver: NIOLoopBound(LoopDriver(eventLoop: loop), eventLoop: loop))
                }.get())
        }
        for lane in lanes { try await lane.run { $0.startKeepAlive(seconds: settings.keepAlive) } }

        var channels: [any Channel] = []
        if let subscriber, let filter = settings.subscribeFilter {
            switch await open(subscriber, role: .subscriber(filter: filter), lane: lanes[0]) {
            case let .success(channel): channels.append(channel)
            case let .failure(reason):
                throw BenchSettingsError("the subscriber could not subscribe to \(filter): \(reason)")
            }
            progress("subscribed to \(filter)")
        }
        let started = ContinuousClock.now
        let connects = await connectAll(lanes: lanes)
        channels += connects.channels
        let connectSeconds = Self.seconds(ContinuousClock.now - started)
        progress(
            "connected \(connects.channels.count) of \(clients.count) in \(MQTTBenchResult.f(connectSeconds, 1)) s")
        if connects.channels.isEmpty, !clients.isEmpty {
            let reasons = connects.failures.sorted { $0.value > $1.value }.map { "\($0.value) × \($0.key)" }.joined(
                separator: "; ")
            await closeAll(lanes: lanes, channels: channels)
            throw BenchSettingsError("no client could connect to \(settings.endpoint): \(reasons)")
        }

        var result = MQTTBenchResult(
            mode: mode, kind: settings.connectOnly ? "connect-only" : "throughput", qos: Int(settings.qos.rawValue),
            devices: clients.count, connected: connects.channels.count, connectSeconds: connectSeconds,
            connectFailures: connects.failures.values.reduce(0, +), connectFailureReasons: connects.failures,
            rejectedReplies: 0, notSent: 0, unackedAtEnd: 0, protocolErrors: 0, errors: 0, disconnects: 0)
        if settings.connectOnly {
            try await Task.sleep(for: .seconds(settings.hold))
            var still = 0
            var totals = BenchCounters()
            for lane in lanes {
                still += try await lane.run { $0.readyDevices }
                totals.merge(try await lane.run { $0.snapshot() })
            }
            result.stillConnected = still
            result.disconnects = totals.disconnects
            result.protocolErrors = totals.protocolErrors
            result.server = serverSample(from: nil, seconds: 0)
        } else {
            try await measureThroughput(lanes: lanes, into: &result)
        }
        result.errors =
            UInt64(result.connectFailures) + result.protocolErrors + result.rejectedReplies + result.unackedAtEnd
        await closeAll(lanes: lanes, channels: channels)
        return result
    }

    // MARK: phases

    private func measureThroughput(lanes: [Lane], into result: inout MQTTBenchResult) async throws {
        var ready: [Int] = []
        for lane in lanes { ready.append(try await lane.run { $0.readyDevices }) }
        let total = ready.reduce(0, +)
        guard total > 0 else { throw BenchSettingsError("no device connected, so there is nothing to measure") }
        for (lane, onLoop) in zip(lanes, ready) {
            let share = RateSplit.loopRate(settings.rate, devicesOnLoop: onLoop, devicesConnected: total)
            try await lane.run { $0.startPacing(perSecond: share) }
        }
        progress(
            "warming up for \(MQTTBenchResult.f(settings.warmup, 0)) s at \(MQTTBenchResult.thousands(settings.rate))/s"
        )
        try await Task.sleep(for: .seconds(settings.warmup))

        let target = try settings.metricsURL.map(HTTPTarget.parse)
        let metricsBefore = await scrape(target)
        for lane in lanes { try await lane.run { $0.resetCounters() } }
        let t0 = ContinuousClock.now
        let ownCPU0 = ProcessProbe.ownCPUSeconds()
        let server0 = settings.serverPid.flatMap(ProcessProbe.sample)
        progress("measuring for \(MQTTBenchResult.f(settings.duration, 0)) s")
        try await Task.sleep(for: .seconds(settings.duration))

        var totals = BenchCounters()
        for lane in lanes { totals.merge(try await lane.run { $0.snapshot() }) }
        let elapsed = Self.seconds(ContinuousClock.now - t0)
        let ownCPU = ProcessProbe.ownCPUSeconds() - ownCPU0
        result.server = serverSample(from: server0, seconds: elapsed)
        for lane in lanes { try await lane.run { $0.stopPacing() } }
        let metricsAfter = await scrape(target)

        // Sending has stopped: give the last messages a few seconds to be acknowledged.
        var inflight = 0
        let drainUntil = ContinuousClock.now + .seconds(5)
        repeat {
            inflight = 0
            for lane in lanes { inflight += try await lane.run { $0.inflight } }
            if inflight > 0 { try await Task.sleep(for: .milliseconds(50)) }
        } while inflight > 0 && ContinuousClock.now < drainUntil

        result.targetRate = settings.rate
        result.measuredSeconds = elapsed
        result.sentPerSecond = Double(totals.sent) / elapsed
        result.notSent = totals.notSent
        result.protocolErrors = totals.protocolErrors
        result.disconnects = totals.disconnects
        result.generatorCPUPercent = ownCPU / elapsed * 100
        if mode == "alink" {
            result.repliesPerSecond = Double(totals.replies) / elapsed
            result.rejectedReplies = totals.rejectedReplies
            result.firstRejection = totals.firstRejection
        }
        if subscriber != nil { result.relayedPerSecond = Double(totals.relayed) / elapsed }
        if settings.qos == .atLeastOnce {
            result.ackedPerSecond = Double(totals.acked) / elapsed
            result.unackedAtEnd = UInt64(inflight)
            let h = totals.latency
            if h.count > 0 {
                func ms(_ ns: UInt64?) -> Double { Double(ns ?? 0) / 1e6 }
                result.latencyMs = .init(
                    samples: h.count, p50: ms(h.percentile(50)), p90: ms(h.percentile(90)), p99: ms(h.percentile(99)),
                    max: ms(h.max), mean: (h.mean ?? 0) / 1e6)
            }
        }
        if target != nil { result.telemetryCommit = Self.commitTimes(before: metricsBefore, after: metricsAfter) }
    }

    private func connectAll(lanes: [Lane]) async -> (channels: [any Channel], failures: [String: Int]) {
        var channels: [any Channel] = []
        var failures: [String: Int] = [:]
        await withTaskGroup(of: Result<any Channel, ConnectError>.self) { group in
            var next = clients.startIndex
            func startNext() {
                guard next < clients.endIndex else { return }
                let index = next
                next += 1
                group.addTask { await open(clients[index], role: .device, lane: lanes[index % lanes.count]) }
            }
            for _ in 0..<settings.connectConcurrency { startNext() }
            var done = 0
            while let outcome = await group.next() {
                switch outcome {
                case let .success(channel): channels.append(channel)
                case let .failure(error): failures[error.reason, default: 0] += 1
                }
                done += 1
                if done % 5_000 == 0 {
                    progress("… \(done) of \(clients.count) connection attempts done, \(channels.count) ready")
                }
                startNext()
            }
        }
        return (channels, failures)
    }

    struct ConnectError: Error { var reason: String }

    /// Opens one connection and waits until the client is ready (CONNACK, or SUBACK for the subscriber).
    private func open(_ identity: BenchIdentity, role: BenchClientHandler.Role, lane: Lane) async -> Result<
        any Channel, ConnectError
    > {
        let ready = lane.loop.makePromise(of: Void.self)
        let settings = settings
        var channel: (any Channel)?
        do {
            channel = try await ClientBootstrap(group: lane.loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(10))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // One handler, reading and writing raw MQTT bytes (see BenchWire).
                        try channel.pipeline.syncOperations.addHandler(
                            BenchClientHandler(
                                identity: identity, role: role, qos: settings.qos,
                                inflight: settings.inflight, keepAlive: settings.keepAlive,
                                driver: lane.driver.value, ready: ready))
                    }
                }
                .connect(host: settings.endpoint.host, port: settings.endpoint.port).get()
            try await ready.futureResult.get()
            return .success(channel!)
        } catch {
            ready.fail(error)  // a no-op when the handler already failed it; never leaves it pending
            try? await channel?.close()
            return .failure(ConnectError(reason: Self.reason(error)))
        }
    }

    /// Failure reasons grouped by kind, without the addresses that would make each one unique.
    static func reason(_ error: any Error) -> String {
        if let failure = error as? BenchConnectFailure { return failure.description }
        if let io = error as? IOError { return "socket: \(io.description)" }
        if let connection = error as? NIOConnectionError {
            let first =
                connection.connectionErrors.first.map { String(describing: $0.error) }
                ?? "the host name did not resolve"
            return "connect: \(first.prefix(100))"
        }
        if error is ChannelError { return "connect: \(error)" }
        return String(String(describing: error).prefix(100))
    }

    private func closeAll(lanes: [Lane], channels: [any Channel]) async {
        for lane in lanes { _ = try? await lane.run { $0.disconnectAll() } }
        let deadline = ContinuousClock.now + .seconds(10)
        for channel in channels {
            if ContinuousClock.now > deadline { try? await channel.close() }
            try? await channel.closeFuture.get()
        }
    }

    // MARK: probes

    private func serverSample(from start: ProcessSample?, seconds: Double) -> MQTTBenchResult.Server? {
        guard let pid = settings.serverPid, let now = ProcessProbe.sample(pid: pid) else { return nil }
        let cpu = start.map { seconds > 0 ? (now.cpuSeconds - $0.cpuSeconds) / seconds * 100 : 0 }
        return .init(
            rssMiB: Double(now.rssKiB) / 1024, peakRssMiB: Double(now.peakRssKiB) / 1024, cpuPercent: cpu,
            openFiles: now.openFiles, openFilesLimit: now.openFilesLimit)
    }

    static let commitSeries = "linli_telemetry_commit_seconds"

    private func scrape(_ target: HTTPTarget?) async -> Result<String, ConnectError>? {
        guard let target else { return nil }
        do { return .success(try await HTTPGet.fetch(target)) } catch {
            return .failure(ConnectError(reason: "\(error)"))
        }
    }

    static func commitTimes(before: Result<String, ConnectError>?, after: Result<String, ConnectError>?)
        -> MQTTBenchResult.CommitTimes
    {
        let text: String
        switch after {
        case let .success(body)?: text = body
        case let .failure(error)?: return .init(series: "unreachable: \(error.reason)")
        case nil: return .init(series: "unreachable")
        }
        guard let now = PrometheusSeries.parse(commitSeries, from: text) else { return .init(series: "absent") }
        let earlier = (try? before?.get()).flatMap { PrometheusSeries.parse(commitSeries, from: $0) }
        let window = now.since(earlier)
        let mean = window.count > 0 ? window.sum / window.count * 1000 : nil
        if !window.buckets.isEmpty {
            return .init(
                series: "histogram", commits: window.count, meanMs: mean,
                p50Ms: window.estimatedQuantile(0.5).map { $0 * 1000 },
                p90Ms: window.estimatedQuantile(0.9).map { $0 * 1000 },
                p99Ms: window.estimatedQuantile(0.99).map { $0 * 1000 })
        }
        // A summary's quantiles are the server's own (over its window, not exactly ours).
        func q(_ x: Double) -> Double? { now.quantiles[x].map { $0 * 1000 } }
        return .init(
            series: "summary", commits: window.count, meanMs: mean, p50Ms: q(0.5), p90Ms: q(0.9), p99Ms: q(0.99))
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
