import Logging
import Metrics
import NIOCore
import Synchronization

/// Sockets that have not yet sent their CONNECT, bounded per source address and in all.
///
/// A socket costs a file descriptor before it has said who it is. Without a bound, one host
/// holding thousands of sockets that never finish their CONNECT (each byte a few seconds apart)
/// takes every descriptor and every legitimate device is refused. A CONNECT must be complete
/// within a fixed time of the socket's opening (`ReadDeadlineHandler`), so such a socket lives 10 s
/// at most; here a source address may hold at most `perAddress` of them, and all addresses
/// together `total`. When a bound is reached the *oldest* waiting socket goes, not the newest:
/// a real client sends its CONNECT with its first packet and waits here for a round trip, so the
/// socket that has waited longest is the one least likely to be a client. Devices behind one
/// NAT that reconnect together after a restart thus still get in, while a host that only drips
/// holds no more than its share. IPv6 addresses count by their /64, which one host usually holds.
final class ConnectGate: Sendable {
    struct Ticket: Hashable, Sendable {
        fileprivate let number: UInt64
    }

    private struct Waiting {
        var address: String
        var channel: any Channel
    }

    private struct State {
        var next: UInt64 = 0
        var waiting: [UInt64: Waiting] = [:]
        /// Numbers in arrival order; those that left are skipped when met (and compacted away).
        var order = CircularBuffer<UInt64>(initialCapacity: 64)
        var byAddress: [String: CircularBuffer<UInt64>] = [:]
    }

    let perAddress: Int
    /// Set when the broker starts, from its socket budget.
    private let totalLimit = Atomic<Int>(Int.max)
    var total: Int {
        get { totalLimit.load(ordering: .relaxed) }
        set { totalLimit.store(max(1, newValue), ordering: .relaxed) }
    }
    private let state = Mutex(State())
    private let evictedPerAddress = Counter(
        label: "linli_mqtt_connections_refused_total", dimensions: [("reason", "pending_per_address")])
    private let evictedTotal = Counter(
        label: "linli_mqtt_connections_refused_total", dimensions: [("reason", "pending_total")])

    private let closed = Atomic<Int>(0)
    private let logger: Logger

    init(perAddress: Int, logger: Logger) {
        self.perAddress = max(1, perAddress)
        self.logger = logger
    }

    var count: Int { state.withLock { $0.waiting.count } }
    /// Sockets admitted since the start.
    var admitted: UInt64 { state.withLock { $0.next } }

    /// The key a source address counts under: the address itself, or an IPv6 address's /64.
    static func key(_ remote: SocketAddress?) -> String {
        guard let remote, let ip = remote.ipAddress else { return "-" }
        if case .v6 = remote, !ip.hasPrefix("::ffff:") {
            // The first four groups, written out; `::` shortening is expanded so that one /64
            // has one key however its addresses are written.
            let halves = ip.split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false)
            let head = halves.first.map { $0.split(separator: ":").map(String.init) } ?? []
            let tail = halves.count > 1 ? halves[1].split(separator: ":").map(String.init) : []
            let groups = head + Array(repeating: "0", count: max(0, 8 - head.count - tail.count)) + tail
            return groups.prefix(4).joined(separator: ":") + "::/64"
        }
        return ip
    }

    /// Admits a socket that has just opened; closes the sockets it pushes out.
    func admit(_ channel: any Channel) -> Ticket {
        let address = Self.key(channel.remoteAddress)
        var out: [(gone: Waiting, perAddress: Bool)] = []
        let ticket = state.withLock { state -> Ticket in
            let number = state.next
            state.next += 1
            state.waiting[number] = Waiting(address: address, channel: channel)
            state.order.append(number)
            state.byAddress[address, default: CircularBuffer(initialCapacity: 4)].append(number)
            while let mine = state.byAddress[address], mine.count > perAddress, let oldest = mine.first {
                if let gone = Self.remove(oldest, from: &state) { out.append((gone, true)) }
            }
            let total = self.total
            while state.waiting.count > total, let oldest = state.order.first {
                state.order.removeFirst()
                if let gone = Self.remove(oldest, from: &state) { out.append((gone, false)) }
            }
            if state.order.count > 2 * state.waiting.count + 1_024 {
                state.order = CircularBuffer(state.order.filter { state.waiting[$0] != nil })
            }
            return Ticket(number: number)
        }
        for (gone, perAddress) in out {
            (perAddress ? evictedPerAddress : evictedTotal).increment()
            gone.channel.close(promise: nil)
            let n = closed.add(1, ordering: .relaxed).newValue
            if n == 1 || n % 1_000 == 0 {
                logger.warning(
                    "connection closed: too many sockets waiting for their CONNECT",
                    metadata: [
                        "address": "\(gone.address)",
                        "limit": perAddress ? "\(self.perAddress) per address" : "\(total) in all",
                        "closed": "\(n)",
                    ])
            }
        }
        return ticket
    }

    /// The socket sent its CONNECT, or closed: it no longer waits.
    func leave(_ ticket: Ticket) {
        state.withLock { _ = Self.remove(ticket.number, from: &$0) }
    }

    private static func remove(_ number: UInt64, from state: inout State) -> Waiting? {
        guard let gone = state.waiting.removeValue(forKey: number) else { return nil }
        if var mine = state.byAddress[gone.address] {
            if let index = mine.firstIndex(of: number) { mine.remove(at: index) }
            state.byAddress[gone.address] = mine.isEmpty ? nil : mine
        }
        return gone
    }
}
