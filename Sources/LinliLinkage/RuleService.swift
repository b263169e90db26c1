import Foundation
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliHTTP
import LinliMessaging
import LinliStorage
import LinliThings
import LinliWorkOrders
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Runs the community's rules inside `linli serve`: devices' posts, events and status changes are
/// fed in as they arrive (in memory, no I/O on the message path), timers for durations and absence
/// fire from one loop, and what fires is carried out in order by one worker: alarms raised and
/// cleared, trigger states stored so that timers survive a restart.
public final class RuleService: Service, Sendable {
    package let store: Store
    package let logger: Logger
    private let engine = Mutex(RuleEngine())
    /// The engine's `watchesDevices`, readable without its lock: while no rule watches devices,
    /// their posts do not take the lock at all (every post of every device passes here).
    private let devicesWatched = Atomic<Bool>(false)
    /// Where device actions go, once the broker runs; nil when it does not.
    private let devices = Mutex<DeviceGateway?>(nil)
    private let webhooks = Mutex<WebhookService?>(nil)
    private let installedRules = Gauge(label: "linli_rules_installed")
    private let armedTimers = Gauge(label: "linli_rule_timers_armed")
    /// Firings taken back because their conditions did not hold, until their end comes by.
    private let suppressed = Mutex<Set<String>>([])
    private let work: AsyncStream<Work>.Continuation
    private let queue: AsyncStream<Work>

    package enum Work: Sendable {
        case firings([Firing])
        case reload(ID)
        case flush
        case escalate
    }

    public init(store: Store, logger: Logger) {
        self.store = store
        self.logger = logger
        (queue, work) = AsyncStream.makeStream(of: Work.self)
    }

    /// Connects the actions that reach out: devices through the broker, other systems by webhook.
    public func attach(devices gateway: DeviceGateway?, webhooks service: WebhookService?) {
        devices.withLock { $0 = gateway }
        webhooks.withLock { $0 = service }
    }

    /// Rules and armed timers, for metrics and tests.
    public var counts: (rules: Int, timers: Int) { engine.withLock { ($0.ruleCount, $0.armedTimers) } }

    /// Something a device did; evaluated at once, its consequences queued.
    public func observe(_ observation: Observation, from device: Device, at now: Millis = nowMillis()) {
        guard watchesDevices else { return }
        let watched = WatchedDevice(device)
        let firings = engine.withLock { $0.observe(observation, from: watched, now: now) }
        if !firings.isEmpty { work.yield(.firings(firings)) }
    }

    /// Whether any rule waits for what devices do; when none does, posts need not be shown to the rules.
    public var watchesDevices: Bool { devicesWatched.load(ordering: .relaxed) }

    /// Installs or removes rules, keeping `devicesWatched` in step.
    private func changeRules(_ change: (inout RuleEngine) -> Void) {
        engine.withLock { engine in
            change(&engine)
            devicesWatched.store(engine.watchesDevices, ordering: .relaxed)
        }
    }

    /// A rule was created, changed or deleted: take it up again from the store.
    public func reload(_ ruleId: ID) { work.yield(.reload(ruleId)) }

    public func run() async throws {
        try await load()
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.carryOut() }
                group.addTask { await self.tick() }
                group.addTask { await self.followLog() }
                await group.next()
                self.work.finish()
                group.cancelAll()
            }
        }
    }

    /// Enabled rules with their stored states, and the devices they watch.
    package func load() async throws {
        let rules = try await store.enabledRules()
        let states = Dictionary(grouping: try await store.triggerStates(), by: \.ruleId)
        for rule in rules {
            let restored = states[rule.id] ?? []
            changeRules { $0.install(rule, states: restored) }
            try await watchDevices(of: rule, restoring: !restored.isEmpty)
        }
        try await flush()
        let (count, timers) = counts
        logger.info("rules loaded", metadata: ["rules": "\(count)", "timers": "\(timers)"])
    }

    /// Introduces a rule's devices to the engine where it must know them before they speak:
    /// absence is timed from now, and restored durations re-arm. Other triggers meet their devices
    /// when they post, so a threshold rule costs no device listing to install.
    private func watchDevices(of rule: Rule, restoring: Bool) async throws {
        let now = nowMillis()
        let triggers = rule.definition.triggers.filter { $0.watchesDevices && (restoring || $0.type == .absence) }
        // One device when every trigger on a product names it; else the product's devices.
        for (productKey, group) in Dictionary(grouping: triggers, by: \.productKey) {
            let names = Set(group.map(\.deviceName))
            let devices: [Device]
            if names.count == 1, let name = names.first ?? nil {
                devices =
                    try await store.device(productKey: productKey, deviceName: name).map { [$0] }?.filter {
                        $0.communityId == rule.communityId
                    } ?? []
            } else {
                devices = try await store.devices(communityId: rule.communityId, productKey: productKey)
            }
            engine.withLock { engine in
                for d in devices {
                    engine.watch(WatchedDevice(d), now: now)
                }
            }
        }
    }

    package static let consumer = "rules"

    /// Feeds the community's domain events (a work order overdue, an alarm raised) to rules that
    /// start from them. Resumes after its checkpoint; a new installation starts at the log's end
    /// rather than replaying history.
    private func followLog() async {
        do {
            if try await store.read({ db in try await EventLog.checkpoint(db, consumer: Self.consumer) }) == 0 {
                let end = try await store.read { db in try await EventLog.latestSeq(db) }
                try await store.acknowledge(consumer: Self.consumer, through: end)
            }
            var acknowledged: Int64 = 0
            var lastSave = ContinuousClock.now
            let interesting = Set(RuleDefinition.domainEvents)
            for try await event in store.events(from: .checkpoint(consumer: Self.consumer)) {
                if interesting.contains(event.type), let communityId = event.communityId {
                    let subject = WatchedDevice(
                        id: event.subjectId, communityId: communityId, productKey: "", deviceName: event.subjectType)
                    let firings = engine.withLock { $0.observe(.domain(event.type), from: subject, now: event.at) }
                    if !firings.isEmpty { work.yield(.firings(firings)) }
                }
                if event.seq - acknowledged >= 200 || ContinuousClock.now - lastSave > .seconds(1) {
                    try await store.acknowledge(consumer: Self.consumer, through: event.seq)
                    acknowledged = event.seq
                    lastSave = .now
                }
            }
        } catch {
            if !Task.isCancelled {
                logger.error("rules stopped following the event log", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Wakes when the next timer is due, and at least once a second to store changed states.
    private func tick() async {
        var lastEscalationLook: Millis = 0
        while !Task.isCancelled {
            let now = nowMillis()
            let (firings, next, rules, timers) = engine.withLock { engine in
                (engine.expire(now: now), engine.nextDue, engine.ruleCount, engine.armedTimers)
            }
            installedRules.record(rules)
            armedTimers.record(timers)
            if !firings.isEmpty { work.yield(.firings(firings)) }
            work.yield(.flush)
            if now - lastEscalationLook >= 1_000 {
                lastEscalationLook = now
                work.yield(.escalate)
            }
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
                        changeRules { $0.install(rule) }
                        if rule.enabled { try await watchDevices(of: rule, restoring: false) }
                    } else {
                        changeRules { $0.remove(id) }
                    }
                    try await flush()
                case .flush:
                    try await flush()
                case .escalate:
                    try await escalate()
                }
            } catch {
                logger.error("rule work failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Tells the next tier about every unacknowledged alarm whose escalation is due, once each.
    private func escalate() async throws {
        let now = nowMillis()
        for order in try await store.markOverdueWorkOrders(now: now) {
            logger.notice(
                "work order overdue",
                metadata: ["number": "\(order.number)", "assignee": "\(order.assigneeName ?? "-")"])
        }
        for (notice, silent) in try await store.markUnansweredNotices(now: now) where silent > 0 {
            logger.notice("notice unanswered", metadata: ["notice": "\(notice.id)", "households": "\(silent)"])
        }
        for alarm in try await store.alarmsToEscalate(now: now) {
            guard let ruleId = alarm.ruleId, let rule = try await store.rule(id: ruleId),
                let escalation = rule.definition.actions.first(where: {
                    $0.type == .alarm && $0.alarmType == alarm.type
                })?.escalate,
                let to = escalation.recipients(level: alarm.escalationLevel)
            else {
                // Its rule no longer escalates.
                _ = try await store.recordEscalation(alarm, level: alarm.escalationLevel, next: nil)
                continue
            }
            let level = alarm.escalationLevel + 1
            guard
                try await store.recordEscalation(
                    alarm, level: level, next: escalation.nextAt(level: level, raisedAt: alarm.firstAt, now: now))
            else { continue }
            let people = try await store.recipients(
                communityId: alarm.communityId, roles: to.roles ?? [], usernames: to.accounts ?? [],
                gridWorkerOf: to.gridWorker == true ? alarm.buildingId : nil)
            let minutes = max(1, (now - alarm.firstAt) / 60_000)
            try await store.notify(
                people, communityId: alarm.communityId, title: "未确认告警 Unacknowledged alarm: \(alarm.message)",
                body:
                    "\(alarm.sourceName) · \(alarm.detail) · \(minutes) min without acknowledgement (escalation \(level))",
                severity: alarm.severity.rawValue, link: "/console/alarms/\(alarm.id)", subjectType: "alarm",
                subjectId: alarm.id,
                actor: Principal(accountId: nil, name: "rule \(rule.name)"))
            logger.info(
                "alarm escalated", metadata: ["alarm": "\(alarm.id)", "level": "\(level)", "people": "\(people.count)"])
        }
    }

    private func flush() async throws {
        let (save, delete) = engine.withLock { $0.takeChanges() }
        try await store.saveTriggerStates(save, delete: delete)
    }

    /// Carries out a rule's actions for a trigger that fired, or undoes what lasts when it ended.
    private func act(on firing: Firing) async throws {
        let rule = firing.rule
        // Care tags and other devices are looked up now, off the message path. A firing they do not
        // allow is taken back, and so is its end (which may already be queued behind it).
        let key = "\(rule.id)/\(firing.triggerIndex)/\(firing.device.id)"
        switch firing.change {
        case .fired:
            if let unmet = try await store.unmetCondition(of: rule, subject: firing.device) {
                engine.withLock { $0.suppress(firing) }
                if firing.trigger.hasEnd { _ = suppressed.withLock { $0.insert(key) } }
                logger.info(
                    "rule conditions not met",
                    metadata: ["rule": "\(rule.name)", "device": "\(firing.device.deviceName)", "why": "\(unmet)"])
                return
            }
        case .ended:
            if suppressed.withLock({ $0.remove(key) }) != nil { return }
        }
        let of = firing.trigger.absenceOf
        let device = of == .device ? try await store.device(id: firing.device.id) : nil
        // The absence of a person is about them, and they live somewhere: their current home.
        let person =
            of == .person ? try? await store.person(firing.device.id, scope: .everything, fullPhone: false) : nil
        // A household's absence is about the home, not one of its devices.
        let homeId = of == .household ? firing.device.id : person?.residencies.first(where: \.current)?.householdId
        let home = try await homeId.asyncMap { try? await store.household($0, scope: .everything) } ?? nil
        let buildingId = device?.buildingId ?? home?.buildingId
        let householdId = device?.householdId ?? home?.id
        let place = home.map { "\($0.buildingName) \($0.unitName) \($0.room)" }
        let sourceName =
            device.map { ($0.nickname.isEmpty ? "" : $0.nickname + " ") + "\($0.productKey)/\($0.deviceName)" }
            ?? person.map { p in p.name + (place.map { " (\($0))" } ?? "") }
            ?? place
            ?? (firing.trigger.watchesDevices
                ? "\(firing.device.productKey)/\(firing.device.deviceName)"
                : "\(firing.device.deviceName) \(firing.device.id.prefix(8))")
        let sourceType =
            of != .device ? of.rawValue : firing.trigger.watchesDevices ? "device" : firing.device.deviceName
        // The alarm this firing raised, so a work order it opens is linked to it (and opened once).
        var raisedAlarm: (alarm: Alarm, isNew: Bool)? = nil
        let actions =
            rule.definition.actions.filter { $0.type == .alarm } + rule.definition.actions.filter { $0.type != .alarm }
        for action in actions {
            switch action.type {
            case .workOrder:
                guard firing.change == .fired, let category = action.category, raisedAlarm?.isNew != false else {
                    continue
                }
                let order = try await store.submitWorkOrder(
                    WorkOrderReport(
                        communityId: rule.communityId, category: category, title: action.message ?? rule.name,
                        description: "\(sourceName): \(firing.detail)",
                        source: .alarm, reporterAccountId: nil, reporterName: "规则 rule \(rule.name)",
                        householdId: householdId, buildingId: buildingId,
                        location: device?.location ?? place ?? "", alarmId: raisedAlarm?.alarm.id),
                    actor: Principal(accountId: nil, name: "rule \(rule.name)"),
                    alongside: { db, order in
                        if let alarmId = order.alarmId { try await Store.link(alarmId, toWorkOrder: order.id, db) }
                    })
                logger.info("work order opened", metadata: ["rule": "\(rule.name)", "number": "\(order.number)"])
            case .alarm:
                guard let type = action.alarmType, let severity = action.severity else { continue }
                switch firing.change {
                case .fired:
                    let raised = try await store.raiseAlarm(
                        AlarmRaise(
                            communityId: rule.communityId, type: type, severity: severity, sourceType: sourceType,
                            sourceId: firing.device.id, sourceName: sourceName,
                            buildingId: buildingId, householdId: householdId, ruleId: rule.id,
                            message: action.message ?? rule.name, detail: firing.detail, at: firing.at,
                            firstEscalationAt: action.escalate?.nextAt(level: 0, raisedAt: firing.at, now: firing.at)),
                        actor: Principal(accountId: nil, name: "rule \(rule.name)"))
                    raisedAlarm = raised
                    logger.info(
                        raised.isNew ? "alarm raised" : "alarm repeated",
                        metadata: [
                            "rule": "\(rule.name)", "alarm": "\(raised.alarm.id)", "source": "\(sourceName)",
                            "type": "\(type)",
                        ])
                case .ended:
                    // Only what lasts clears itself: an alarm from an event waits for a person.
                    guard firing.trigger.hasEnd else { continue }
                    if let cleared = try await store.clearAlarm(
                        sourceId: firing.device.id, type: type, detail: firing.detail,
                        actor: Principal(accountId: nil, name: "rule \(rule.name)"))
                    {
                        logger.info(
                            "alarm cleared",
                            metadata: ["rule": "\(rule.name)", "alarm": "\(cleared.id)", "source": "\(sourceName)"])
                    }
                }
            case .device:
                // Acting on devices is for a trigger that begins; its end undoes nothing by itself
                // (a second rule can switch the lights off again).
                guard firing.change == .fired else { continue }
                try await command(action, for: rule)
            case .notify:
                guard firing.change == .fired, let to = action.to else { continue }
                let people = try await store.recipients(
                    communityId: rule.communityId, roles: to.roles ?? [], usernames: to.accounts ?? [],
                    gridWorkerOf: to.gridWorker == true ? buildingId : nil)
                let link =
                    device.map { "/console/d/\($0.productKey)/\($0.deviceName)" } ?? person.map {
                        "/console/p/\($0.id)"
                    } ?? home.map { "/console/h/\($0.id)" }
                // As urgent as the alarm the rule raises: a critical one reaches people in their quiet hours.
                let severity = rule.definition.actions.first { $0.type == .alarm }?.severity?.rawValue
                try await store.notify(
                    people, communityId: rule.communityId, title: action.message ?? rule.name,
                    body: "\(sourceName): \(firing.detail)",
                    severity: severity, link: link, subjectType: "rule", subjectId: rule.id,
                    actor: Principal(accountId: nil, name: "rule \(rule.name)"))
                if people.isEmpty {
                    logger.notice("rule notified nobody: no account matches", metadata: ["rule": "\(rule.name)"])
                }
            case .webhook:
                guard let url = action.url, let cipher = action.secretCipher else { continue }
                let payload = Self.webhookPayload(firing, sourceName: sourceName)
                _ = try await store.enqueueDelivery(
                    communityId: rule.communityId, ruleId: rule.id, url: url, secretCipher: cipher, payload: payload)
                webhooks.withLock { $0 }?.wake()
            }
        }
    }

    /// What a webhook receives: the rule, what happened, and on which device.
    package static func webhookPayload(_ firing: Firing, sourceName: String) -> String {
        struct Payload: Encodable {
            package struct RuleRef: Encodable {
                package var id: ID
                package var name: String
            }
            package struct DeviceRef: Encodable {
                package var id: ID
                package var productKey: String
                package var deviceName: String
                package var name: String
            }
            package var rule: RuleRef
            package var communityId: ID
            package var change: String
            package var trigger: Trigger
            package var detail: String
            package var at: Millis
            package var device: DeviceRef
        }
        let p = Payload(
            rule: .init(id: firing.rule.id, name: firing.rule.name), communityId: firing.rule.communityId,
            change: firing.change == .fired ? "fired" : "ended", trigger: firing.trigger, detail: firing.detail,
            at: firing.at,
            device: .init(
                id: firing.device.id, productKey: firing.device.productKey, deviceName: firing.device.deviceName,
                name: sourceName))
        return EventLog.json(p) ?? "{}"
    }

    /// Sets properties (as desired values, delivered now or when the device returns) or calls a
    /// service on the action's devices; each command is on the event log.
    private func command(_ action: Action, for rule: Rule) async throws {
        guard let productKey = action.productKey else { return }
        let targets = try await store.devices(communityId: rule.communityId, productKey: productKey)
            .filter { d in
                action.deviceName.map { d.deviceName == $0 } ?? action.tag.map { d.tagList.contains($0) } ?? false
            }
        let actor = Principal(accountId: nil, name: "rule \(rule.name)")
        let gateway = devices.withLock { $0 }
        for device in targets where device.status != .disabled {
            if case let .object(values)? = action.properties {
                _ = try await store.setDesired(
                    device,
                    values.sorted { $0.key < $1.key }.map {
                        ($0.key, String(decoding: $0.value.serialized(), as: UTF8.self))
                    }, actor: actor)
                if let gateway { Task { await gateway.deliverDesired(device) } }
            } else if let service = action.service {
                guard let gateway else { continue }
                let params = action.params ?? .object([:])
                Task {
                    let outcome: String
                    do {
                        let reply = try await gateway.send(
                            .callService(service, params), productKey: device.productKey, deviceName: device.deviceName,
                            timeout: .seconds(10))
                        outcome = String(decoding: reply.serialized(), as: UTF8.self)
                    } catch {
                        outcome = "not done: \(error)"
                    }
                    try? await self.store.write { db in
                        try await Change.record(
                            db, actor: actor, communityId: device.communityId, type: "device.command",
                            subjectType: "device", subjectId: device.id,
                            after: ["method": service, "reply": outcome])
                    }
                }
            }
        }
    }
}

extension Store {
    /// Looks up what a rule's care-tag and device conditions need, for the device that fired, and
    /// says which does not hold; nil when all hold (or the rule has none).
    package func unmetCondition(of rule: Rule, subject: WatchedDevice) async throws -> String? {
        let conditions = rule.definition.factConditions
        guard !conditions.isEmpty else { return nil }
        var facts = ConditionFacts()
        // The household of the device that fired, or the household whose absence it is; for a
        // person's absence, the person's own tags.
        if conditions.contains(where: { $0.type == .careTag }) {
            if subject.deviceName != WatchedDevice.personName, let household = subject.householdId {
                facts.householdTags = try await careTags(householdId: household)
            } else if let personId = subject.personId {
                // A person's absence, or a device someone wears that is in no household.
                facts.householdTags = Set(try await person(personId, scope: .everything, fullPhone: false).careTags)
            }
        }
        for condition in conditions where condition.type == .device {
            guard let key = condition.deviceKey, facts.devices[key] == nil, let pk = condition.productKey,
                let dn = condition.deviceName,
                let other = try await device(productKey: pk, deviceName: dn), other.communityId == rule.communityId
            else { continue }
            var values: [String: Double] = [:]
            for v in try await shadow(other) {
                guard let text = v.reported else { continue }
                values[v.identifier] = Double(text) ?? (text == "true" ? 1 : text == "false" ? 0 : nil)
            }
            facts.devices[key] = DeviceFacts(online: other.status == .online, values: values)
        }
        return rule.definition.unmetCondition(given: facts)
    }
}

extension WatchedDevice {
    package init(_ d: Device) {
        self.init(
            id: d.id, communityId: d.communityId, productKey: d.productKey, deviceName: d.deviceName,
            householdId: d.householdId, personId: d.personId)
    }
}

extension RuleService: DeviceWatcher {
    public func observe(_ activity: DeviceActivity, from device: Device, at now: Millis) {
        switch activity {
        case let .properties(values): observe(Observation.properties(values), from: device, at: now)
        case let .event(identifier): observe(Observation.event(identifier), from: device, at: now)
        case let .status(status): observe(Observation.status(status), from: device, at: now)
        }
    }
}
