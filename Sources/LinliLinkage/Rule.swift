import Foundation
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliMessaging
import LinliStorage
import LinliThings
import LinliWorkOrders

/// A rule of a community: when one of its triggers fires and its conditions hold, its actions run.
/// Defined as JSON through the API; see `RuleDefinition`.
public struct Rule: Sendable, Equatable, Codable {
    public var id: ID
    public var communityId: ID
    public var name: String
    public var enabled: Bool
    public var definition: RuleDefinition
    public var createdAt: Millis
    public var updatedAt: Millis

    public init(
        id: ID = newID(), communityId: ID, name: String, enabled: Bool = true, definition: RuleDefinition,
        createdAt: Millis = nowMillis(), updatedAt: Millis = nowMillis()
    ) {
        self.id = id
        self.communityId = communityId
        self.name = name
        self.enabled = enabled
        self.definition = definition
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

public struct RuleDefinition: Sendable, Equatable, Codable {
    public var triggers: [Trigger]
    public var conditions: [Condition]
    public var actions: [Action]

    public init(triggers: [Trigger], conditions: [Condition] = [], actions: [Action]) {
        self.triggers = triggers
        self.conditions = conditions
        self.actions = actions
    }

    enum CodingKeys: String, CodingKey { case triggers, conditions, actions }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        triggers = try c.decode([Trigger].self, forKey: .triggers)
        conditions = try c.decodeIfPresent([Condition].self, forKey: .conditions) ?? []
        actions = try c.decode([Action].self, forKey: .actions)
    }
}

/// What starts a rule. Every trigger names the devices it watches: a product's devices in the
/// rule's community, or one of them by name.
///
/// - `property`: a numeric property compared with a threshold, optionally for `forSeconds` on end
///   ("temperature above 60 for 2 minutes"). Holds while the comparison does.
/// - `event`: a device event ("SmokeAlarm", "SOS"). Fires every time; it has no end.
/// - `status`: the device goes `online` or `offline`, optionally for `forSeconds`.
/// - `absence`: nothing from the device for `forSeconds`; with `property`/`op`/`value` (or `event`),
///   nothing of that kind ("the door has not opened for 12 hours"). Ends when activity resumes.
///   With `per: "household"`, nothing from any device of a household (of `productKey`, or of any
///   product when it is left out): "no sign of life at home for 12 hours"; with `per: "person"`,
///   nothing from any device a person wears or carries ("the pendant has been still all day").
/// - `schedule`: at the times `cron` names (five fields, the server's time zone). No device.
/// - `domain`: an event of `eventType` on the community's event log ("workorder.overdue",
///   "alarm.raised", "notice.published"). No device; the event's subject is the source.
public struct Trigger: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case property, event, status, absence, schedule, domain
    }

    public var type: Kind
    public var productKey: String
    public var deviceName: String?
    public var property: String?
    public var op: Comparison?
    public var value: Double?
    public var event: String?
    public var status: String?
    public var forSeconds: Int?
    public var cron: String?
    public var eventType: String?
    /// Whose absence: each device's (the default), each household's or each person's.
    public var per: AbsenceSubject?

    public enum AbsenceSubject: String, Sendable, Codable, CaseIterable { case device, household, person }

    public init(
        type: Kind, productKey: String, deviceName: String? = nil, property: String? = nil, op: Comparison? = nil,
        value: Double? = nil,
        event: String? = nil, status: String? = nil, forSeconds: Int? = nil, cron: String? = nil,
        eventType: String? = nil, per: AbsenceSubject? = nil
    ) {
        self.type = type
        self.productKey = productKey
        self.deviceName = deviceName
        self.property = property
        self.op = op
        self.value = value
        self.event = event
        self.status = status
        self.forSeconds = forSeconds
        self.cron = cron
        self.eventType = eventType
        self.per = per
    }

    /// Whose silence an absence is about; `.device` for every other trigger.
    public var absenceOf: AbsenceSubject { type == .absence ? per ?? .device : .device }
    /// An absence counted per household or person rather than per device.
    public var perHousehold: Bool { absenceOf == .household }
    public var perGroup: Bool { absenceOf != .device }

    /// Triggers that hold for a while (and so end, clearing what they raised); events are instants.
    public var hasEnd: Bool { ![.event, .schedule, .domain].contains(type) }
    /// Triggers about devices (the others are about time or the community's events).
    public var watchesDevices: Bool { ![.schedule, .domain].contains(type) }

    enum CodingKeys: String, CodingKey {
        case type, productKey, deviceName, property, op, value, event, status, forSeconds, cron, eventType, per
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(Kind.self, forKey: .type)
        // Schedules and domain events watch no device, so they name no product.
        productKey = try c.decodeIfPresent(String.self, forKey: .productKey) ?? ""
        deviceName = try c.decodeIfPresent(String.self, forKey: .deviceName)
        property = try c.decodeIfPresent(String.self, forKey: .property)
        op = try c.decodeIfPresent(Comparison.self, forKey: .op)
        value = try c.decodeIfPresent(Double.self, forKey: .value)
        event = try c.decodeIfPresent(String.self, forKey: .event)
        status = try c.decodeIfPresent(String.self, forKey: .status)
        forSeconds = try c.decodeIfPresent(Int.self, forKey: .forSeconds)
        cron = try c.decodeIfPresent(String.self, forKey: .cron)
        eventType = try c.decodeIfPresent(String.self, forKey: .eventType)
        per = try c.decodeIfPresent(AbsenceSubject.self, forKey: .per)
    }
}

public enum Comparison: String, Sendable, Codable, CaseIterable {
    case greater = ">", greaterOrEqual = ">=", less = "<", lessOrEqual = "<=", equal = "==", notEqual = "!="

    public func holds(_ a: Double, _ b: Double) -> Bool {
        switch self {
        case .greater: a > b
        case .greaterOrEqual: a >= b
        case .less: a < b
        case .lessOrEqual: a <= b
        case .equal: a == b
        case .notEqual: a != b
        }
    }
}

/// Checked when a trigger fires; all must hold.
///
/// - `time`: between `from` and `to` ("22:00" to "06:00" spans midnight) on the given ISO weekdays
///   (1 Monday … 7 Sunday; all when absent), in the server's time zone.
/// - `careTag`: the household of the device that fired has a resident carrying one of `tags`
///   ("only doors of elderly residents living alone").
/// - `device`: another device's state: `status` online or offline, or its last reported numeric
///   `property` compared by `op` with `value` ("the gate's barrier is down").
///
/// Time is checked by the engine itself; care tags and other devices are facts the server looks
/// up when a trigger fires (`ConditionFacts`), so the message path never waits for them.
public struct Condition: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable { case time, careTag, device }
    public var type: Kind
    public var from: String?
    public var to: String?
    public var weekdays: [Int]?
    public var tags: [CareTag]?
    public var productKey: String?
    public var deviceName: String?
    public var property: String?
    public var op: Comparison?
    public var value: Double?
    public var status: String?

    public init(type: Kind, from: String? = nil, to: String? = nil, weekdays: [Int]? = nil) {
        self.type = type
        self.from = from
        self.to = to
        self.weekdays = weekdays
    }

    /// A condition on another device's state.
    public static func device(
        _ productKey: String, _ deviceName: String, property: String? = nil, op: Comparison? = nil,
        value: Double? = nil, status: String? = nil
    ) -> Condition {
        var c = Condition(type: .device)
        c.productKey = productKey
        c.deviceName = deviceName
        c.property = property
        c.op = op
        c.value = value
        c.status = status
        return c
    }

    /// A condition on the care tags of the household of the device that fired.
    public static func careTag(_ tags: [CareTag]) -> Condition {
        var c = Condition(type: .careTag)
        c.tags = tags
        return c
    }

    /// Whether this condition needs facts the engine does not have.
    public var needsFacts: Bool { type != .time }

    /// The other device a `device` condition looks at, as "productKey/deviceName".
    public var deviceKey: String? { type == .device ? "\(productKey ?? "")/\(deviceName ?? "")" : nil }

    static func minutes(_ text: String?) -> Int? { TimeOfDay.minutes(text) }

    /// Whether a time condition holds at `date` in `calendar`'s time zone; other kinds are facts,
    /// judged by `holds(given:)`, and pass here.
    public func holds(at date: Date, calendar: Calendar = .current) -> Bool {
        switch type {
        case .careTag, .device:
            return true
        case .time:
            let parts = calendar.dateComponents([.hour, .minute, .weekday], from: date)
            // Calendar weekdays run Sunday 1 … Saturday 7; rules use ISO, Monday 1 … Sunday 7.
            let iso = ((parts.weekday ?? 1) + 5) % 7 + 1
            if let weekdays, !weekdays.contains(iso) { return false }
            let now = (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
            guard let from = Self.minutes(from), let to = Self.minutes(to) else { return true }
            return TimeOfDay.within(now, from: from, to: to)
        }
    }

    /// Whether a care-tag or device condition holds given what the server found; nil when it
    /// holds, else why not, in words for the log and the rule trial.
    public func unmet(given facts: ConditionFacts) -> String? {
        switch type {
        case .time:
            return nil
        case .careTag:
            let wanted = Set(tags ?? [])
            guard let found = facts.householdTags else { return "the device is not in a household" }
            return wanted.isDisjoint(with: found)
                ? "the household has none of the care tags \(wanted.map(\.rawValue).sorted().joined(separator: ", "))"
                : nil
        case .device:
            let key = deviceKey ?? ""
            guard let other = facts.devices[key] else { return "\(key) is not a device of this community" }
            if let status {
                return (other.online ? "online" : "offline") == status ? nil : "\(key) is not \(status)"
            }
            guard let property, let op, let value else { return "\(key): nothing to compare" }
            guard let reported = other.values[property] else { return "\(key) has not reported \(property)" }
            return op.holds(reported, value)
                ? nil
                : "\(key) \(property) = \(RuleEngine.number(reported)), not \(op.rawValue) \(RuleEngine.number(value))"
        }
    }
}

/// What the server found out for a rule's care-tag and device conditions when a trigger fired.
public struct ConditionFacts: Sendable, Equatable {
    /// Care tags of the current residents of the firing device's household; nil when it has none.
    public var householdTags: Set<CareTag>?
    /// Other devices by "productKey/deviceName": online or not, and their last numeric values.
    public var devices: [String: DeviceFacts]

    public init(householdTags: Set<CareTag>? = nil, devices: [String: DeviceFacts] = [:]) {
        self.householdTags = householdTags
        self.devices = devices
    }
}

public struct DeviceFacts: Sendable, Equatable {
    public var online: Bool
    public var values: [String: Double]
    public init(online: Bool, values: [String: Double]) {
        self.online = online
        self.values = values
    }
}

extension RuleDefinition {
    /// Conditions the server must look up facts for before acting.
    public var factConditions: [Condition] { conditions.filter(\.needsFacts) }

    /// The first fact condition that does not hold, in words; nil when all do.
    public func unmetCondition(given facts: ConditionFacts) -> String? {
        factConditions.lazy.compactMap { $0.unmet(given: facts) }.first
    }
}

public enum AlarmSeverity: String, Sendable, Codable, CaseIterable, Comparable {
    case critical, major, minor, warning

    var rank: Int {
        switch self {
        case .critical: 4
        case .major: 3
        case .minor: 2
        case .warning: 1
        }
    }
    public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}

/// What a rule does.
///
/// - `alarm`: raises an alarm of `alarmType` and `severity` on the device that fired (one per
///   device and type, counting repeats); when the trigger ends, the alarm clears.
/// - `device`: sets properties (`properties`, kept as desired values, so a device that is offline
///   gets them when it returns) or calls `service` with `params`, on the device `productKey`/
///   `deviceName`, or on every device of `productKey` tagged `tag` ("the stairwell lights").
/// - `webhook`: POSTs what happened as JSON to `url`, signed with HMAC-SHA256 of the body under
///   `secret` (`X-Linli-Signature: sha256=…`), retried with back-off until it is taken.
/// - `notify`: tells people `to` (by role, by name, or the grid worker of the device's building)
///   in their inbox, with `message`.
/// - `workOrder`: opens a work order of `category` titled `message` for the device's place, linked
///   to the alarm the same rule raised (once per alarm, not per repeat).
///
/// An alarm may `escalate`: while nobody acknowledges it, each tier is told after its
/// `afterSeconds` (from when the alarm was raised), and the last tier again every `repeatSeconds`.
public struct Action: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable { case alarm, device, webhook, notify, workOrder }
    public var type: Kind
    public var alarmType: String?
    public var severity: AlarmSeverity?
    public var message: String?
    public var productKey: String?
    public var deviceName: String?
    public var tag: String?
    public var properties: JSONValue?
    public var service: String?
    public var params: JSONValue?
    public var url: String?
    /// Given in clear when a rule is written; stored only encrypted (`secretCipher`), never shown.
    public var secret: String?
    public var secretCipher: String?
    public var to: Recipients?
    public var escalate: Escalation?
    public var category: WorkOrderCategory?

    public init(type: Kind, alarmType: String? = nil, severity: AlarmSeverity? = nil, message: String? = nil) {
        self.type = type
        self.alarmType = alarmType
        self.severity = severity
        self.message = message
    }
}

/// Who is told: accounts holding one of `roles` in the community, accounts by `accounts`
/// (usernames), and with `gridWorker`, the grid worker(s) of the building the device is in.
public struct Recipients: Sendable, Equatable, Codable {
    public var roles: [String]?
    public var accounts: [String]?
    public var gridWorker: Bool?
    public init(roles: [String]? = nil, accounts: [String]? = nil, gridWorker: Bool? = nil) {
        self.roles = roles
        self.accounts = accounts
        self.gridWorker = gridWorker
    }
    public var isEmpty: Bool { (roles ?? []).isEmpty && (accounts ?? []).isEmpty && gridWorker != true }
}

public struct Escalation: Sendable, Equatable, Codable {
    public struct Tier: Sendable, Equatable, Codable {
        public var afterSeconds: Int
        public var to: Recipients
        public init(afterSeconds: Int, to: Recipients) {
            self.afterSeconds = afterSeconds
            self.to = to
        }
    }
    public var tiers: [Tier]
    /// After the last tier, it is told again this often until someone acknowledges; nil for once.
    public var repeatSeconds: Int?
    public init(tiers: [Tier], repeatSeconds: Int? = nil) {
        self.tiers = tiers
        self.repeatSeconds = repeatSeconds
    }

    /// When the tier after `level` tiers already told is due, counted from `raisedAt`; nil when done.
    public func nextAt(level: Int, raisedAt: Int64, now: Int64) -> Int64? {
        if level < tiers.count { return raisedAt + Int64(tiers[level].afterSeconds) * 1000 }
        return repeatSeconds.map { now + Int64($0) * 1000 }
    }

    /// Who is told at `level` (repeats go to the last tier).
    public func recipients(level: Int) -> Recipients? {
        tiers.isEmpty ? nil : tiers[min(level, tiers.count - 1)].to
    }
}

/// A fault in a rule definition, with the JSON path of the field at fault.
public struct RuleIssue: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }
}

extension RuleDefinition {
    public static let maxForSeconds = 30 * 86_400

    /// Checks what the JSON shape cannot say; every fault, each with its path.
    public func issues() -> [RuleIssue] {
        var issues: [RuleIssue] = []
        if triggers.isEmpty { issues.append(RuleIssue("triggers", "needs at least one trigger")) }
        if triggers.count > 20 { issues.append(RuleIssue("triggers", "at most 20")) }
        if actions.isEmpty { issues.append(RuleIssue("actions", "needs at least one action")) }
        // An alarm raised because an alarm was raised would raise itself for ever.
        if triggers.contains(where: { $0.type == .domain && ($0.eventType ?? "").hasPrefix("alarm.") }),
            let i = actions.firstIndex(where: { $0.type == .alarm })
        {
            issues.append(RuleIssue("actions[\(i)]", "a rule started by an alarm event cannot raise alarms"))
        }
        for (i, t) in triggers.enumerated() {
            let p = "triggers[\(i)]"
            if t.watchesDevices, t.productKey.isEmpty, !t.perGroup {
                issues.append(RuleIssue("\(p).productKey", "is required"))
            }
            if t.per != nil, t.type != .absence {
                issues.append(RuleIssue("\(p).per", "only an absence is counted per household or person"))
            }
            if t.perGroup, t.deviceName != nil {
                issues.append(
                    RuleIssue(
                        "\(p).deviceName",
                        "the absence of a household or person counts all their devices: no device name"))
            }
            if t.perGroup, t.productKey.isEmpty, t.property != nil || t.event != nil {
                issues.append(
                    RuleIssue("\(p).productKey", "is required to say which property or event counts as activity"))
            }
            if let s = t.forSeconds, !(1...Self.maxForSeconds).contains(s) {
                issues.append(RuleIssue("\(p).forSeconds", "must be from 1 to \(Self.maxForSeconds)"))
            }
            switch t.type {
            case .property:
                if t.property?.isEmpty != false { issues.append(RuleIssue("\(p).property", "is required")) }
                if t.op == nil {
                    issues.append(
                        RuleIssue(
                            "\(p).op",
                            "is required: one of \(Comparison.allCases.map(\.rawValue).joined(separator: " "))"))
                }
                if t.value == nil { issues.append(RuleIssue("\(p).value", "is required")) }
            case .event:
                if t.event?.isEmpty != false { issues.append(RuleIssue("\(p).event", "is required")) }
                if t.forSeconds != nil {
                    issues.append(RuleIssue("\(p).forSeconds", "an event is an instant: no duration"))
                }
            case .status:
                if !["online", "offline"].contains(t.status ?? "") {
                    issues.append(RuleIssue("\(p).status", "must be online or offline"))
                }
            case .schedule:
                do { _ = try CronSchedule(t.cron ?? "") } catch {
                    issues.append(RuleIssue("\(p).cron", error.description))
                }
            case .domain:
                let known = Self.domainEvents
                if !known.contains(t.eventType ?? "") {
                    issues.append(RuleIssue("\(p).eventType", "must be one of \(known.joined(separator: ", "))"))
                }
            case .absence:
                if t.forSeconds == nil {
                    issues.append(RuleIssue("\(p).forSeconds", "is required: how long without activity"))
                }
                if t.property != nil, t.op == nil || t.value == nil {
                    issues.append(RuleIssue("\(p).op", "property activity needs op and value"))
                }
                if t.property != nil, t.event != nil {
                    issues.append(RuleIssue("\(p).event", "give property or event as the activity, not both"))
                }
            }
        }
        if conditions.count > 20 { issues.append(RuleIssue("conditions", "at most 20")) }
        for (i, c) in conditions.enumerated() {
            let p = "conditions[\(i)]"
            switch c.type {
            case .time:
                break
            case .careTag:
                if (c.tags ?? []).isEmpty {
                    issues.append(
                        RuleIssue(
                            "\(p).tags",
                            "is required: one or more of \(CareTag.allCases.map(\.rawValue).joined(separator: ", "))"))
                }
            case .device:
                if c.productKey?.isEmpty != false { issues.append(RuleIssue("\(p).productKey", "is required")) }
                if c.deviceName?.isEmpty != false { issues.append(RuleIssue("\(p).deviceName", "is required")) }
                if let status = c.status {
                    if !["online", "offline"].contains(status) {
                        issues.append(RuleIssue("\(p).status", "must be online or offline"))
                    }
                    if c.property != nil {
                        issues.append(RuleIssue("\(p).property", "give status or property, not both"))
                    }
                } else {
                    if c.property?.isEmpty != false {
                        issues.append(
                            RuleIssue("\(p).property", "is required: give status, or property with op and value"))
                    }
                    if c.op == nil {
                        issues.append(
                            RuleIssue(
                                "\(p).op",
                                "is required: one of \(Comparison.allCases.map(\.rawValue).joined(separator: " "))"))
                    }
                    if c.value == nil { issues.append(RuleIssue("\(p).value", "is required")) }
                }
            }
            if c.type != .time, c.from != nil || c.to != nil || c.weekdays != nil {
                issues.append(RuleIssue("\(p).type", "from, to and weekdays belong to a time condition"))
            }
            if c.from != nil || c.to != nil {
                if Condition.minutes(c.from) == nil { issues.append(RuleIssue("\(p).from", "must be a time HH:mm")) }
                if Condition.minutes(c.to) == nil { issues.append(RuleIssue("\(p).to", "must be a time HH:mm")) }
            }
            if let days = c.weekdays, days.isEmpty || !days.allSatisfy({ (1...7).contains($0) }) {
                issues.append(RuleIssue("\(p).weekdays", "must list days 1 (Monday) to 7 (Sunday)"))
            }
        }
        for (i, a) in actions.enumerated() {
            let p = "actions[\(i)]"
            switch a.type {
            case .alarm:
                if a.alarmType?.isEmpty != false { issues.append(RuleIssue("\(p).alarmType", "is required")) }
                if (a.alarmType?.count ?? 0) > 64 {
                    issues.append(RuleIssue("\(p).alarmType", "at most 64 characters"))
                }
                if a.severity == nil {
                    issues.append(RuleIssue("\(p).severity", "is required: critical, major, minor or warning"))
                }
                if (a.message?.count ?? 0) > 500 { issues.append(RuleIssue("\(p).message", "at most 500 characters")) }
                if let e = a.escalate {
                    if e.tiers.isEmpty || e.tiers.count > 5 {
                        issues.append(RuleIssue("\(p).escalate.tiers", "give 1 to 5 tiers"))
                    }
                    var previous = 0
                    for (t, tier) in e.tiers.enumerated() {
                        if !(1...Self.maxForSeconds).contains(tier.afterSeconds) || tier.afterSeconds <= previous {
                            issues.append(
                                RuleIssue(
                                    "\(p).escalate.tiers[\(t)].afterSeconds",
                                    "must grow from tier to tier, from 1 to \(Self.maxForSeconds)"))
                        }
                        previous = tier.afterSeconds
                        issues += Self.recipientIssues(tier.to, path: "\(p).escalate.tiers[\(t)].to")
                    }
                    if let r = e.repeatSeconds, !(1...86_400).contains(r) {
                        issues.append(RuleIssue("\(p).escalate.repeatSeconds", "must be from 1 to 86400"))
                    }
                }
            case .workOrder:
                if a.category == nil {
                    issues.append(
                        RuleIssue(
                            "\(p).category",
                            "is required: \(WorkOrderCategory.allCases.map(\.rawValue).joined(separator: ", "))"))
                }
                if a.message?.isEmpty != false || (a.message?.count ?? 0) > 100 {
                    issues.append(
                        RuleIssue("\(p).message", "is required: the work order's title, at most 100 characters"))
                }
            case .notify:
                if let to = a.to {
                    issues += Self.recipientIssues(to, path: "\(p).to")
                } else {
                    issues.append(RuleIssue("\(p).to", "is required"))
                }
                if (a.message?.count ?? 0) > 500 { issues.append(RuleIssue("\(p).message", "at most 500 characters")) }
            case .device:
                if a.productKey?.isEmpty != false { issues.append(RuleIssue("\(p).productKey", "is required")) }
                if (a.deviceName == nil) == (a.tag == nil) {
                    issues.append(
                        RuleIssue(
                            "\(p).deviceName",
                            "give deviceName (one device) or tag (its product's devices with the tag)"))
                }
                if (a.properties == nil) == (a.service == nil) {
                    issues.append(RuleIssue("\(p).properties", "give properties to set or a service to call"))
                }
                if let props = a.properties, case .object = props {
                } else if a.properties != nil {
                    issues.append(RuleIssue("\(p).properties", "must be an object"))
                }
                if let params = a.params, case .object = params {
                } else if a.params != nil {
                    issues.append(RuleIssue("\(p).params", "must be an object"))
                }
            case .webhook:
                let url = a.url.flatMap(URL.init(string:))
                if url == nil || !["http", "https"].contains(url?.scheme?.lowercased() ?? "")
                    || url?.host?.isEmpty != false
                {
                    issues.append(RuleIssue("\(p).url", "must be an http or https URL"))
                }
                if (a.url?.count ?? 0) > 500 { issues.append(RuleIssue("\(p).url", "at most 500 characters")) }
                if let secret = a.secret, secret.count < 16 || secret.count > 200 {
                    issues.append(RuleIssue("\(p).secret", "must be 16 to 200 characters"))
                }
                if a.secret == nil, a.secretCipher == nil {
                    issues.append(RuleIssue("\(p).secret", "is required: the receiver checks the signature with it"))
                }
            }
        }
        return issues
    }

    /// Events on the log that rules may start from.
    public static let domainEvents = [
        "workorder.submitted", "workorder.overdue", "workorder.reopen", "workorder.transfer", "alarm.raised",
        "alarm.escalated",
        "alarm.cleared", "notice.published", "notice.unanswered", "device.offline", "device.online", "device.disabled",
    ]

    /// Roles a rule may notify: the community's own people, not residents (who get notices) and
    /// not the platform's administrators.
    public static let notifiableRoles = [
        "community_admin", "property_staff", "grid_worker", "guard", "department_agent",
    ]

    static func recipientIssues(_ to: Recipients, path: String) -> [RuleIssue] {
        var issues: [RuleIssue] = []
        if to.isEmpty { issues.append(RuleIssue(path, "name roles, accounts or gridWorker")) }
        for (i, role) in (to.roles ?? []).enumerated() where !notifiableRoles.contains(role) {
            issues.append(RuleIssue("\(path).roles[\(i)]", "must be one of \(notifiableRoles.joined(separator: ", "))"))
        }
        if (to.accounts ?? []).count > 50 { issues.append(RuleIssue("\(path).accounts", "at most 50")) }
        return issues
    }
}
