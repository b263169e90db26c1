import Foundation
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliMessaging
import LinliStorage
import LinliThings
import LinliWorkOrders

/// A device as rules see it.
public struct WatchedDevice: Sendable, Hashable {
    public var id: ID
    public var communityId: ID
    public var productKey: String
    public var deviceName: String
    /// The household the device is in, if any: a household's absence counts all of its devices.
    public var householdId: ID?
    /// Who wears or carries it, if anyone: a person's absence counts all of their devices.
    public var personId: ID?
    public init(
        id: ID, communityId: ID, productKey: String, deviceName: String, householdId: ID? = nil, personId: ID? = nil
    ) {
        self.id = id
        self.communityId = communityId
        self.productKey = productKey
        self.deviceName = deviceName
        self.householdId = householdId
        self.personId = personId
    }

    /// A household as the subject of an absence: its id, and "household" for a name.
    static func household(_ id: ID, communityId: ID) -> WatchedDevice {
        WatchedDevice(
            id: id, communityId: communityId, productKey: "", deviceName: WatchedDevice.householdName, householdId: id)
    }
    /// A person as the subject of an absence: their id, and "person" for a name.
    static func person(_ id: ID, communityId: ID) -> WatchedDevice {
        WatchedDevice(
            id: id, communityId: communityId, productKey: "", deviceName: WatchedDevice.personName, personId: id)
    }
    public static let householdName = "household"
    public static let personName = "person"
}

/// What a device did, as far as rules care.
public enum Observation: Sendable, Equatable {
    /// Numeric property values of one post (text and structures are not compared).
    case properties([String: Double])
    case event(String)
    /// "online" or "offline".
    case status(String)
    /// An event of this type on the community's log, about the observed subject.
    case domain(String)
}

/// A trigger of a rule began (after its duration, and with its conditions holding) or ended on a device.
public struct Firing: Sendable, Equatable {
    public enum Change: Sendable, Equatable { case fired, ended }
    public var rule: Rule
    public var triggerIndex: Int
    public var device: WatchedDevice
    public var change: Change
    public var at: Millis
    /// What happened, in words, for the alarm and the log.
    public var detail: String

    public var trigger: Trigger { rule.definition.triggers[triggerIndex] }
}

/// The state of one trigger on one device, kept across restarts for triggers that last.
public struct TriggerState: Sendable, Equatable, Codable {
    public var ruleId: ID
    public var triggerIndex: Int
    public var deviceId: ID
    /// Since when the trigger's condition holds (property, status), or the last activity (absence).
    public var since: Millis?
    public var holding: Bool
    /// Whether it fired (and so must end, clearing what it raised, when the condition stops).
    public var fired: Bool

    public init(ruleId: ID, triggerIndex: Int, deviceId: ID, since: Millis?, holding: Bool, fired: Bool) {
        self.ruleId = ruleId
        self.triggerIndex = triggerIndex
        self.deviceId = deviceId
        self.since = since
        self.holding = holding
        self.fired = fired
    }
}

/// Evaluates rules as observations arrive, with timers for durations and absence. A value type
/// with no I/O: the server feeds it, runs what it returns, stores `takeChanges()` and wakes it at
/// `nextDue`. An idle rule costs nothing; a timer is one heap entry per device and trigger,
/// re-checked when it comes due rather than moved on every message.
public struct RuleEngine: Sendable {
    struct Key: Hashable, Sendable {
        var ruleId: ID
        var trigger: Int
        var deviceId: ID
    }

    struct Slot: Sendable {
        var state: TriggerState
        var device: WatchedDevice
        /// The `since` last handed out for storage; absence activity is stored at most once a
        /// minute, so a restart may wait up to a minute longer than the rule says.
        var storedSince: Millis?
        var scheduled: Millis?
    }

    public static let activityStoreInterval: Millis = 60_000

    public private(set) var rules: [ID: Rule] = [:]
    /// Where triggers wait to be found (`watchKey`) → the rules and trigger indexes.
    private var watchers: [String: [(ruleId: ID, trigger: Int)]] = [:]
    private var slots: [Key: Slot] = [:]
    private var timers = TimerHeap()
    private var changed: [Key: TriggerState] = [:]
    /// The next time of each schedule trigger, by rule and trigger (the device id is the rule's).
    private var schedules: [Key: Millis] = [:]
    private var removed: Set<Key> = []
    public var calendar: Calendar

    public init(calendar: Calendar = .current) { self.calendar = calendar }

    public var ruleCount: Int { rules.count }
    public var armedTimers: Int { timers.count }

    // MARK: rules

    /// Adds or replaces a rule; a changed rule starts afresh (its trigger states are dropped).
    /// `states` restores stored state after a restart.
    public mutating func install(_ rule: Rule, states: [TriggerState] = [], now: Millis = nowMillis()) {
        remove(rule.id)
        guard rule.enabled else { return }
        rules[rule.id] = rule
        for (i, trigger) in rule.definition.triggers.enumerated() {
            switch trigger.type {
            case .schedule:
                let key = Key(ruleId: rule.id, trigger: i, deviceId: rule.id)
                if let cron = try? CronSchedule(trigger.cron ?? ""),
                    let next = cron.next(after: Date(timeIntervalSince1970: Double(now) / 1000), calendar: calendar)
                {
                    let due = Millis(next.timeIntervalSince1970 * 1000)
                    schedules[key] = due
                    timers.push(due, key)
                }
            default:
                watchers[Self.watchKey(trigger), default: []].append((rule.id, i))
            }
        }
        for state in states where state.ruleId == rule.id && state.triggerIndex < rule.definition.triggers.count {
            pendingRestore[Key(ruleId: state.ruleId, trigger: state.triggerIndex, deviceId: state.deviceId)] = state
        }
    }

    /// Restored states wait for their device (given by `watch`), which says where they apply.
    private var pendingRestore: [Key: TriggerState] = [:]

    static func domainKey(_ eventType: String) -> String { "domain:" + eventType }

    /// Whether any rule waits for something a device does (a post, an event, a status, an
    /// absence); false when every rule starts from a schedule or a domain event.
    public var watchesDevices: Bool { watchers.keys.contains { !$0.hasPrefix("domain:") } }

    /// Where a trigger waits to be found: under its device when it names one, so that a post is
    /// checked against that device's rules rather than every rule of its product; else under its
    /// product ("" for a household's absence over every product); domain triggers under the event.
    static func watchKey(_ trigger: Trigger) -> String {
        if trigger.type == .domain { return domainKey(trigger.eventType ?? "") }
        return trigger.deviceName.map { trigger.productKey + "/" + $0 } ?? trigger.productKey
    }

    public mutating func remove(_ ruleId: ID) {
        guard let rule = rules.removeValue(forKey: ruleId) else { return }
        for trigger in rule.definition.triggers {
            let key = Self.watchKey(trigger)
            watchers[key]?.removeAll { $0.ruleId == ruleId }
            if watchers[key]?.isEmpty == true { watchers.removeValue(forKey: key) }
        }
        schedules = schedules.filter { $0.key.ruleId != ruleId }
        for key in slots.keys where key.ruleId == ruleId {
            slots.removeValue(forKey: key)
            removed.insert(key)
            changed.removeValue(forKey: key)
        }
        pendingRestore = pendingRestore.filter { $0.key.ruleId != ruleId }
    }

    private func matches(_ trigger: Trigger, _ rule: Rule, _ device: WatchedDevice) -> Bool {
        guard device.communityId == rule.communityId else { return false }
        switch trigger.absenceOf {
        case .household:
            return device.householdId != nil && (trigger.productKey.isEmpty || trigger.productKey == device.productKey)
        case .person:
            return device.personId != nil && (trigger.productKey.isEmpty || trigger.productKey == device.productKey)
        case .device: break
        }
        return trigger.productKey == device.productKey
            && (trigger.deviceName == nil || trigger.deviceName == device.deviceName)
    }

    /// Whom a trigger's state is about when `device` does something: the device, or for the
    /// absence of a household or a person, them (one slot, whichever of their devices speaks).
    private func subject(_ trigger: Trigger, _ device: WatchedDevice) -> WatchedDevice {
        switch trigger.absenceOf {
        case .household: .household(device.householdId ?? device.id, communityId: device.communityId)
        case .person: .person(device.personId ?? device.id, communityId: device.communityId)
        case .device: device
        }
    }

    /// The rules and triggers that may concern a device: those naming it, those on its product,
    /// and households' absences over every product.
    private func watching(_ device: WatchedDevice) -> [(ruleId: ID, trigger: Int)] {
        (watchers[device.productKey + "/" + device.deviceName] ?? []) + (watchers[device.productKey] ?? [])
            + (device.productKey.isEmpty ? [] : watchers["", default: []])
    }

    /// Tells the engine a device exists, so absence (which no message announces) is timed from
    /// now, or from its stored last activity after a restart; and restored durations re-arm.
    public mutating func watch(_ device: WatchedDevice, now: Millis) {
        for (ruleId, index) in watching(device) {
            guard let rule = rules[ruleId] else { continue }
            let trigger = rule.definition.triggers[index]
            guard matches(trigger, rule, device) else { continue }
            let subject = subject(trigger, device)
            let key = Key(ruleId: ruleId, trigger: index, deviceId: subject.id)
            if slots[key] != nil { continue }
            if let restored = pendingRestore.removeValue(forKey: key) {
                slots[key] = Slot(state: restored, device: subject, storedSince: restored.since)
                schedule(key)
            } else if trigger.type == .absence {
                let state = TriggerState(
                    ruleId: ruleId, triggerIndex: index, deviceId: subject.id, since: now, holding: true, fired: false)
                slots[key] = Slot(state: state, device: subject)
                changed[key] = state
                slots[key]?.storedSince = now
                schedule(key)
            }
        }
    }

    // MARK: observations and time

    /// Feeds what a device did at `now`; returns what fired or ended.
    public mutating func observe(_ observation: Observation, from device: WatchedDevice, now: Millis) -> [Firing] {
        var out: [Firing] = []
        if case let .domain(type) = observation {
            for (ruleId, index) in watchers[Self.domainKey(type)] ?? [] {
                guard let rule = rules[ruleId], rule.communityId == device.communityId, conditionsHold(rule, at: now)
                else { continue }
                out.append(
                    Firing(rule: rule, triggerIndex: index, device: device, change: .fired, at: now, detail: type))
            }
            return out
        }
        for (ruleId, index) in watching(device) {
            guard let rule = rules[ruleId] else { continue }
            let trigger = rule.definition.triggers[index]
            guard matches(trigger, rule, device) else { continue }
            let key = Key(ruleId: ruleId, trigger: index, deviceId: subject(trigger, device).id)
            switch trigger.type {
            case .event:
                guard case let .event(name) = observation, name == trigger.event else { continue }
                if conditionsHold(rule, at: now) {
                    out.append(
                        Firing(
                            rule: rule, triggerIndex: index, device: device, change: .fired, at: now,
                            detail: "event \(name)"))
                }
            case .property:
                guard case let .properties(values) = observation, let property = trigger.property,
                    let value = values[property],
                    let op = trigger.op, let threshold = trigger.value
                else { continue }
                let holds = op.holds(value, threshold)
                out += transition(
                    key, rule, index, device, holds: holds, now: now,
                    detail: "\(property) = \(Self.number(value)) (\(op.rawValue) \(Self.number(threshold)))")
            case .status:
                guard case let .status(status) = observation else { continue }
                out += transition(
                    key, rule, index, device, holds: status == trigger.status, now: now, detail: "status \(status)")
            case .absence:
                guard isActivity(observation, for: trigger) else { continue }
                out += activity(key, rule, index, subject(trigger, device), now: now)
            case .schedule, .domain:
                continue
            }
        }
        return out
    }

    /// Fires the timers that are due at `now`.
    public mutating func expire(now: Millis) -> [Firing] {
        var out: [Firing] = []
        while let (due, key) = timers.peek(), due <= now {
            timers.pop()
            if let scheduled = schedules[key] {
                guard scheduled == due, let rule = rules[key.ruleId] else { continue }
                let trigger = rule.definition.triggers[key.trigger]
                if conditionsHold(rule, at: due) {
                    let subject = WatchedDevice(
                        id: rule.id, communityId: rule.communityId, productKey: "", deviceName: "schedule")
                    out.append(
                        Firing(
                            rule: rule, triggerIndex: key.trigger, device: subject, change: .fired, at: now,
                            detail: "schedule \(trigger.cron ?? "")"))
                }
                // The next time after this one (not after now: a late wake-up does not fire twice).
                if let cron = try? CronSchedule(trigger.cron ?? ""),
                    let next = cron.next(
                        after: Date(timeIntervalSince1970: Double(max(due, now)) / 1000), calendar: calendar)
                {
                    let nextDue = Millis(next.timeIntervalSince1970 * 1000)
                    schedules[key] = nextDue
                    timers.push(nextDue, key)
                } else {
                    schedules.removeValue(forKey: key)
                }
                continue
            }
            guard var slot = slots[key], slot.scheduled == due, let rule = rules[key.ruleId] else { continue }
            slot.scheduled = nil
            slots[key] = slot
            let trigger = rule.definition.triggers[key.trigger]
            guard slot.state.holding, !slot.state.fired, let since = slot.state.since else { continue }
            let wanted = since + Millis(trigger.forSeconds ?? 0) * 1000
            if wanted > now {
                schedule(key)
                continue
            }
            guard conditionsHold(rule, at: now) else { continue }
            slot.state.fired = true
            slots[key] = slot
            changed[key] = slot.state
            let detail =
                trigger.type == .absence
                ? "no activity for \(Self.duration(trigger.forSeconds ?? 0))"
                : "held for \(Self.duration(trigger.forSeconds ?? 0))"
            out.append(
                Firing(
                    rule: rule, triggerIndex: key.trigger, device: slot.device, change: .fired, at: now, detail: detail)
            )
        }
        return out
    }

    /// Takes back a firing whose conditions the server found unmet (a care tag, another device's
    /// state): like a trigger outside its time window, it does not fire later, and since it did
    /// not fire, its end will not be reported either.
    public mutating func suppress(_ firing: Firing) {
        let key = Key(ruleId: firing.rule.id, trigger: firing.triggerIndex, deviceId: firing.device.id)
        guard var slot = slots[key], slot.state.fired else { return }
        slot.state.fired = false
        slots[key] = slot
        changed[key] = slot.state
    }

    /// When the next timer comes due, if any is armed.
    public var nextDue: Millis? { timers.peek()?.due }

    /// States changed since the last call, for storage, and the keys of states to delete.
    public mutating func takeChanges() -> (
        save: [TriggerState], delete: [(ruleId: ID, triggerIndex: Int, deviceId: ID)]
    ) {
        defer {
            changed = [:]
            removed = []
        }
        return (Array(changed.values), removed.map { ($0.ruleId, $0.trigger, $0.deviceId) })
    }

    // MARK: inside

    private func isActivity(_ observation: Observation, for trigger: Trigger) -> Bool {
        if let property = trigger.property {
            guard case let .properties(values) = observation, let value = values[property], let op = trigger.op,
                let threshold = trigger.value
            else { return false }
            return op.holds(value, threshold)
        }
        if let event = trigger.event {
            guard case let .event(name) = observation else { return false }
            return name == event
        }
        // Any message is activity; going offline is not.
        if case .status("offline") = observation { return false }
        return true
    }

    private mutating func transition(
        _ key: Key, _ rule: Rule, _ index: Int, _ device: WatchedDevice, holds: Bool, now: Millis, detail: String
    ) -> [Firing] {
        var slot =
            slots[key]
            ?? Slot(
                state: TriggerState(
                    ruleId: key.ruleId, triggerIndex: index, deviceId: device.id, since: nil, holding: false,
                    fired: false), device: device)
        slot.device = device
        let trigger = rule.definition.triggers[index]
        var out: [Firing] = []
        if holds, !slot.state.holding {
            slot.state.holding = true
            slot.state.since = now
            if (trigger.forSeconds ?? 0) == 0 {
                if conditionsHold(rule, at: now) {
                    slot.state.fired = true
                    out.append(
                        Firing(rule: rule, triggerIndex: index, device: device, change: .fired, at: now, detail: detail)
                    )
                }
            }
            slots[key] = slot
            changed[key] = slot.state
            if (trigger.forSeconds ?? 0) > 0 { schedule(key) }
        } else if !holds, slot.state.holding {
            let wasFired = slot.state.fired
            slot.state = TriggerState(
                ruleId: key.ruleId, triggerIndex: index, deviceId: device.id, since: nil, holding: false, fired: false)
            slots[key] = slot
            changed[key] = slot.state
            if wasFired {
                out.append(
                    Firing(rule: rule, triggerIndex: index, device: device, change: .ended, at: now, detail: detail))
            }
        }
        return out
    }

    private mutating func activity(_ key: Key, _ rule: Rule, _ index: Int, _ device: WatchedDevice, now: Millis)
        -> [Firing]
    {
        var slot =
            slots[key]
            ?? Slot(
                state: TriggerState(
                    ruleId: key.ruleId, triggerIndex: index, deviceId: device.id, since: now, holding: true,
                    fired: false), device: device)
        let wasFired = slot.state.fired
        slot.state.since = now
        slot.state.holding = true
        slot.state.fired = false
        slot.device = device
        if wasFired || slot.storedSince.map({ now - $0 >= Self.activityStoreInterval }) ?? true {
            changed[key] = slot.state
            slot.storedSince = now
        }
        slots[key] = slot
        if slot.scheduled == nil { schedule(key) }
        return wasFired
            ? [
                Firing(
                    rule: rule, triggerIndex: index, device: device, change: .ended, at: now, detail: "activity resumed"
                )
            ] : []
    }

    /// Puts a slot's timer on the heap at when its trigger would fire.
    private mutating func schedule(_ key: Key) {
        guard var slot = slots[key], let rule = rules[key.ruleId], slot.state.holding, !slot.state.fired,
            let since = slot.state.since
        else { return }
        let due = since + Millis(rule.definition.triggers[key.trigger].forSeconds ?? 0) * 1000
        slot.scheduled = due
        slots[key] = slot
        timers.push(due, key)
    }

    private func conditionsHold(_ rule: Rule, at now: Millis) -> Bool {
        let date = Date(timeIntervalSince1970: Double(now) / 1000)
        return rule.definition.conditions.allSatisfy { $0.holds(at: date, calendar: calendar) }
    }

    static func number(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v) }

    static func duration(_ seconds: Int) -> String {
        if seconds % 3600 == 0 { return "\(seconds / 3600) h" }
        if seconds % 60 == 0 { return "\(seconds / 60) min" }
        return "\(seconds) s"
    }
}

/// A binary min-heap of (due, key). Stale entries are skipped when popped, not searched for.
struct TimerHeap: Sendable {
    private var items: [(due: Millis, key: RuleEngine.Key)] = []
    var count: Int { items.count }

    func peek() -> (due: Millis, key: RuleEngine.Key)? { items.first }

    mutating func push(_ due: Millis, _ key: RuleEngine.Key) {
        items.append((due, key))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].due < items[parent].due else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    @discardableResult
    mutating func pop() -> (due: Millis, key: RuleEngine.Key)? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var smallest = i
            if l < items.count, items[l].due < items[smallest].due { smallest = l }
            if r < items.count, items[r].due < items[smallest].due { smallest = r }
            if smallest == i { break }
            items.swapAt(i, smallest)
            i = smallest
        }
        return top
    }
}
