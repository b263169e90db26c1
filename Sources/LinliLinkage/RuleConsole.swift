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

/// Console pages for rules: the list, templates to start from, a JSON editor checked exactly as the
/// API checks it, enable/disable, delete, and a trial against sample messages.
extension WebConsole {
    func registerRules(_ router: Router<AppContext>) {
        router.get("/console/c/:cid/rules", use: ruleList)
        router.get("/console/c/:cid/rules/new", use: newRule)
        router.post("/console/c/:cid/rules", use: saveNewRule)
        router.get("/console/rules/:id", use: rulePage)
        router.post("/console/rules/:id", use: saveRule)
        router.post("/console/rules/:id/enabled", use: toggleRule)
        router.post("/console/rules/:id/delete", use: removeRule)
        router.post("/console/rules/:id/test", use: trialRule)
    }

    static let prettyJSON: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    struct RuleRow {
        var id: ID
        var name: String
        var enabled: Bool
        var triggers: String
        var actions: String
    }
    struct TemplateOption {
        var key: String
        var name: String
        var products: [SelectOption]
    }

    static func summary(_ t: Trigger) -> String {
        let on = t.productKey + (t.deviceName.map { "/" + $0 } ?? "")
        let lasting = t.forSeconds.map { " for \($0) s" } ?? ""
        switch t.type {
        case .property:
            return
                "\(on): \(t.property ?? "") \(t.op?.rawValue ?? "") \(t.value.map { RuleEngineText.number($0) } ?? "")\(lasting)"
        case .event: return "\(on): event \(t.event ?? "")"
        case .status: return "\(on): \(t.status ?? "")\(lasting)"
        case .absence:
            return
                "\(on): nothing\(t.property.map { " with \($0) \(t.op?.rawValue ?? "") \(t.value.map { RuleEngineText.number($0) } ?? "")" } ?? "")\(lasting)"
        case .schedule: return "at \(t.cron ?? "")"
        case .domain: return "on \(t.eventType ?? "")"
        }
    }

    @Sendable func ruleList(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .viewAlarms)
        let caller = try context.requireCaller()
        let rules = try await store.rules(communityId: community.id)
        let rows = rules.map { r in
            RuleRow(
                id: r.id, name: r.name, enabled: r.enabled,
                triggers: r.definition.triggers.map(Self.summary).joined(separator: " · "),
                actions: r.definition.actions.map {
                    $0.type == .alarm
                        ? "alarm \($0.alarmType ?? "") (\($0.severity?.rawValue ?? ""))" : $0.type.rawValue
                }.joined(separator: ", "))
        }
        let products = try await store.products(communityId: community.id)
        let templates = RuleTemplates.all.map { t in
            TemplateOption(
                key: t.key, name: text("ruleTemplate." + t.key, context),
                products: t.library.isEmpty
                    ? [SelectOption(value: "", label: text("linkage.anyDevice", context), selected: false)]
                    : products.filter { $0.libraryKey == t.library }.map {
                        SelectOption(value: $0.productKey, label: $0.name, selected: false)
                    })
        }.filter { !$0.products.isEmpty }
        return try pages.render(
            "rules",
            [
                "frame": Frame(title: text("nav.rules", context), context: context, community: community),
                "rules": rows,
                "hasRules": !rows.isEmpty,
                "templates": templates, "hasTemplates": !templates.isEmpty,
                "canManage": caller.scope(for: .manageRules).coversCommunity(community.id),
            ] as [String: Any])
    }

    /// The editor, empty or filled from a template with one of the community's products.
    @Sendable func newRule(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .manageRules)
        try API(services: services).requireCovers(scope, community.id, .manageRules)
        var text = "{\n  \"name\": \"\",\n  \"triggers\": [],\n  \"actions\": []\n}"
        // `pick` is "template|productKey", one choice in the list's form.
        let pick =
            request.uri.queryParameters.get("pick").map { $0.split(separator: "|", maxSplits: 1).map(String.init) }
            ?? []
        if let key = pick.first, let template = RuleTemplates.all.first(where: { $0.key == key }) {
            let productKey = pick.count > 1 ? pick[1] : RuleTemplates.pk
            var triggers = template.triggers
            for i in triggers.indices { triggers[i].productKey = productKey }
            struct Draft: Encodable {
                var name: String
                var enabled = true
                var triggers: [Trigger]
                var conditions: [Condition]
                var actions: [Action]
            }
            text = String(
                decoding: try Self.prettyJSON.encode(
                    Draft(
                        name: template.name, triggers: triggers, conditions: template.conditions,
                        actions: template.actions)), as: UTF8.self)
        }
        return try await ruleEditor(context, community: community, rule: nil, text: text, problems: [], status: .ok)
    }

    struct FieldFault {
        var field: String
        var reason: String
    }
    enum RuleCheck { case checked(String, Bool, RuleDefinition), faults([FieldFault]) }

    func ruleEditor(
        _ context: AppContext, community: Community, rule: Rule?, text: String, problems: [FieldFault],
        status: HTTPResponse.Status,
        trial: [API.RuleTestOutcome.Step]? = nil, trialText: String? = nil
    ) async throws -> Response {
        struct DeliveryRow {
            var at: String
            var url: String
            var status: String
            var attempts: Int
            var last: String
        }
        let deliveries =
            try await rule.asyncMap { try await store.deliveries(ruleId: $0.id, page: PageRequest(limit: 10)).items }
            ?? []
        let sample =
            trialText ?? rule.flatMap { r in
                r.definition.triggers.first.map { t in
                    "[{\"productKey\": \"\(t.productKey)\", \"deviceName\": \"\(t.deviceName ?? "DEVICE")\", "
                        + (t.type == .event
                            ? "\"event\": \"\(t.event ?? "")\"}]"
                            : t.type == .status
                                ? "\"status\": \"\(t.status ?? "offline")\"}]"
                                : "\"properties\": {\"\(t.property ?? "Property")\": \(t.value.map { RuleEngineText.number($0) } ?? "0")}}]")
                }
            } ?? "[]"
        return try pages.render(
            "rule",
            [
                "frame": Frame(
                    title: rule?.name ?? self.text("linkage.newRule", context), context: context, community: community),
                "rule": rule as Any, "isNew": rule == nil,
                "enabled": rule?.enabled ?? true, "text": text, "problems": problems, "hasProblems": !problems.isEmpty,
                "deliveries": deliveries.map {
                    DeliveryRow(
                        at: Self.time($0.createdAt), url: $0.url, status: Self.deliveryStatus[$0.status] ?? "",
                        attempts: $0.attempts, last: $0.reason ?? "")
                },
                "hasDeliveries": !deliveries.isEmpty, "trial": trial ?? [], "hasTrial": trial != nil,
                "trialEmpty": trial?.isEmpty == true, "sample": sample,
            ] as [String: Any], status: status)
    }

    static let deliveryStatus: [WebhookDelivery.Status: String] = [
        .pending: "待发送 Waiting", .delivered: "已送达 Delivered", .failed: "失败 Failed", .refused: "已拒绝 Refused",
        .cancelled: "已取消 Cancelled",
    ]

    /// Reads the editor's JSON and checks it as the API does; the problems, each with its field.
    func checkedRule(_ text: String, communityId: ID, previous: Rule?) async throws -> RuleCheck {
        let input: API.RuleInput
        do {
            input = try JSONValue.decode(API.RuleInput.self, from: Data(text.utf8))
        } catch let error as DecodingError {
            return .faults(Problem.decoding(error).errors.map { FieldFault(field: $0.field, reason: $0.reason) })
        } catch {
            return .faults([FieldFault(field: "body", reason: "is not valid JSON")])
        }
        do {
            let (name, enabled, definition) = try await API(services: services).checkRule(
                input, communityId: communityId, replacing: previous)
            return .checked(name, enabled, definition)
        } catch let problem as Problem {
            return .faults(problem.errors.map { FieldFault(field: $0.field, reason: $0.reason) })
        }
    }

    @Sendable func saveNewRule(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .manageRules)
        try API(services: services).requireCovers(scope, community.id, .manageRules)
        let text = try await request.formFields(context: context)["definition"] ?? ""
        switch try await checkedRule(text, communityId: community.id, previous: nil) {
        case let .faults(problems):
            return try await ruleEditor(
                context, community: community, rule: nil, text: text, problems: problems, status: .unprocessableContent)
        case let .checked(name, enabled, definition):
            let rule = Rule(communityId: community.id, name: name, enabled: enabled, definition: definition)
            try await store.createRule(rule, actor: context.principal)
            services.rules?.reload(rule.id)
            return .redirect(to: "/console/rules/\(rule.id)")
        }
    }

    func editableRule(_ context: AppContext, _ capability: Capability) async throws -> (Rule, Community) {
        let caller = try context.requireCaller()
        let rule = try await API(services: services).visibleRule(context, capability)
        return (rule, try await store.community(rule.communityId, scope: .everything, memberships: caller.communityIds))
    }

    static func editorText(_ rule: Rule) throws -> String {
        struct Draft: Encodable {
            var name: String
            var enabled: Bool
            var triggers: [Trigger]
            var conditions: [Condition]
            var actions: [Action]
        }
        let shown = API.RuleView(rule)
        return String(
            decoding: try prettyJSON.encode(
                Draft(
                    name: shown.name, enabled: shown.enabled, triggers: shown.triggers, conditions: shown.conditions,
                    actions: shown.actions)), as: UTF8.self)
    }

    @Sendable func rulePage(_ request: Request, context: AppContext) async throws -> Response {
        let (rule, community) = try await editableRule(context, .viewAlarms)
        return try await ruleEditor(
            context, community: community, rule: rule, text: try Self.editorText(rule), problems: [], status: .ok)
    }

    @Sendable func saveRule(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        var (rule, community) = try await editableRule(context, .manageRules)
        let text = try await request.formFields(context: context)["definition"] ?? ""
        switch try await checkedRule(text, communityId: rule.communityId, previous: rule) {
        case let .faults(problems):
            return try await ruleEditor(
                context, community: community, rule: rule, text: text, problems: problems, status: .unprocessableContent
            )
        case let .checked(name, enabled, definition):
            rule.name = name
            rule.enabled = enabled
            rule.definition = definition
            try await store.updateRule(rule, actor: context.principal)
            services.rules?.reload(rule.id)
            return .redirect(to: "/console/rules/\(rule.id)")
        }
    }

    @Sendable func toggleRule(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        var (rule, _) = try await editableRule(context, .manageRules)
        rule.enabled = try await request.formFields(context: context)["enabled"] == "true"
        try await store.updateRule(rule, actor: context.principal)
        services.rules?.reload(rule.id)
        return .redirect(to: "/console/rules/\(rule.id)")
    }

    @Sendable func removeRule(_ request: Request, context: AppContext) async throws -> Response {
        let (rule, _) = try await editableRule(context, .manageRules)
        try await store.deleteRule(rule, actor: context.principal)
        services.rules?.reload(rule.id)
        return .redirect(to: "/console/c/\(rule.communityId)/rules")
    }

    /// Runs the saved rule against the samples typed in, through the same trial as the API.
    @Sendable func trialRule(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (rule, community) = try await editableRule(context, .manageRules)
        let fields = try await request.formFields(context: context)
        let samplesText = fields["samples"] ?? "[]"
        let then = Int(fields["thenSeconds"] ?? "") ?? 0
        let text = try Self.editorText(rule)
        guard let samples = try? JSONDecoder().decode([API.RuleTest.Sample].self, from: Data(samplesText.utf8)) else {
            return try await ruleEditor(
                context, community: community, rule: rule, text: text,
                problems: [FieldFault(field: "samples", reason: "must be a JSON list of samples")],
                status: .unprocessableContent, trialText: samplesText)
        }
        do {
            let input = try JSONValue.decode(API.RuleInput.self, from: Data(text.utf8))
            let steps = try await API(services: services).trial(
                API.RuleTest(rule: input, samples: samples, thenSeconds: then), community: community)
            return try await ruleEditor(
                context, community: community, rule: rule, text: text, problems: [], status: .ok, trial: steps,
                trialText: samplesText)
        } catch let problem as Problem {
            return try await ruleEditor(
                context, community: community, rule: rule, text: text,
                problems: problem.errors.map { FieldFault(field: $0.field, reason: $0.reason) },
                status: .unprocessableContent, trialText: samplesText)
        }
    }
}

/// Numbers as people write them in rules: 60, not 60.0.
enum RuleEngineText {
    static func number(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v) }
}
