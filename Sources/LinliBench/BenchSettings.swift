import LinliMQTT

/// A bad setting, worded for the command line.
public struct BenchSettingsError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `host:port`, or `[v6 address]:port`.
public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public static func parse(_ text: String, option: String = "--mqtt") throws(BenchSettingsError) -> Endpoint {
        guard let colon = text.lastIndex(of: ":") else {
            throw BenchSettingsError("\(option) must be host:port, got '\(text)'")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port) else {
            throw BenchSettingsError("\(option) must be host:port with a port from 1 to 65535, got '\(text)'")
        }
        return Endpoint(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// What one run of the generator does. `validate()` is the single place where values are checked.
public struct MQTTBenchSettings: Sendable, Equatable {
    public var endpoint = Endpoint(host: "127.0.0.1", port: 1883)
    /// Simulated devices, one connection each.
    public var devices = 1_000
    /// Property posts per second, all devices together.
    public var rate: Double = 10_000
    public var qos: QoS = .atLeastOnce
    /// Seconds measured, after the warm-up.
    public var duration: Double = 30
    /// Seconds of load before measuring starts (connections settle, caches fill, the JIT-free
    /// server still has allocator pools and SQLite pages to warm).
    public var warmup: Double = 5
    /// Open the connections and hold them, publishing nothing.
    public var connectOnly = false
    /// Connect-only: seconds to hold the connections once all are open.
    public var hold: Double = 30
    /// QoS 1 messages per device awaiting PUBACK at most.
    public var inflight = 16
    /// Connections being opened at once (each waits for its CONNACK).
    public var connectConcurrency = 64
    public var keepAlive: UInt16 = 60
    /// One more connection subscribing to this filter and counting what is relayed to it.
    public var subscribeFilter: String?
    /// The server process, for its memory and CPU from /proc.
    public var serverPid: Int32?
    /// The server's Prometheus endpoint, for `linli_telemetry_commit_seconds`.
    public var metricsURL: String?

    public init() {}

    /// Linli's broker closes a client publishing faster than this (its default `maxPublishesPerSecond`).
    public static let brokerPerClientLimit = 1_000.0

    public var perDeviceRate: Double { rate / Double(devices) }

    public func validate() throws(BenchSettingsError) {
        guard (1...1_000_000).contains(devices) else {
            throw BenchSettingsError("--devices must be from 1 to 1000000, got \(devices)")
        }
        guard qos == .atMostOnce || qos == .atLeastOnce else { throw BenchSettingsError("--qos must be 0 or 1") }
        guard (1...1_024).contains(inflight) else {
            throw BenchSettingsError("--inflight must be from 1 to 1024, got \(inflight)")
        }
        guard (1...10_000).contains(connectConcurrency) else {
            throw BenchSettingsError("--connect-concurrency must be from 1 to 10000, got \(connectConcurrency)")
        }
        guard keepAlive >= 10 else { throw BenchSettingsError("--keep-alive must be at least 10 seconds") }
        if connectOnly {
            guard hold > 0, hold <= 86_400 else {
                throw BenchSettingsError("--hold must be more than 0 and at most 86400 seconds, got \(hold)")
            }
        } else {
            guard rate.isFinite, rate > 0, rate <= 10_000_000 else {
                throw BenchSettingsError("--rate must be more than 0 and at most 10000000 messages/s, got \(rate)")
            }
            guard duration.isFinite, duration > 0, duration <= 86_400 else {
                throw BenchSettingsError("--duration must be more than 0 and at most 86400 seconds, got \(duration)")
            }
            guard warmup.isFinite, warmup >= 0, warmup <= 3_600 else {
                throw BenchSettingsError("--warmup must be from 0 to 3600 seconds, got \(warmup)")
            }
        }
        if let filter = subscribeFilter {
            do { try Topic.validateFilter(filter, limits: MQTTLimits()) } catch {
                throw BenchSettingsError("--subscribe-filter '\(filter)' is not a valid topic filter: \(error)")
            }
        }
        if let pid = serverPid, pid <= 0 { throw BenchSettingsError("--server-pid must be a process id, got \(pid)") }
        if let url = metricsURL { _ = try HTTPTarget.parse(url) }
    }
}
