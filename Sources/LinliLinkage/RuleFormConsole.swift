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

/// What the rule form offers, from the community's products, their thing models and devices, and
/// the trial's sample from one of its devices.
extension WebConsole {
    struct OptionGroup {
        var label: String
        var product: String
        var options: [SelectOption]
    }
    struct Check {
        var name: String
        var label: String
        var checked: Bool
    }

    /// The community's products and devices, once per page.
    struct RuleWorld {
        var products: [Product]
        var devices: [Device]
        func product(_ key: String) -> Product? { products.first { $0.productKey == key } }
        func name(_ productKey: String, _ deviceName: String?) -> String {
            let product = product(productKey)?.name ?? productKey
            return deviceName.map { product + " · " + $0 } ?? product
        }
    }

    func ruleWorld(_ community: Community) async throws -> RuleWorld {
        RuleWorld(
            products: try await store.products(communityId: community.id),
            devices: try await store.devices(
                communityId: community.id, filter: DeviceFilter(), page: PageRequest(limit: 500), scope: .everything
            ).items)
    }

    /// The page's part for the form: the values, the choices with what is chosen, the errors in the
    /// page's language (only the fields at fault have a key).
    func ruleFormObject(_ v: [String: String], errors: [String: String], world: RuleWorld, _ context: AppContext)
        -> [String: Any]
    {
        let source = v["source"] ?? ""
        let chosenProduct = String(source.split(separator: "/").first ?? "")
        func select(_ value: String, _ label: String, _ key: String) -> SelectOption {
            SelectOption(value: value, label: label, selected: v[key] == value)
        }
        let sources = world.products.map { p in
            OptionGroup(
                label: p.name, product: p.productKey,
                options: [select(p.productKey, p.name + " · " + text("ruleform.allDevices", context), "source")]
                    + world.devices.filter { $0.productKey == p.productKey }.map {
                        select(
                            $0.productKey + "/" + $0.deviceName,
                            $0.nickname.isEmpty ? $0.deviceName : "\($0.deviceName) · \($0.nickname)", "source")
                    })
        }
        // The thing model's names, in the group of each product; what is chosen, in the chosen one.
        func groups(_ key: String, _ items: (ThingModel) -> [(String, String)]) -> [OptionGroup] {
            world.products.compactMap { p in
                guard let model = p.thingModel else { return nil }
                let options = items(model).map { id, name in
                    SelectOption(
                        value: id, label: name, selected: p.productKey == chosenProduct && v[key] == id)
                }
                return options.isEmpty ? nil : OptionGroup(label: p.name, product: p.productKey, options: options)
            }
        }
        let comparable = ["int", "float", "double", "bool", "enum"]
        let properties = groups("property") { m in
            m.properties.filter { comparable.contains($0.dataType.typeName) }.map {
                ($0.identifier, "\($0.name) (\($0.identifier))" + Self.valuesNamed($0.dataType))
            }
        }
        let events = groups("event") { m in
            m.events.filter { $0.identifier != "post" }.map { ($0.identifier, "\($0.name) (\($0.identifier))") }
        }
        let commandProduct = String((v["commandDevice"] ?? "").split(separator: "/").first ?? "")
        let services = world.products.compactMap { p -> OptionGroup? in
            guard let model = p.thingModel else { return nil }
            let options = model.services.filter { !["set", "get"].contains($0.identifier) }.map {
                SelectOption(
                    value: $0.identifier, label: "\($0.name) (\($0.identifier))",
                    selected: p.productKey == commandProduct && v["commandService"] == $0.identifier)
            }
            return options.isEmpty ? nil : OptionGroup(label: p.name, product: p.productKey, options: options)
        }
        let commandable = Set(services.map(\.product))
        let commandDevices = world.devices.filter { commandable.contains($0.productKey) }.map {
            select($0.productKey + "/" + $0.deviceName, world.name($0.productKey, $0.deviceName), "commandDevice")
        }
        func checks(_ prefix: String, grid: Bool) -> [Check] {
            RuleDefinition.notifiableRoles.map {
                Check(name: prefix + "." + $0, label: label("role", $0, context), checked: v[prefix + "." + $0] != nil)
            }
                + (grid
                    ? [
                        Check(
                            name: prefix + ".gridWorker", label: text("ruleform.gridWorker", context),
                            checked: v[prefix + ".gridWorker"] != nil)
                    ] : [])
        }
        var object: [String: Any] = [
            "v": v, "sources": sources, "properties": properties, "events": events, "services": services,
            "commandDevices": commandDevices, "hasCommandDevices": !commandDevices.isEmpty,
            "kinds": RuleForm.kinds.map { select($0.rawValue, label("ruleform.kind", $0.rawValue, context), "kind") },
            "ops": Comparison.allCases.map { select($0.rawValue, label("ruleform.op", "\($0)", context), "op") },
            "statuses": ["offline", "online"].map { select($0, label("ruleform.status", $0, context), "status") },
            "severities": AlarmSeverity.allCases.map {
                select($0.rawValue, label("severity", $0.rawValue, context), "severity")
            },
            "categories": WorkOrderCategory.allCases.map {
                select($0.rawValue, label("workorder.category", $0.rawValue, context), "category")
            },
            "careTags": CareTag.allCases.map {
                Check(
                    name: "careTag." + $0.rawValue, label: label("careTag", $0.rawValue, context),
                    checked: v["careTag." + $0.rawValue] != nil)
            },
            "weekdays": (1...7).map {
                Check(
                    name: "weekday.\($0)", label: label("ruleform.weekday", String($0), context),
                    checked: v["weekday.\($0)"] != nil)
            },
            "escalateTo": checks("escalateTo", grid: true), "notifyTo": checks("notifyTo", grid: true),
            "hasProducts": !world.products.isEmpty, "hasFormErrors": !errors.isEmpty,
        ]
        for key in ["enabled", "alarm", "escalate", "workOrder", "notify", "command", "webhook"] where v[key] != nil {
            object["on_" + key] = true
        }
        // Only a field at fault has its key: an empty string would still open a section.
        var e: [String: String] = [:]
        for (field, key) in errors { e[field] = text(key, context) }
        object["e"] = e
        return object
    }

    /// What the values of a bool or enum property stand for, and a number's unit, for its choice:
    /// " · 0 正常, 1 检测到烟雾", " · °C"; the thing model's own words.
    static func valuesNamed(_ type: ThingModel.DataType) -> String {
        switch type {
        case let .bool(names):
            return names.isEmpty
                ? "" : " · " + names.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        case let .enumeration(names):
            return names.isEmpty
                ? "" : " · " + names.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        case let .int(spec), let .float(spec), let .double(spec):
            return spec.unit.map { " · " + $0 } ?? ""
        default:
            return ""
        }
    }

    /// A first sample for the trial, from a real device of this community that the rule watches:
    /// what it would report to make the rule fire, and how long to wait after it.
    func trialSample(_ rule: Rule, world: RuleWorld) -> (text: String, thenSeconds: Int, device: Bool) {
        let t = rule.definition.triggers.first
        let device =
            world.devices.first { d in
                guard let t, !t.productKey.isEmpty else { return false }
                return d.productKey == t.productKey && (t.deviceName == nil || t.deviceName == d.deviceName)
            } ?? (t?.productKey.isEmpty != false ? world.devices.first : nil)
        guard let device else { return ("[]", 0, false) }
        let model = world.product(device.productKey)?.thingModel
        var sample: [String: JSONValue] = [
            "productKey": .string(device.productKey), "deviceName": .string(device.deviceName),
        ]
        var wait = t?.forSeconds ?? 0
        let sameProduct = t?.productKey == device.productKey
        switch t?.type {
        case .event? where sameProduct:
            sample["event"] = .string(t?.event ?? "")
        case .status? where sameProduct:
            sample["status"] = .string(t?.status ?? "offline")
        case .property? where sameProduct:
            sample["properties"] = .object([
                t?.property ?? "": .double(RuleForm.satisfying(t?.op, t?.value))
            ])
        default:
            // Any report of one of its model's properties; an absence then fires after its time.
            let numeric = model?.properties.first {
                ["int", "float", "double", "bool", "enum"].contains($0.dataType.typeName)
            }
            if let property = numeric?.identifier ?? model?.properties.first?.identifier {
                sample["properties"] = .object([property: .double(0)])
            } else {
                sample["status"] = .string("online")
            }
            if t?.type == .absence { wait = t?.forSeconds ?? 0 } else if t?.type != .property { wait = 0 }
        }
        let text = String(decoding: JSONValue.array([.object(sample)]).serialized(), as: UTF8.self)
        return (text, wait, true)
    }

    /// A duration as people say it: minutes when whole, else seconds.
    func duration(_ seconds: Int, _ context: AppContext) -> String {
        seconds % 60 == 0
            ? text("ruleform.minutes", context, ["n": String(seconds / 60)])
            : text("ruleform.seconds", context, ["n": String(seconds)])
    }

    /// A trigger in words of the page's language, with the product's name, not its key.
    func summary(_ t: Trigger, world: RuleWorld, _ context: AppContext) -> String {
        let on =
            t.productKey.isEmpty
            ? text("ruleform.per." + t.absenceOf.rawValue, context) : world.name(t.productKey, t.deviceName)
        let lasting = t.forSeconds.map { text("ruleform.lasting", context, ["time": duration($0, context)]) } ?? ""
        let compared =
            t.property.map {
                "\($0) \(label("ruleform.op", "\(t.op ?? .equal)", context)) \(t.value.map(RuleEngineText.number) ?? "")"
            } ?? ""
        switch t.type {
        case .property:
            return text("ruleform.summary.property", context, ["on": on, "what": compared]) + lasting
        case .event: return text("ruleform.summary.event", context, ["on": on, "event": t.event ?? ""])
        case .status:
            return text(
                "ruleform.summary.status", context,
                ["on": on, "status": label("ruleform.status", t.status ?? "offline", context)])
                + lasting
        case .absence:
            return text(
                "ruleform.summary.absence", context,
                [
                    "on": on, "time": duration(t.forSeconds ?? 0, context),
                    "what": compared.isEmpty ? (t.event ?? "") : compared,
                ])
        case .schedule: return text("ruleform.summary.schedule", context, ["cron": t.cron ?? ""])
        case .domain:
            return text(
                "ruleform.summary.domain", context,
                [
                    "event": label(
                        "ruleform.domain", (t.eventType ?? "").replacingOccurrences(of: ".", with: "_"), context)
                ])
        }
    }

    /// An action in words of the page's language.
    func summary(_ a: Action, world: RuleWorld, _ context: AppContext) -> String {
        switch a.type {
        case .alarm:
            return text(
                "ruleform.do.alarm", context,
                ["type": a.alarmType ?? "", "severity": label("severity", a.severity?.rawValue ?? "warning", context)])
        case .workOrder:
            return text(
                "ruleform.do.workOrder", context,
                [
                    "category": label("workorder.category", a.category?.rawValue ?? "other", context),
                    "title": a.message ?? "",
                ])
        case .notify:
            let to = a.to ?? Recipients()
            let who =
                (to.roles ?? []).map { label("role", $0, context) } + (to.accounts ?? [])
                + (to.gridWorker == true ? [text("ruleform.gridWorker", context)] : [])
            return text("ruleform.do.notify", context, ["who": who.joined(separator: text("ruleform.and", context))])
        case .device:
            let target =
                a.deviceName.map { world.name(a.productKey ?? "", $0) }
                ?? text(
                    "ruleform.taggedDevices", context,
                    ["product": world.name(a.productKey ?? "", nil), "tag": a.tag ?? ""])
            return a.service.map { text("ruleform.do.service", context, ["service": $0, "device": target]) }
                ?? text("ruleform.do.set", context, ["device": target])
        case .webhook: return text("ruleform.do.webhook", context, ["url": a.url ?? ""])
        }
    }
}
