import Foundation
import LinliCore
import LinliRules
import LinliStorage
import Logging
import ServiceLifecycle
import Synchronization

/// Runs the community's rules inside `linli serve`: devices' posts, events and status changes are
/// fed in as they arrive (in memory, no I/O on the message path), timers for durations and absence
/// fire from one loop, and what fires is carried out in order by one worker: alarms raised and
/// cleared, trigger states stored so that timers survive a restart.
public final class RuleService: Service, Sendable {
    let store: Store
    let logger: Logger
    private let engine = Mutex(RuleEngine())
    private let work: AsyncStream<Work>.Continuation
    private let queue: AsyncStream<Work>

    enum Work: Sendable {
        case firings([Firing])
        case reload(ID)
        case flush
    }

    public init(store: Store, logger: Logger) {
        self.store = store
        self.logger = logger
        (queue, work) = AsyncStream.makeStream(of: Work.self)
    }

    /// Rules and armed timers, for metrics and tests.
    public var counts: (rules: Int, timers: Int) { engine.withLock { ($0.ruleCount, $0.armedTimers) } }

    /// Something a device did; evaluated at once, its consequences queued.
    public func observe(_ observation: Observation, from device: Device, at now: Millis = nowMillis()) {
        let watched = WatchedDevice(id: device.id, communityId: device.communityId, productKey: device.productKey, deviceName: device.deviceName)
        let firings = engine.withLock { $0.observe(observation, from: watched, now: now) }
        if !firings.isEmpty { work.yield(.firings(firings)) }
    }

    /// A rule was created, changed or deleted: take it up again from the store.
    public func reload(_ ruleId: ID) { work.yield(.reload(ruleId)) }

    public func run() async throws {
        try await load()
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.carryOut() }
                group.addTask { await self.tick() }
                await group.next()
                self.work.finish()
                group.cancelAll()
            }
        }
    }

    /// Enabled rules with their stored states, and the devices they watch.
    func load() async throws {
        let rules = try await store.enabledRules()
        let states = Dictionary(grouping: try await store.triggerStates(), by: \.ruleId)
        for rule in rules {
            engine.withLock { $0.install(rule, states: states[rule.id] ?? []) }
            try await watchDevices(of: rule)
        }
        try await flush()
        let (count, timers) = counts
        logger.info("rules loaded", metadata: ["rules": "\(count)", "timers": "\(timers)"])
    }

    private func watchDevices(of rule: Rule) async throws {
        let now = nowMillis()
        for productKey in Set(rule.definition.triggers.map(\.productKey)) {
            let devices = try await store.devices(communityId: rule.communityId, productKey: productKey)
            engine.withLock { engine in
                for d in devices {
                    engine.watch(WatchedDevice(id: d.id, communityId: d.communityId, productKey: d.productKey, deviceName: d.deviceName), now: now)
                }
            }
        }
    }

    /// Wakes when the next timer is due, and at least once a second to store changed states.
    private func tick() async {
        while !Task.isCancelled {
            let now = nowMillis()
            let (firings, next) = engine.withLock { engine in (engine.expire(now: now), engine.nextDue) }
            if !firings.isEmpty { work.yield(.firings(firings)) }
            work.yield(.flush)
            let wait = min(max((next ?? .max) - nowMillis(), 5), 1_000)
            try? await Task.sleep(for: .milliseconds(wait))
        }
    }

    private func carryOut() async {
        for await item in queue {
            do {
                switch item {
                case let .firings(firings):
                    for firing in firings { try await act(on: firing) }
                    try await flush()
                case let .reload(id):
                    if let rule = try await store.rule(id: id) {
                        engine.withLock { $0.install(rule) }
                        if rule.enabled { try await watchDevices(of: rule) }
                    } else {
                        engine.withLock { $0.remove(id) }
                    }
                    try await flush()
                case .flush:
                    try await flush()
                }
            } catch {
                logger.error("rule work failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private func flush() async throws {
        let (save, delete) = engine.withLock { $0.takeChanges() }
        try await store.saveTriggerStates(save, delete: delete)
    }

    /// Carries out a rule's actions for a trigger that fired, or undoes what lasts when it ended.
    private func act(on firing: Firing) async throws {
        let rule = firing.rule
        let device = try await store.device(id: firing.device.id)
        let sourceName = device.map { ($0.nickname.isEmpty ? "" : $0.nickname + " ") + "\($0.productKey)/\($0.deviceName)" }
            ?? "\(firing.device.productKey)/\(firing.device.deviceName)"
        for action in rule.definition.actions {
            switch action.type {
            case .alarm:
                guard let type = action.alarmType, let severity = action.severity else { continue }
                switch firing.change {
                case .fired:
                    let raised = try await store.raiseAlarm(AlarmRaise(
                        communityId: rule.communityId, type: type, severity: severity, sourceType: "device", sourceId: firing.device.id, sourceName: sourceName,
                        buildingId: device?.buildingId, householdId: device?.householdId, ruleId: rule.id,
                        message: action.message ?? rule.name, detail: firing.detail, at: firing.at), actor: Principal(accountId: nil, name: "rule \(rule.name)"))
                    logger.info(raised.isNew ? "alarm raised" : "alarm repeated",
                                metadata: ["rule": "\(rule.name)", "alarm": "\(raised.alarm.id)", "source": "\(sourceName)", "type": "\(type)"])
                case .ended:
                    // Only what lasts clears itself: an alarm from an event waits for a person.
                    guard firing.trigger.hasEnd else { continue }
                    if let cleared = try await store.clearAlarm(sourceId: firing.device.id, type: type, detail: firing.detail,
                                                                actor: Principal(accountId: nil, name: "rule \(rule.name)")) {
                        logger.info("alarm cleared", metadata: ["rule": "\(rule.name)", "alarm": "\(cleared.id)", "source": "\(sourceName)"])
                    }
                }
            }
        }
    }
}
