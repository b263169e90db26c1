import Foundation

/// What a run measured: printed as a small table for people and as one JSON line for scripts.
/// Rates are per second over the measured window (after the warm-up); nil where they do not apply.
public struct MQTTBenchResult: Codable, Sendable, Equatable {
    public struct Latency: Codable, Sendable, Equatable {
        public var samples: UInt64
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var max: Double
        public var mean: Double
    }

    public struct Server: Codable, Sendable, Equatable {
        public var rssMiB: Double
        public var peakRssMiB: Double
        /// Of one core: 200 is both cores of this machine busy.
        public var cpuPercent: Double?
        public var openFiles: Int?
        public var openFilesLimit: Int?
    }

    /// `linli_telemetry_commit_seconds` from the server's /metrics, over the measured window.
    public struct CommitTimes: Codable, Sendable, Equatable {
        /// "histogram", "summary", "absent", or "unreachable: …".
        public var series: String
        public var commits: Double?
        public var meanMs: Double?
        public var p50Ms: Double?
        public var p90Ms: Double?
        public var p99Ms: Double?
    }

    /// "alink" (signed devices on Linli) or "plain" (anonymous clients, for any broker).
    public var mode: String
    /// "throughput" or "connect-only".
    public var kind: String
    public var qos: Int
    public var devices: Int
    public var connected: Int
    public var connectSeconds: Double
    public var connectFailures: Int
    public var connectFailureReasons: [String: Int]
    public var targetRate: Double?
    public var measuredSeconds: Double?
    public var sentPerSecond: Double?
    public var ackedPerSecond: Double?
    /// publish → PUBACK in milliseconds (QoS 1 only).
    public var latencyMs: Latency?
    public var repliesPerSecond: Double?
    public var rejectedReplies: UInt64
    public var firstRejection: String?
    public var relayedPerSecond: Double?
    public var notSent: UInt64
    /// QoS 1 messages still unacknowledged a few seconds after sending stopped.
    public var unackedAtEnd: UInt64
    public var protocolErrors: UInt64
    /// Connect failures, protocol errors, rejected posts and messages never acknowledged.
    public var errors: UInt64
    /// Connections the server (or the network) closed after they were ready.
    public var disconnects: UInt64
    /// Connect-only: connections still open at the end of the hold.
    public var stillConnected: Int?
    public var server: Server?
    /// This generator's own CPU over the measured window, percent of one core.
    public var generatorCPUPercent: Double?
    public var telemetryCommit: CommitTimes?

    public func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    public func table() -> String {
        var rows: [(String, String)] = []
        func add(_ name: String, _ value: String?) { if let value { rows.append((name, value)) } }
        add("mode", "\(mode), \(kind), QoS \(qos)")
        add(
            "connected",
            "\(connected) of \(devices) in \(Self.f(connectSeconds, 1)) s"
                + (connectFailures > 0 ? ", \(connectFailures) failed" : ""))
        for (reason, n) in connectFailureReasons.sorted(by: { $0.value > $1.value }).prefix(3) {
            add("  failure", "\(n) × \(reason)")
        }
        add("still connected", stillConnected.map { "\($0) after the hold" })
        add("target rate", targetRate.map { Self.thousands($0) + " /s" })
        add("sent", sentPerSecond.map { Self.thousands($0) + " /s over \(Self.f(measuredSeconds ?? 0, 1)) s" })
        add("acknowledged", ackedPerSecond.map { Self.thousands($0) + " /s" })
        if let l = latencyMs {
            add(
                "publish → PUBACK",
                "p50 \(Self.f(l.p50, 2)) ms, p90 \(Self.f(l.p90, 2)) ms, p99 \(Self.f(l.p99, 2)) ms, max \(Self.f(l.max, 1)) ms"
            )
        }
        add(
            "replies",
            repliesPerSecond.map {
                Self.thousands($0) + " /s" + (rejectedReplies > 0 ? ", \(rejectedReplies) not 200" : "")
            })
        add("  first rejection", firstRejection)
        add("relayed to subscriber", relayedPerSecond.map { Self.thousands($0) + " /s" })
        if kind == "throughput" {
            add("not sent", "\(notSent) (windows full or sockets backed up)")
            add("unacked at end", "\(unackedAtEnd)")
        }
        add("errors", "\(errors) (protocol \(protocolErrors)), disconnects \(disconnects)")
        if let s = server {
            add("server memory", "RSS \(Self.f(s.rssMiB, 1)) MiB, peak \(Self.f(s.peakRssMiB, 1)) MiB")
            add("server CPU", s.cpuPercent.map { "\(Self.f($0, 0)) % of one core" })
            add("server open files", s.openFiles.map { "\($0)" + (s.openFilesLimit.map { " of \($0)" } ?? "") })
        }
        add("generator CPU", generatorCPUPercent.map { "\(Self.f($0, 0)) % of one core" })
        if let c = telemetryCommit {
            if c.series == "absent" || c.series.hasPrefix("unreachable") {
                add("telemetry commit", "linli_telemetry_commit_seconds: \(c.series)")
            } else {
                let q = [("p50", c.p50Ms), ("p90", c.p90Ms), ("p99", c.p99Ms), ("mean", c.meanMs)].compactMap {
                    name, v in v.map { "\(name) \(Self.f($0, 2)) ms" }
                }
                add(
                    "telemetry commit",
                    "\(c.series), \(Self.thousands(c.commits ?? 0)) commits: " + q.joined(separator: ", "))
            }
        }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(toLength: width + 2, withPad: " ", startingAt: 0) + $0.1 }.joined(
            separator: "\n")
    }

    static func f(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

    static func thousands(_ value: Double) -> String {
        let digits = String(Int(value.rounded()))
        var out = ""
        for (i, c) in digits.reversed().enumerated() {
            if i > 0, i % 3 == 0, c != "-" { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }
}
