import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliHTTP
import LinliStorage
import LinliThings
import LinliWorkOrders

/// The rule form: one trigger on a product or device of the community (a property report, an
/// event, online/offline, or no report for a while), care tags of the household, and at most one
/// action of each kind. It writes the rule JSON the API takes and is checked as the API checks
/// it; the rules it cannot show (several triggers, schedules, other conditions) are edited as JSON.
enum RuleForm {
    /// The trigger kinds the form offers; the others (schedule, domain event) are edited as JSON.
    static let kinds: [Trigger.Kind] = [.property, .event, .status, .absence]
    static func minutes(_ seconds: Int?) -> String { seconds.map { String($0 / 60) } ?? "" }

    /// The form's values for a stored rule; nil when the form cannot show it whole.
    static func values(name: String, enabled: Bool, _ d: RuleDefinition) -> [String: String]? {
        guard d.triggers.count == 1, let t = d.triggers.first, kinds.contains(t.type), !t.productKey.isEmpty,
            t.absenceOf == .device, (t.forSeconds ?? 0) % 60 == 0
        else { return nil }
        var v: [String: String] = ["name": name, "kind": t.type.rawValue]
        if enabled { v["enabled"] = "on" }
        v["source"] = t.productKey + (t.deviceName.map { "/" + $0 } ?? "")
        v["property"] = t.property
        v["op"] = t.op?.rawValue
        v["value"] = t.value.map(RuleEngineText.number)
        v["event"] = t.event
        v["status"] = t.status
        v["minutes"] = t.forSeconds.map { String($0 / 60) }
        // At most one care-tag condition and one time condition; device conditions are JSON's.
        var kindsSeen = Set<Condition.Kind>()
        for c in d.conditions {
            guard kindsSeen.insert(c.type).inserted else { return nil }
            switch c.type {
            case .careTag:
                for tag in c.tags ?? [] { v["careTag." + tag.rawValue] = "on" }
            case .time:
                v["timeFrom"] = c.from
                v["timeTo"] = c.to
                for day in c.weekdays ?? [] { v["weekday.\(day)"] = "on" }
            case .device:
                return nil
            }
        }
        var seen = Set<Action.Kind>()
        for a in d.actions {
            guard seen.insert(a.type).inserted else { return nil }
            switch a.type {
            case .alarm:
                v["alarm"] = "on"
                v["alarmType"] = a.alarmType
                v["severity"] = a.severity?.rawValue
                v["alarmMessage"] = a.message
                if let e = a.escalate {
                    guard e.tiers.count == 1, let tier = e.tiers.first, tier.afterSeconds % 60 == 0,
                        (e.repeatSeconds ?? 0) % 60 == 0, (tier.to.accounts ?? []).isEmpty
                    else { return nil }
                    v["escalate"] = "on"
                    v["escalateMinutes"] = minutes(tier.afterSeconds)
                    for role in tier.to.roles ?? [] { v["escalateTo." + role] = "on" }
                    if tier.to.gridWorker == true { v["escalateTo.gridWorker"] = "on" }
                    v["repeatMinutes"] = e.repeatSeconds.map { String($0 / 60) }
                }
            case .workOrder:
                v["workOrder"] = "on"
                v["category"] = a.category?.rawValue
                v["workOrderTitle"] = a.message
            case .notify:
                v["notify"] = "on"
                for role in a.to?.roles ?? [] { v["notifyTo." + role] = "on" }
                if a.to?.gridWorker == true { v["notifyTo.gridWorker"] = "on" }
                v["notifyAccounts"] = (a.to?.accounts ?? []).joined(separator: ", ")
                v["notifyMessage"] = a.message
            case .device:
                guard let pk = a.productKey, let dn = a.deviceName, let service = a.service, a.properties == nil
                else { return nil }
                v["command"] = "on"
                v["commandDevice"] = pk + "/" + dn
                v["commandService"] = service
                if let params = a.params, params != .object([:]) {
                    v["commandParams"] = String(decoding: params.serialized(), as: UTF8.self)
                }
            case .webhook:
                v["webhook"] = "on"
                v["webhookUrl"] = a.url
            }
        }
        return v
    }

    /// What was typed, read into the rule input the API takes; or, for each field at fault, the
    /// catalogue key of what it needs.
    static func input(_ form: FormInput) -> (API.RuleInput?, [String: String]) {
        var errors: [String: String] = [:]
        func fault(_ field: String) { if errors[field] == nil { errors[field] = "ruleform.error." + field } }
        let name = form["name"] ?? ""
        if name.isEmpty || name.count > 100 { fault("name") }
        func number(_ key: String) -> Double? {
            guard let raw = form[key] else { return nil }
            guard let n = Double(raw), n.isFinite else {
                fault(key)
                return nil
            }
            return n
        }
        func minutes(_ key: String, required: Bool) -> Int? {
            guard let raw = form[key] else {
                if required { fault(key) }
                return nil
            }
            guard let n = Int(raw), (1...RuleDefinition.maxForSeconds / 60).contains(n) else {
                fault(key)
                return nil
            }
            return n * 60
        }
        // The trigger: a product's devices ("pk") or one of them ("pk/dn").
        let source = (form["source"] ?? "").split(separator: "/", maxSplits: 1).map(String.init)
        if source.isEmpty { fault("source") }
        let kind = form["kind"].flatMap(Trigger.Kind.init(rawValue:)).flatMap { kinds.contains($0) ? $0 : nil }
        if kind == nil { fault("kind") }
        var trigger = Trigger(type: kind ?? .property, productKey: source.first ?? "")
        trigger.deviceName = source.count > 1 ? source[1] : nil
        switch kind ?? .property {
        case .property:
            trigger.property = form["property"]
            if trigger.property == nil { fault("property") }
            trigger.op = form["op"].flatMap(Comparison.init(rawValue:))
            if trigger.op == nil { fault("op") }
            trigger.value = number("value")
            if form["value"] == nil { fault("value") }
            trigger.forSeconds = minutes("minutes", required: false)
        case .event:
            trigger.event = form["event"]
            if trigger.event == nil { fault("event") }
        case .status:
            trigger.status = form["status"]
            if !["online", "offline"].contains(trigger.status ?? "") { fault("status") }
            trigger.forSeconds = minutes("minutes", required: false)
        case .absence:
            // Nothing at all for a while, or nothing of one property's value.
            trigger.forSeconds = minutes("minutes", required: true)
            if let property = form["property"] {
                trigger.property = property
                trigger.op = form["op"].flatMap(Comparison.init(rawValue:))
                if trigger.op == nil { fault("op") }
                trigger.value = number("value")
                if form["value"] == nil { fault("value") }
            }
        default:
            break
        }
        var conditions: [Condition] = []
        let tags = CareTag.allCases.filter { form["careTag." + $0.rawValue] != nil }
        if !tags.isEmpty { conditions.append(.careTag(tags)) }
        // Between two times of day, on some days of the week: either, or both.
        let days = (1...7).filter { form["weekday.\($0)"] != nil }
        let from = form["timeFrom"]
        let to = form["timeTo"]
        if from != nil || to != nil || !days.isEmpty {
            if (from == nil) != (to == nil) { fault(from == nil ? "timeFrom" : "timeTo") }
            conditions.append(Condition(type: .time, from: from, to: to, weekdays: days.isEmpty ? nil : days))
        }

        func recipients(_ prefix: String, accounts: String? = nil) -> Recipients {
            let roles = RuleDefinition.notifiableRoles.filter { form[prefix + "." + $0] != nil }
            let names = (accounts.flatMap { form[$0] } ?? "").split { $0 == "," || $0 == "，" || $0 == " " }.map(
                String.init)
            return Recipients(
                roles: roles.isEmpty ? nil : roles, accounts: names.isEmpty ? nil : names,
                gridWorker: form[prefix + ".gridWorker"] != nil ? true : nil)
        }
        var actions: [Action] = []
        if form["alarm"] != nil {
            var a = Action(type: .alarm, alarmType: form["alarmType"], message: form["alarmMessage"])
            a.severity = form["severity"].flatMap(AlarmSeverity.init(rawValue:))
            if a.alarmType == nil { fault("alarmType") }
            if a.severity == nil { fault("severity") }
            if form["escalate"] != nil {
                let after = minutes("escalateMinutes", required: true)
                let to = recipients("escalateTo")
                if to.isEmpty { fault("escalateTo") }
                a.escalate = Escalation(
                    tiers: [.init(afterSeconds: after ?? 60, to: to)],
                    repeatSeconds: minutes("repeatMinutes", required: false))
            }
            actions.append(a)
        }
        if form["workOrder"] != nil {
            var a = Action(type: .workOrder, message: form["workOrderTitle"])
            a.category = form["category"].flatMap(WorkOrderCategory.init(rawValue:))
            if a.category == nil { fault("category") }
            if a.message == nil { fault("workOrderTitle") }
            actions.append(a)
        }
        if form["notify"] != nil {
            var a = Action(type: .notify, message: form["notifyMessage"])
            a.to = recipients("notifyTo", accounts: "notifyAccounts")
            if a.to?.isEmpty != false { fault("notifyTo") }
            actions.append(a)
        }
        if form["command"] != nil {
            var a = Action(type: .device)
            let target = (form["commandDevice"] ?? "").split(separator: "/", maxSplits: 1).map(String.init)
            if target.count != 2 { fault("commandDevice") }
            a.productKey = target.first
            a.deviceName = target.count > 1 ? target[1] : nil
            a.service = form["commandService"]
            if a.service == nil { fault("commandService") }
            if let raw = form["commandParams"] {
                if let params = JSONValue.parse(Data(raw.utf8)), case .object = params {
                    a.params = params
                } else {
                    fault("commandParams")
                }
            } else {
                a.params = .object([:])
            }
            actions.append(a)
        }
        if form["webhook"] != nil {
            var a = Action(type: .webhook)
            a.url = form["webhookUrl"]
            if a.url == nil { fault("webhookUrl") }
            a.secret = form["webhookSecret"]
            actions.append(a)
        }
        if actions.isEmpty { fault("actions") }
        guard errors.isEmpty else { return (nil, errors) }
        return (
            API.RuleInput(
                name: name, enabled: form["enabled"] != nil, triggers: [trigger], conditions: conditions,
                actions: actions), [:]
        )
    }

    /// The form field an issue of the API's checks is about, from its JSON path.
    static func field(of path: String, conditions: [Condition] = [], actions: [Action]) -> String {
        let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
        let head = parts.first ?? ""
        let rest = parts.count > 1 ? parts[1] : ""
        if head == "name" { return "name" }
        if head.hasPrefix("triggers") {
            switch rest.split(separator: ".").first.map(String.init) ?? "" {
            case "property": return "property"
            case "op": return "op"
            case "value": return "value"
            case "event": return "event"
            case "status": return "status"
            case "forSeconds": return "minutes"
            case "per": return "kind"
            default: return "source"
            }
        }
        if head.hasPrefix("conditions") {
            guard let i = Int(head.dropFirst(11).dropLast()), conditions.indices.contains(i),
                conditions[i].type == .time
            else { return "careTags" }
            return ["from": "timeFrom", "to": "timeTo"][rest] ?? (rest.hasPrefix("weekdays") ? "weekdays" : "timeFrom")
        }
        guard head.hasPrefix("actions["), let i = Int(head.dropFirst(8).dropLast()), actions.indices.contains(i)
        else { return "actions" }
        let key = rest.split(separator: ".").first.map(String.init) ?? ""
        switch actions[i].type {
        case .alarm:
            if key == "escalate" {
                return rest.contains("afterSeconds")
                    ? "escalateMinutes" : rest.contains("repeatSeconds") ? "repeatMinutes" : "escalateTo"
            }
            return ["severity": "severity", "message": "alarmMessage"][key] ?? "alarmType"
        case .workOrder: return key == "category" ? "category" : "workOrderTitle"
        case .notify: return key == "message" ? "notifyMessage" : key == "to" ? "notifyTo" : "notifyTo"
        case .device:
            return ["service": "commandService", "params": "commandParams"][key] ?? "commandDevice"
        case .webhook: return key == "secret" ? "webhookSecret" : "webhookUrl"
        }
    }

    /// A value that makes `op` hold against `threshold`, for the sample the trial starts with.
    static func satisfying(_ op: Comparison?, _ threshold: Double?) -> Double {
        let v = threshold ?? 0
        switch op {
        case .greater?, .notEqual?: return v + 1
        case .less?: return v - 1
        default: return v
        }
    }
}
