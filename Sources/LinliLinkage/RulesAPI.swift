import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliHTTP
import LinliMessaging
import LinliStorage
import LinliThings
import LinliWorkOrders

/// Rules (event linkage) and the alarms they raise, under /api/v1.
extension API {
    func registerRules(_ api: RouterGroup<AppContext>) {
        api.get("rule-templates", use: ruleTemplates)
        api.get("communities/:cid/rules", use: listRules)
        api.post("communities/:cid/rules", use: createRule)
        api.get("rules/:id", use: getRule)
        api.put("rules/:id", use: replaceRule)
        api.delete("rules/:id", use: deleteRule)
        api.get("rules/:id/deliveries", use: ruleDeliveries)
        api.post("communities/:cid/rules/test", use: testRule)
        api.get("communities/:cid/alarms", use: listAlarms)
        api.get("alarms/:id", use: getAlarm)
        api.post("alarms/:id/acknowledge", use: acknowledgeAlarm)
        api.post("alarms/:id/clear", use: clearAlarm)
        api.post("alarms/:id/comments", use: commentAlarm)
        api.get("me/notifications", use: myNotifications)
        api.post("me/notifications/read-all", use: readAllNotifications)
        api.post("me/notifications/:id/read", use: readNotification)
    }

    // MARK: the caller's inbox

    @Sendable func myNotifications(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        var q = QueryReader(request)
        let unread = q.bool("unread")
        let page = q.page()
        try q.check()
        struct Inbox: Encodable {
            var items: [InboxMessage]
            var total: Int
            var limit: Int
            var offset: Int
            var unread: Int
        }
        let found = try await store.notifications(accountId: caller.accountId, unreadOnly: unread, page: page)
        return try JSON.response(
            Inbox(
                items: found.items, total: found.total, limit: found.limit, offset: found.offset,
                unread: try await store.unreadNotifications(accountId: caller.accountId)))
    }

    @Sendable func readNotification(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        // Someone else's notification is as absent as a missing one.
        guard
            try await store.markNotificationsRead(accountId: caller.accountId, id: try context.parameters.require("id"))
                == 1
        else {
            throw Problem.notFound("notification")
        }
        return Response(status: .noContent)
    }

    @Sendable func readAllNotifications(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        return try JSON.response(["read": try await store.markNotificationsRead(accountId: caller.accountId, id: nil)])
    }

    // MARK: rules

    struct RuleInput: Decodable {
        var name: String
        var enabled: Bool?
        var triggers: [Trigger]
        var conditions: [Condition]?
        var actions: [Action]
    }

    struct RuleView: Encodable {
        var id: ID
        var communityId: ID
        var name: String
        var enabled: Bool
        var triggers: [Trigger]
        var conditions: [Condition]
        var actions: [Action]
        var createdAt: Millis
        var updatedAt: Millis
        init(_ r: Rule) {
            id = r.id
            communityId = r.communityId
            name = r.name
            enabled = r.enabled
            triggers = r.definition.triggers
            conditions = r.definition.conditions
            createdAt = r.createdAt
            updatedAt = r.updatedAt
            // A webhook's secret is never shown again; `secret: "********"` says that one is kept.
            actions = r.definition.actions.map { a in
                var shown = a
                if shown.secretCipher != nil { shown.secret = "********" }
                shown.secretCipher = nil
                return shown
            }
        }
    }

    @Sendable func ruleTemplates(_ request: Request, context: AppContext) async throws -> Response {
        _ = try context.scope(.viewAlarms)
        return try JSON.response(["items": RuleTemplates.all])
    }

    @Sendable func listRules(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .viewAlarms)
        return try JSON.response(["items": try await store.rules(communityId: community.id).map(RuleView.init)])
    }

    /// Reads and checks a rule: its shape, then each trigger against the community's products and
    /// their thing models. Every fault is reported with its path.
    func readRule(_ request: inout Request, context: AppContext, communityId: ID, replacing previous: Rule? = nil)
        async throws -> (name: String, enabled: Bool, RuleDefinition)
    {
        try await checkRule(
            try await request.decodeJSON(RuleInput.self, context: context), communityId: communityId,
            replacing: previous)
    }

    func checkRule(_ input: RuleInput, communityId: ID, replacing previous: Rule? = nil) async throws -> (
        name: String, enabled: Bool, RuleDefinition
    ) {
        var v = Validator()
        let name = v.text(input.name, "name", max: 100)
        try v.check()
        var actions = input.actions
        for i in actions.indices {
            actions[i].secretCipher = nil
            guard actions[i].type == .webhook else {
                actions[i].secret = nil
                continue
            }
            // "********" (or nothing) keeps the secret of the same webhook in the rule being replaced.
            if actions[i].secret == nil || actions[i].secret == "********" {
                actions[i].secret = nil
                actions[i].secretCipher =
                    previous?.definition.actions.first { $0.type == .webhook && $0.url == actions[i].url }?.secretCipher
            }
        }
        var definition = RuleDefinition(triggers: input.triggers, conditions: input.conditions ?? [], actions: actions)
        var issues = definition.issues().map { FieldIssue($0.path, $0.reason) }
        for (i, action) in definition.actions.enumerated() where action.type == .device {
            issues += try await checkDeviceAction(action, path: "actions[\(i)]", communityId: communityId)
        }
        // A webhook to the server's own network is refused when it is saved, as well as at every
        // sending (a name can resolve elsewhere later).
        for (i, action) in definition.actions.enumerated() where action.type == .webhook {
            guard let url = action.url.flatMap(URL.init(string:)), url.host?.isEmpty == false,
                let why = await services.outbound.webhookAddresses.refusal(url: url)
            else { continue }
            issues.append(
                FieldIssue(
                    "actions[\(i)].url",
                    "must reach a public address, not one of the server's own network: \(why) (an administrator may allow it with webhook-allow)"
                ))
        }
        for (i, trigger) in definition.triggers.enumerated() where !trigger.productKey.isEmpty {
            let path = "triggers[\(i)]"
            guard let product = try await store.product(key: trigger.productKey), product.communityId == communityId
            else {
                issues.append(FieldIssue("\(path).productKey", "is not a product of this community"))
                continue
            }
            if let dn = trigger.deviceName,
                try await store.device(productKey: trigger.productKey, deviceName: dn) == nil
            {
                issues.append(FieldIssue("\(path).deviceName", "is not a device of product \(trigger.productKey)"))
            }
            guard let model = product.thingModel else { continue }
            if let property = trigger.property {
                if let p = model.property(property) {
                    if !["int", "float", "double", "bool", "enum"].contains(p.dataType.typeName) {
                        issues.append(
                            FieldIssue(
                                "\(path).property",
                                "\(property) is \(p.dataType.typeName); only numbers, bool and enum compare"))
                    }
                } else {
                    issues.append(
                        FieldIssue("\(path).property", "\(property) is not a property of \(trigger.productKey)"))
                }
            }
            if let event = trigger.event, model.event(event) == nil || event == "post" {
                issues.append(FieldIssue("\(path).event", "\(event) is not an event of \(trigger.productKey)"))
            }
        }
        for (i, condition) in definition.conditions.enumerated() where condition.type == .device {
            let path = "conditions[\(i)]"
            guard let pk = condition.productKey, let dn = condition.deviceName,
                let other = try await store.device(productKey: pk, deviceName: dn), other.communityId == communityId
            else {
                issues.append(FieldIssue("\(path).deviceName", "is not a device of this community"))
                continue
            }
            if let property = condition.property, let product = try await store.product(key: pk),
                let model = product.thingModel, model.property(property) == nil
            {
                issues.append(FieldIssue("\(path).property", "\(property) is not a property of \(pk)"))
            }
        }
        if !issues.isEmpty { throw Problem.invalid(issues) }
        // Secrets are kept encrypted, like device secrets.
        for i in definition.actions.indices {
            if let secret = definition.actions[i].secret {
                definition.actions[i].secretCipher = try store.cipher.encrypt(secret)
                definition.actions[i].secret = nil
            }
        }
        return (name!, input.enabled ?? true, definition)
    }

    /// A device action names devices of this community and values their thing model accepts.
    func checkDeviceAction(_ action: Action, path p: String, communityId: ID) async throws -> [FieldIssue] {
        guard let pk = action.productKey, !pk.isEmpty else { return [] }
        guard let product = try await store.product(key: pk), product.communityId == communityId else {
            return [FieldIssue("\(p).productKey", "is not a product of this community")]
        }
        var issues: [FieldIssue] = []
        if let dn = action.deviceName, try await store.device(productKey: pk, deviceName: dn) == nil {
            issues.append(FieldIssue("\(p).deviceName", "is not a device of product \(pk)"))
        }
        guard let model = product.thingModel else { return issues }
        if let properties = action.properties {
            issues += model.validateProperties(properties, writing: true).map {
                FieldIssue("\(p).properties.\($0.path)", $0.reason)
            }
        }
        if let service = action.service {
            if let s = model.service(service), !["set", "get"].contains(service) {
                issues += model.validate(fields: s.inputData, action.params ?? .object([:]), requireAll: true).map {
                    FieldIssue("\(p).params.\($0.path)", $0.reason)
                }
            } else {
                issues.append(FieldIssue("\(p).service", "\(service) is not a service of \(pk)"))
            }
        }
        return issues
    }

    @Sendable func ruleDeliveries(_ request: Request, context: AppContext) async throws -> Response {
        let rule = try await visibleRule(context, .manageRules)
        var q = QueryReader(request)
        let page = q.page()
        try q.check()
        struct DeliveryView: Encodable {
            var id: ID
            var url: String
            var status: WebhookDelivery.Status
            var attempts: Int
            var nextAt: Millis?
            var reason: String?
            var createdAt: Millis
            var deliveredAt: Millis?
            var payload: JSONValue
        }
        let found = try await store.deliveries(ruleId: rule.id, page: page)
        return try JSON.response(
            Page(
                items: found.items.map {
                    DeliveryView(
                        id: $0.id, url: $0.url, status: $0.status, attempts: $0.attempts,
                        nextAt: $0.status == .pending ? $0.nextAt : nil, reason: $0.reason, createdAt: $0.createdAt,
                        deliveredAt: $0.deliveredAt, payload: JSONValue.parse(Data($0.payload.utf8)) ?? .null)
                }, total: found.total, limit: found.limit, offset: found.offset))
    }

    @Sendable func createRule(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageRules)
        try requireCovers(scope, community.id, .manageRules)
        let (name, enabled, definition) = try await readRule(&request, context: context, communityId: community.id)
        let rule = Rule(communityId: community.id, name: name, enabled: enabled, definition: definition)
        try await store.createRule(rule, actor: context.principal)
        services.rules?.reload(rule.id)
        return try JSON.response(RuleView(rule), status: .created)
    }

    /// A rule the caller may see: within the capability's reach, or, to read, in a community the
    /// caller belongs to (a grid worker sees the rules behind the alarms of their grid). Else 404.
    func visibleRule(_ context: AppContext, _ capability: Capability) async throws -> Rule {
        let scope = try context.scope(capability)
        let caller = try context.requireCaller()
        guard let rule = try await store.rule(id: try context.parameters.require("id")),
            scope.coversCommunity(rule.communityId)
                || (capability == .viewAlarms && caller.communityIds.contains(rule.communityId))
        else { throw Problem.notFound("rule") }
        return rule
    }

    @Sendable func getRule(_ request: Request, context: AppContext) async throws -> Response {
        try JSON.response(RuleView(try await visibleRule(context, .viewAlarms)))
    }

    @Sendable func replaceRule(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        var rule = try await visibleRule(context, .manageRules)
        let (name, enabled, definition) = try await readRule(
            &request, context: context, communityId: rule.communityId, replacing: rule)
        rule.name = name
        rule.enabled = enabled
        rule.definition = definition
        try await store.updateRule(rule, actor: context.principal)
        services.rules?.reload(rule.id)
        return try JSON.response(RuleView(try await store.rule(id: rule.id) ?? rule))
    }

    @Sendable func deleteRule(_ request: Request, context: AppContext) async throws -> Response {
        let rule = try await visibleRule(context, .manageRules)
        try await store.deleteRule(rule, actor: context.principal)
        services.rules?.reload(rule.id)
        return Response(status: .noContent)
    }

    // MARK: trying a rule

    struct RuleTest: Decodable {
        struct Sample: Decodable {
            var productKey: String
            var deviceName: String
            var properties: [String: Double]?
            var event: String?
            var status: String?
        }
        var rule: RuleInput
        /// What devices do, in order; nothing is stored and nothing is sent.
        var samples: [Sample]
        /// Then let this much time pass, for durations and absence.
        var thenSeconds: Int?
    }

    struct RuleTestOutcome: Encodable {
        struct Step: Encodable {
            var sample: Int?
            var afterSeconds: Int?
            var triggerIndex: Int
            var change: String
            var detail: String
            var device: String
            var actions: [String]
        }
        var steps: [Step]
    }

    /// Runs a rule (saved or not) against sample messages in a private engine: what would fire,
    /// what would end, and what its actions would do. Stores and sends nothing.
    @Sendable func testRule(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, _) = try await self.community(context, .manageRules)
        let input = try await request.decodeJSON(RuleTest.self, context: context)
        return try JSON.response(RuleTestOutcome(steps: try await trial(input, community: community)))
    }

    func trial(_ input: RuleTest, community: Community) async throws -> [RuleTestOutcome.Step] {
        var issues: [FieldIssue] = []
        if input.samples.isEmpty || input.samples.count > 100 {
            issues.append(FieldIssue("samples", "give 1 to 100 samples"))
        }
        for (i, sample) in input.samples.enumerated() {
            let kinds = [sample.properties != nil, sample.event != nil, sample.status != nil].filter { $0 }.count
            if kinds != 1 {
                issues.append(FieldIssue("samples[\(i)]", "give exactly one of properties, event or status"))
            }
        }
        if let t = input.thenSeconds, !(0...RuleDefinition.maxForSeconds).contains(t) {
            issues.append(FieldIssue("thenSeconds", "must be from 0 to \(RuleDefinition.maxForSeconds)"))
        }
        if !issues.isEmpty { throw Problem.invalid(issues) }
        var trial = input.rule
        // A webhook under test needs no secret: nothing is sent.
        trial.actions = trial.actions.map { a in
            var a = a
            if a.type == .webhook, a.secret == nil { a.secret = String(repeating: "x", count: 16) }
            return a
        }
        let (name, _, definition) = try await checkRule(trial, communityId: community.id)
        let rule = Rule(communityId: community.id, name: name, definition: definition)
        var engine = RuleEngine()
        engine.install(rule)
        var devices: [String: WatchedDevice] = [:]
        var steps: [RuleTestOutcome.Step] = []
        let start = nowMillis()
        func describe(_ f: Firing) -> [String] {
            rule.definition.actions.compactMap { a in
                switch (a.type, f.change) {
                case (.alarm, .fired): "raise alarm \(a.alarmType ?? "") (\(a.severity?.rawValue ?? ""))"
                case (.alarm, .ended): f.trigger.hasEnd ? "clear alarm \(a.alarmType ?? "")" : nil
                case (.device, .fired):
                    a.service.map { "call \($0) on \(a.productKey ?? "")/\(a.deviceName ?? "#" + (a.tag ?? ""))" }
                        ?? "set \(a.properties.map { String(decoding: $0.serialized(), as: UTF8.self) } ?? "{}") on \(a.productKey ?? "")/\(a.deviceName ?? "#" + (a.tag ?? ""))"
                case (.webhook, _): "POST to \(a.url ?? "")"
                case (.notify, .fired):
                    "notify \(a.to.map { [$0.roles?.joined(separator: ","), $0.accounts?.joined(separator: ","), $0.gridWorker == true ? "grid worker" : nil].compactMap { $0 }.joined(separator: "; ") } ?? "")"
                default: nil
                }
            }
        }
        // Care tags and other devices are judged on the community as it is now, as the server would.
        func outcome(_ f: Firing) async throws -> [String] {
            guard f.change == .fired, let unmet = try await store.unmetCondition(of: rule, subject: f.device) else {
                return describe(f)
            }
            engine.suppress(f)
            return ["not carried out: \(unmet)"]
        }
        for (i, sample) in input.samples.enumerated() {
            let key = sample.productKey + "/" + sample.deviceName
            let device: WatchedDevice
            if let known = devices[key] {
                device = known
            } else {
                guard let d = try await store.device(productKey: sample.productKey, deviceName: sample.deviceName),
                    d.communityId == community.id
                else {
                    throw Problem.invalid([FieldIssue("samples[\(i)].deviceName", "is not a device of this community")])
                }
                device = WatchedDevice(d)
                devices[key] = device
                engine.watch(device, now: start)
            }
            let observation: Observation =
                sample.properties.map { .properties($0) } ?? sample.event.map { .event($0) }
                ?? .status(sample.status ?? "online")
            for f in engine.observe(observation, from: device, now: start + Millis(i)) {
                steps.append(
                    .init(
                        sample: i, afterSeconds: nil, triggerIndex: f.triggerIndex,
                        change: f.change == .fired ? "fired" : "ended", detail: f.detail,
                        device: key, actions: try await outcome(f)))
            }
        }
        if let t = input.thenSeconds {
            for f in engine.expire(now: start + Millis(input.samples.count) + Millis(t) * 1000) {
                steps.append(
                    .init(
                        sample: nil, afterSeconds: t, triggerIndex: f.triggerIndex, change: "fired", detail: f.detail,
                        device: f.device.productKey + "/" + f.device.deviceName, actions: try await outcome(f)))
            }
        }
        return steps
    }

    // MARK: alarms

    struct AlarmView: Encodable {
        var alarm: Alarm
        var status: Alarm.Status
        var comments: [AlarmComment]?

        func encode(to encoder: any Encoder) throws {
            try alarm.encode(to: encoder)
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(status, forKey: .status)
            try c.encodeIfPresent(comments, forKey: .comments)
        }
        enum Keys: String, CodingKey { case status, comments }
    }

    @Sendable func listAlarms(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .viewAlarms)
        var q = QueryReader(request)
        var filter = AlarmFilter()
        let statuses = ["active", "cleared", "unacknowledged"] + Alarm.Status.allCases.map(\.rawValue)
        if let status = q.string("status") {
            if statuses.contains(status) {
                filter.status = status
            } else {
                q.issues.append(FieldIssue("status", "must be one of \(statuses.joined(separator: ", "))"))
            }
        }
        filter.severity = q.oneOf("severity", AlarmSeverity.self)
        filter.type = q.string("type", max: 64)
        filter.sourceId = q.string("sourceId")
        let page = q.page()
        try q.check()
        let found = try await store.alarms(communityId: community.id, filter: filter, page: page, scope: scope)
        return try JSON.response(
            Page(
                items: found.items.map { AlarmView(alarm: $0, status: $0.status) }, total: found.total,
                limit: found.limit, offset: found.offset))
    }

    func visibleAlarm(_ context: AppContext, _ capability: Capability) async throws -> Alarm {
        guard
            let alarm = try await store.alarm(
                id: try context.parameters.require("id"), scope: try context.scope(capability))
        else { throw Problem.notFound("alarm") }
        return alarm
    }

    @Sendable func getAlarm(_ request: Request, context: AppContext) async throws -> Response {
        let alarm = try await visibleAlarm(context, .viewAlarms)
        return try JSON.response(
            AlarmView(alarm: alarm, status: alarm.status, comments: try await store.alarmComments(alarm)))
    }

    @Sendable func acknowledgeAlarm(_ request: Request, context: AppContext) async throws -> Response {
        let alarm = try await store.changeAlarm(
            try await visibleAlarm(context, .handleAlarms), .acknowledge, actor: context.principal)
        return try JSON.response(AlarmView(alarm: alarm, status: alarm.status))
    }

    @Sendable func clearAlarm(_ request: Request, context: AppContext) async throws -> Response {
        let alarm = try await store.changeAlarm(
            try await visibleAlarm(context, .handleAlarms), .clear, actor: context.principal)
        return try JSON.response(AlarmView(alarm: alarm, status: alarm.status))
    }

    struct CommentInput: Decodable { var text: String }

    @Sendable func commentAlarm(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let alarm = try await visibleAlarm(context, .handleAlarms)
        let input = try await request.decodeJSON(CommentInput.self, context: context)
        var v = Validator()
        let text = v.text(input.text, "text", max: 2_000)
        try v.check()
        return try JSON.response(
            try await store.commentAlarm(alarm, text: text!, actor: context.principal), status: .created)
    }
}

/// Ready rules for the common cases, each fitting a product of the built-in library: pick one, put
/// in the product key, adjust, save.
enum RuleTemplates {
    struct Template: Encodable {
        var key: String
        var name: String
        /// The library product the template fits; its `productKey` placeholder is `{productKey}`.
        /// Empty for a template about every device (a household's absence).
        var library: String
        var triggers: [Trigger]
        var conditions: [Condition]
        var actions: [Action]
    }

    static let pk = "{productKey}"

    static let all: [Template] = [
        Template(
            key: "smoke", name: "烟雾报警 Smoke alarm", library: "smoke_detector",
            triggers: [Trigger(type: .event, productKey: pk, event: "SmokeAlarm")], conditions: [],
            actions: [Action(type: .alarm, alarmType: "smoke", severity: .critical, message: "烟雾报警 Smoke detected")]),
        Template(
            key: "sos", name: "紧急呼叫 SOS pressed", library: "sos_button",
            triggers: [Trigger(type: .event, productKey: pk, event: "SOS")], conditions: [],
            actions: [Action(type: .alarm, alarmType: "sos", severity: .critical, message: "紧急呼叫 SOS pressed")]),
        Template(
            key: "elderly-absence", name: "独居老人12小时未开门 Living alone: door not opened for 12 hours",
            library: "door_contact",
            triggers: [
                Trigger(
                    type: .absence, productKey: pk, property: "ContactState", op: .equal, value: 1,
                    forSeconds: 12 * 3600)
            ],
            conditions: [.careTag([.elderlyAlone])],
            actions: [
                Action(
                    type: .alarm, alarmType: "absence", severity: .major,
                    message: "12小时未开门 Door not opened for 12 hours")
            ]),
        Template(
            key: "home-silent", name: "独居老人家中12小时无动静 Living alone: no sign of life at home for 12 hours", library: "",
            triggers: [Trigger(type: .absence, productKey: "", forSeconds: 12 * 3600, per: .household)],
            conditions: [.careTag([.elderlyAlone])],
            actions: [
                Action(
                    type: .alarm, alarmType: "home-silent", severity: .major,
                    message: "家中12小时无动静 No sign of life at home for 12 hours"),
                {
                    var a = Action(type: .notify)
                    a.to = Recipients(gridWorker: true)
                    a.message = "请上门查看 Please visit"
                    return a
                }(),
            ]),
        Template(
            key: "water-leak", name: "漏水 Water leak", library: "water_leak",
            triggers: [Trigger(type: .property, productKey: pk, property: "WaterLeakState", op: .equal, value: 1)],
            conditions: [],
            actions: [Action(type: .alarm, alarmType: "water-leak", severity: .major, message: "漏水 Water leak")]),
        Template(
            key: "hot", name: "温度持续过高 Temperature above 60 °C for 2 minutes", library: "environment_sensor",
            triggers: [
                Trigger(
                    type: .property, productKey: pk, property: "CurrentTemperature", op: .greater, value: 60,
                    forSeconds: 120)
            ], conditions: [],
            actions: [
                Action(
                    type: .alarm, alarmType: "high-temperature", severity: .major, message: "温度过高 Temperature too high")
            ]),
        Template(
            key: "hydrant-pressure", name: "消火栓水压过低 Hydrant pressure low", library: "hydrant_pressure",
            triggers: [
                Trigger(
                    type: .property, productKey: pk, property: "WaterPressure", op: .less, value: 0.1, forSeconds: 300)
            ], conditions: [],
            actions: [
                Action(
                    type: .alarm, alarmType: "low-pressure", severity: .major, message: "水压过低 Pressure below 0.1 MPa")
            ]),
        Template(
            key: "bin-full", name: "垃圾桶满溢 Bin full", library: "smart_bin",
            triggers: [Trigger(type: .property, productKey: pk, property: "FillLevel", op: .greaterOrEqual, value: 90)],
            conditions: [],
            actions: [Action(type: .alarm, alarmType: "bin-full", severity: .minor, message: "垃圾桶将满 Bin almost full")]),
        Template(
            key: "offline", name: "设备离线10分钟 Device offline for 10 minutes", library: "access_controller",
            triggers: [Trigger(type: .status, productKey: pk, status: "offline", forSeconds: 600)], conditions: [],
            actions: [Action(type: .alarm, alarmType: "offline", severity: .warning, message: "设备离线 Device offline")]),
    ]
}
