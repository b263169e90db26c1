import NIOCore

/// Everything the generator does on one event loop: the ready clients on it, their counters, and
/// one pacing timer that hands messages out round-robin. One timer per loop (not one per device)
/// keeps the generator's own cost low, so the CPU it shares with the server goes to the server.
/// Confined to its loop: reached from elsewhere only through `NIOLoopBound` and `submit`.
final class LoopDriver {
    let eventLoop: EventLoop
    var counters = BenchCounters()
    /// Ready devices, in the order the round-robin visits them.
    private var devices: [BenchClientHandler] = []
    /// Ready subscribers: they only need keep-alive pings.
    private var subscribers: [BenchClientHandler] = []
    private var cursor = 0
    private var pacer: RatePacer?
    private var pacingTask: RepeatedTask?
    private var keepAliveTask: RepeatedTask?
    /// Acknowledgements of messages sent before this instant are not measured (they straddle a reset).
    private var measuringSince: UInt64 = 0

    /// How often the pacer runs. 1 ms keeps each batch small (rate/1000 posts spread over the
    /// devices) without a timer per device.
    static let tick = TimeAmount.milliseconds(1)

    init(eventLoop: EventLoop) { self.eventLoop = eventLoop }

    var readyDevices: Int { devices.count }
    var inflight: Int { devices.reduce(0) { $0 + $1.inflightCount } }

    func attach(_ client: BenchClientHandler) {
        if client.isDevice {
            client.driverSlot = devices.count
            devices.append(client)
        } else {
            client.driverSlot = subscribers.count
            subscribers.append(client)
        }
    }

    /// A ready client's connection ended; `expected` when the generator closed it.
    func detach(_ client: BenchClientHandler, expected: Bool) {
        if !expected { counters.disconnects += 1 }
        let slot = client.driverSlot
        client.driverSlot = -1
        if client.isDevice {
            Self.remove(slot, from: &devices)
        } else {
            Self.remove(slot, from: &subscribers)
        }
    }

    private static func remove(_ slot: Int, from list: inout [BenchClientHandler]) {
        guard list.indices.contains(slot) else { return }
        let last = list.removeLast()
        if slot < list.count {
            list[slot] = last
            last.driverSlot = slot
        }
    }

    func acknowledged(sentAt: UInt64, now: UInt64) {
        guard sentAt >= measuringSince else { return }
        counters.acked += 1
        counters.latency.record(now &- sentAt)
    }

    // MARK: pacing

    func startPacing(perSecond: Double) {
        stopPacing()
        guard perSecond > 0 else { return }
        pacer = RatePacer(perSecond: perSecond)
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        pacingTask = eventLoop.scheduleRepeatedTask(initialDelay: Self.tick, delay: Self.tick) { _ in bound.value.paceOnce() }
    }

    func stopPacing() {
        pacingTask?.cancel()
        pacingTask = nil
        pacer = nil
    }

    private func paceOnce() {
        guard var pacer else { return }
        var due = pacer.due(atNanos: NIODeadline.now().uptimeNanoseconds)
        self.pacer = pacer
        // Round-robin from where the last tick stopped; give up after a whole round without room.
        var misses = 0
        while due > 0, misses < devices.count {
            if cursor >= devices.count { cursor = 0 }
            let device = devices[cursor]
            cursor += 1
            if device.publishIfPossible(now: NIODeadline.now().uptimeNanoseconds) {
                counters.sent += 1
                due -= 1
                misses = 0
            } else {
                misses += 1
            }
        }
        counters.notSent += UInt64(due)
    }

    // MARK: keep-alive, measurement, end

    /// Pings clients silent for half their keep-alive (held connections publish nothing).
    func startKeepAlive(seconds: UInt16) {
        let idle = UInt64(seconds) * 500_000_000
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        keepAliveTask = eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            let driver = bound.value
            let now = NIODeadline.now().uptimeNanoseconds
            for client in driver.devices { client.pingIfIdle(now: now, idleNanos: idle) }
            for client in driver.subscribers { client.pingIfIdle(now: now, idleNanos: idle) }
        }
    }

    /// Starts a measurement: counters from zero, and only messages sent from now on are timed.
    func resetCounters() {
        counters = BenchCounters()
        measuringSince = NIODeadline.now().uptimeNanoseconds
    }

    func snapshot() -> BenchCounters {
        var copy = counters
        copy.inflight = UInt64(inflight)
        return copy
    }

    func disconnectAll() {
        stopPacing()
        keepAliveTask?.cancel()
        keepAliveTask = nil
        // disconnect() ends in detach(), which edits the lists: iterate over copies.
        for client in devices + subscribers { client.disconnect() }
    }
}
