import NIOCore

/// Everything the generator does on one event loop: the ready clients on it, their counters, and
/// one pacing timer that hands messages out round-robin. One timer per loop (not one per device)
/// keeps the generator's own cost low, so the CPU it shares with the server goes to the server.
/// Confined to its loop: reached from elsewhere only through `NIOLoopBound` and `submit`.
final class LoopDriver {
    let eventLoop: EventLoop
    var counters = BenchCounters()
    /// Ready devices, in the order the round-robin visits them, each with whether its window has
    /// room for another post. The pacing loop scans this compact array and touches a device only
    /// when it can post: when the server is the bottleneck most windows are full, and asking each
    /// device in turn cost the generator more than the posts themselves.
    ///
    /// Handlers are held unmanaged, since a strong reference costs a retain and a release per
    /// visit. Safe because each channel's pipeline owns its handler, and a handler leaves this
    /// list (`detach`, from channelInactive or handlerRemoved) before the pipeline lets go of it.
    private var devices: [DeviceSlot] = []
    /// How many of `devices` have room: when none has, a tick ends at once.
    private var devicesWithRoom = 0
    /// Ready subscribers: they only need keep-alive pings.
    private var subscribers: [Unmanaged<BenchClientHandler>] = []
    private var cursor = 0
    private var pacer: RatePacer?
    private var pacingTask: RepeatedTask?
    private var keepAliveTask: RepeatedTask?
    /// Acknowledgements of messages sent before this instant are not measured (they straddle a reset).
    private var measuringSince: UInt64 = 0

    struct DeviceSlot {
        let handler: Unmanaged<BenchClientHandler>
        var hasRoom: Bool
    }

    /// How often the pacer runs. 1 ms keeps each batch small (rate/1000 posts spread over the
    /// devices) without a timer per device.
    static let tick = TimeAmount.milliseconds(1)

    init(eventLoop: EventLoop) { self.eventLoop = eventLoop }

    var readyDevices: Int { devices.count }
    var inflight: Int { devices.reduce(0) { $0 + $1.handler.takeUnretainedValue().inflightCount } }

    func attach(_ client: BenchClientHandler) {
        if client.isDevice {
            client.driverSlot = devices.count
            devices.append(DeviceSlot(handler: Unmanaged.passUnretained(client), hasRoom: client.hasRoom))
            if client.hasRoom { devicesWithRoom += 1 }
        } else {
            client.driverSlot = subscribers.count
            subscribers.append(Unmanaged.passUnretained(client))
        }
    }

    /// A ready device's window filled up or has room again; `slot` is its `driverSlot`.
    func device(at slot: Int, hasRoom: Bool) {
        guard devices.indices.contains(slot), devices[slot].hasRoom != hasRoom else { return }
        devices[slot].hasRoom = hasRoom
        devicesWithRoom += hasRoom ? 1 : -1
    }

    /// A ready client's connection ended; `expected` when the generator closed it.
    func detach(_ client: BenchClientHandler, expected: Bool) {
        if !expected { counters.disconnects += 1 }
        let slot = client.driverSlot
        client.driverSlot = -1
        if client.isDevice {
            guard devices.indices.contains(slot) else { return }
            if devices[slot].hasRoom { devicesWithRoom -= 1 }
            let last = devices.removeLast()
            if slot < devices.count {
                devices[slot] = last
                last.handler.takeUnretainedValue().driverSlot = slot
            }
        } else {
            guard subscribers.indices.contains(slot) else { return }
            let last = subscribers.removeLast()
            if slot < subscribers.count {
                subscribers[slot] = last
                last.takeUnretainedValue().driverSlot = slot
            }
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
        pacingTask = eventLoop.scheduleRepeatedTask(initialDelay: Self.tick, delay: Self.tick) { _ in
            bound.value.paceOnce()
        }
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
        // Round-robin from where the last tick stopped, over the devices with room; give up after
        // a whole round without a post. With more posts due than devices (few devices, a high
        // rate), each device takes its share of the tick in one visit, so its posts leave in one
        // write instead of one write each.
        var misses = 0
        while due > 0, devicesWithRoom > 0, misses < devices.count {
            if cursor >= devices.count { cursor = 0 }
            let slot = devices[cursor]
            cursor += 1
            guard slot.hasRoom else {
                misses += 1
                continue
            }
            let share = Swift.max(1, due / devices.count)
            let written = slot.handler._withUnsafeGuaranteedRef { $0.publish(upTo: share) }
            if written > 0 {
                counters.sent += UInt64(written)
                due -= written
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
            for client in driver.devices.map(\.handler) + driver.subscribers {
                client.takeUnretainedValue().pingIfIdle(now: now, idleNanos: idle)
            }
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
        for client in devices.map(\.handler) + subscribers { client.takeUnretainedValue().disconnect() }
    }
}
