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

/// Console pages for rules: the list, templates to start from, the rule form (`RuleForm`) and,
/// under Advanced, the JSON editor, both checked exactly as the API checks them; enable/disable,
/// delete, and a trial against sample messages that starts from a real device of the community.
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

    @Sendable func ruleList(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .viewAlarms)
        let caller = try context.requireCaller()
        let rules = try await store.rules(communityId: community.id)
        let world = try await ruleWorld(community)
        let rows = rules.map { r in
            RuleRow(
                id: r.id, name: r.name, enabled: r.enabled,
                triggers: r.definition.triggers.map { summary($0, world: world, context) }.joined(separator: " · "),
                actions: r.definition.actions.map { summary($0, world: world, context) }.joined(
                    separator: text("ruleform.and", context)))
        }
        let products = world.products
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
        var name = ""
        var definition = RuleDefinition(triggers: [], actions: [])
        // `pick` is "template|productKey", one choice in the list's form.
        let pick =
            request.uri.queryParameters.get("pick").map { $0.split(separator: "|", maxSplits: 1).map(String.init) }
            ?? []
        if let key = pick.first, let template = RuleTemplates.all.first(where: { $0.key == key }) {
            let productKey = pick.count > 1 ? pick[1] : RuleTemplates.pk
            var triggers = template.triggers
            for i in triggers.indices where triggers[i].watchesDevices && !triggers[i].perGroup {
                triggers[i].productKey = productKey
            }
            name = text("ruleTemplate." + template.key, context)
            // The messages in the page's language: they become the alarm's and the notice's words.
            let actions = template.actions.map { a in
                var a = a
                if a.message != nil {
                    a.message = text(
                        "ruleform.templateMessage." + template.key + (a.type == .alarm ? "" : "." + a.type.rawValue),
                        context)
                }
                return a
            }
            definition = RuleDefinition(triggers: triggers, conditions: template.conditions, actions: actions)
        }
        let json = try Self.editorText(name: name, enabled: true, definition)
        // A blank form starts with a property report and an alarm, the commonest rule.
        let values =
            definition.triggers.isEmpty
            ? ["enabled": "on", "kind": "property", "alarm": "on", "severity": "major"]
            : RuleForm.values(name: name, enabled: true, definition)
        return try await ruleEditor(
            context, community: community, rule: nil, text: json, problems: [], status: .ok, form: values)
    }

    struct FieldFault {
        var field: String
        var reason: String
    }
    enum RuleCheck { case checked(String, Bool, RuleDefinition), faults([FieldFault]) }

    func ruleEditor(
        _ context: AppContext, community: Community, rule: Rule?, text: String, problems: [FieldFault],
        status: HTTPResponse.Status, form: [String: String]?, formErrors: [String: String] = [:],
        trialProblems: [FieldFault] = [], trial: [API.RuleTestOutcome.Step]? = nil, trialText: String? = nil,
        thenSeconds: Int? = nil
    ) async throws -> Response {
        struct DeliveryRow {
            var at: String
            var url: String
            var status: String
            var attempts: Int
            var last: String
        }
        struct TrialRow {
            var when: String
            var device: String
            var outcome: String
            var detail: String?
            var actions: [String]
            var unmet: String?
        }
        let deliveries =
            try await rule.asyncMap { try await store.deliveries(ruleId: $0.id, page: PageRequest(limit: 10)).items }
            ?? []
        let world = try await ruleWorld(community)
        let sample = rule.map { trialSample($0, world: world) }
        let rows = (trial ?? []).map { step -> TrialRow in
            let trigger =
                rule?.definition.triggers.indices.contains(step.triggerIndex) == true
                ? rule?.definition.triggers[step.triggerIndex] : nil
            let fired = step.change == "fired"
            let unmet = step.actions.first { $0.hasPrefix("not carried out: ") }
            var actions: [String] = []
            if unmet == nil {
                actions = (rule?.definition.actions ?? []).compactMap { a in
                    if fired { return summary(a, world: world, context) }
                    if a.type == .alarm, trigger?.hasEnd == true {
                        return self.text("ruleform.do.clear", context, ["type": a.alarmType ?? ""])
                    }
                    return a.type == .webhook ? summary(a, world: world, context) : nil
                }
            }
            let parts = step.device.split(separator: "/", maxSplits: 1).map(String.init)
            return TrialRow(
                when: step.sample.map { self.text("ruleform.trial.sample", context, ["n": String($0 + 1)]) }
                    ?? self.text("ruleform.trial.after", context, ["time": duration(step.afterSeconds ?? 0, context)]),
                device: world.name(parts.first ?? "", parts.count > 1 ? parts[1] : nil),
                outcome: self.text(fired ? "ruleform.trial.fired" : "ruleform.trial.ended", context)
                    + (trigger.map { self.text("common.colon", context) + summary($0, world: world, context) } ?? ""),
                detail: trigger?.type == .property && fired ? step.detail : nil, actions: actions,
                unmet: unmet.map { String($0.dropFirst("not carried out: ".count)) })
        }
        var object: [String: Any] = [
            "frame": Frame(
                title: rule?.name ?? self.text("linkage.newRule", context), context: context, community: community),
            "rule": rule as Any, "isNew": rule == nil,
            "enabled": rule?.enabled ?? true, "text": text, "problems": problems, "hasProblems": !problems.isEmpty,
            "deliveries": deliveries.map {
                DeliveryRow(
                    at: Self.time($0.createdAt), url: $0.url,
                    status: label("ruleform.delivery", $0.status.rawValue, context),
                    attempts: $0.attempts, last: $0.reason ?? "")
            },
            "hasDeliveries": !deliveries.isEmpty, "trial": rows, "hasTrial": trial != nil,
            "trialEmpty": trial?.isEmpty == true, "sample": trialText ?? sample?.text ?? "[]",
            "thenSeconds": thenSeconds ?? sample?.thenSeconds ?? 0,
            "trialProblems": trialProblems, "hasTrialProblems": !trialProblems.isEmpty,
            "noSampleDevice": rule != nil && sample?.device != true,
            "formShown": form != nil, "advancedOpen": form == nil || !problems.isEmpty,
            "formAction": rule.map { "/console/rules/\($0.id)" } ?? "/console/c/\(community.id)/rules",
        ]
        if let form {
            object.merge(ruleFormObject(form, errors: formErrors, world: world, context)) { a, _ in a }
        }
        return try pages.render("rule", object, status: status)
    }

    /// Why the trial refused, in the page's language, by the field at fault.
    static func trialFault(_ field: String) -> String {
        field.hasPrefix("samples")
            ? "ruleform.trialFault.samples"
            : field == "thenSeconds" ? "ruleform.trialFault.thenSeconds" : "ruleform.trialFault.rule"
    }

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
        return try await checkedRule(input, communityId: communityId, previous: previous)
    }

    func checkedRule(_ input: API.RuleInput, communityId: ID, previous: Rule?) async throws -> RuleCheck {
        do {
            let (name, enabled, definition) = try await API(services: services).checkRule(
                input, communityId: communityId, replacing: previous)
            return .checked(name, enabled, definition)
        } catch let problem as Problem {
            return .faults(problem.errors.map { FieldFault(field: $0.field, reason: $0.reason) })
        }
    }

    enum Submitted {
        case rule(String, Bool, RuleDefinition)
        case page(Response)
    }

    /// What the editor sent, from the form or (under Advanced) as JSON, checked as the API checks
    /// it; else the page again, 422, with each fault beside its field.
    func submittedRule(_ request: Request, _ context: AppContext, community: Community, previous: Rule?)
        async throws -> Submitted
    {
        let form = try await formInput(request, context)
        if let text = form.values["definition"] {
            switch try await checkedRule(text, communityId: community.id, previous: previous) {
            case let .faults(problems):
                return .page(
                    try await ruleEditor(
                        context, community: community, rule: previous, text: text, problems: problems,
                        status: .unprocessableContent,
                        form: previous.flatMap {
                            RuleForm.values(name: $0.name, enabled: $0.enabled, $0.definition)
                        }))
            case let .checked(name, enabled, definition): return .rule(name, enabled, definition)
            }
        }
        let (input, found) = RuleForm.input(form)
        var errors = found
        if let input {
            switch try await checkedRule(input, communityId: community.id, previous: previous) {
            case let .checked(name, enabled, definition): return .rule(name, enabled, definition)
            case let .faults(problems):
                for p in problems {
                    let field = RuleForm.field(of: p.field, conditions: input.conditions ?? [], actions: input.actions)
                    if errors[field] == nil { errors[field] = "ruleform.error." + field }
                }
            }
        }
        // The JSON under Advanced shows what the form stood for, as far as it could be read.
        let text: String
        if let input {
            text = try Self.editorText(
                name: input.name, enabled: input.enabled ?? true,
                RuleDefinition(triggers: input.triggers, conditions: input.conditions ?? [], actions: input.actions))
        } else if let previous {
            text = try Self.editorText(previous)
        } else {
            text = try Self.editorText(name: "", enabled: true, RuleDefinition(triggers: [], actions: []))
        }
        return .page(
            try await ruleEditor(
                context, community: community, rule: previous, text: text, problems: [],
                status: .unprocessableContent, form: form.values, formErrors: errors))
    }

    @Sendable func saveNewRule(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .manageRules)
        try API(services: services).requireCovers(scope, community.id, .manageRules)
        switch try await submittedRule(request, context, community: community, previous: nil) {
        case let .page(page): return page
        case let .rule(name, enabled, definition):
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

    static func editorText(name: String, enabled: Bool, _ definition: RuleDefinition) throws -> String {
        struct Draft: Encodable {
            var name: String
            var enabled: Bool
            var triggers: [Trigger]
            var conditions: [Condition]
            var actions: [Action]
        }
        return String(
            decoding: try prettyJSON.encode(
                Draft(
                    name: name, enabled: enabled, triggers: definition.triggers, conditions: definition.conditions,
                    actions: definition.actions)), as: UTF8.self)
    }

    static func editorText(_ rule: Rule) throws -> String {
        let shown = API.RuleView(rule)
        return try editorText(
            name: shown.name, enabled: shown.enabled,
            RuleDefinition(triggers: shown.triggers, conditions: shown.conditions, actions: shown.actions))
    }

    func ruleForm(_ rule: Rule) -> [String: String]? {
        RuleForm.values(name: rule.name, enabled: rule.enabled, rule.definition)
    }

    @Sendable func rulePage(_ request: Request, context: AppContext) async throws -> Response {
        let (rule, community) = try await editableRule(context, .viewAlarms)
        return try await ruleEditor(
            context, community: community, rule: rule, text: try Self.editorText(rule), problems: [], status: .ok,
            form: ruleForm(rule))
    }

    @Sendable func saveRule(_ request: Request, context: AppContext) async throws -> Response {
        var (rule, community) = try await editableRule(context, .manageRules)
        switch try await submittedRule(request, context, community: community, previous: rule) {
        case let .page(page): return page
        case let .rule(name, enabled, definition):
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
                problems: [], status: .unprocessableContent, form: ruleForm(rule),
                trialProblems: [FieldFault(field: "samples", reason: self.text("ruleform.error.samples", context))],
                trialText: samplesText, thenSeconds: then)
        }
        do {
            var input = try JSONValue.decode(API.RuleInput.self, from: Data(text.utf8))
            // The stored secret shows as "********"; the trial sends nothing and needs none.
            for i in input.actions.indices where input.actions[i].type == .webhook { input.actions[i].secret = nil }
            let steps = try await API(services: services).trial(
                API.RuleTest(rule: input, samples: samples, thenSeconds: then), community: community)
            return try await ruleEditor(
                context, community: community, rule: rule, text: text, problems: [], status: .ok, form: ruleForm(rule),
                trial: steps, trialText: samplesText, thenSeconds: then)
        } catch let problem as Problem {
            return try await ruleEditor(
                context, community: community, rule: rule, text: text,
                problems: [], status: .unprocessableContent, form: ruleForm(rule),
                trialProblems: problem.errors.map {
                    FieldFault(field: $0.field, reason: self.text(Self.trialFault($0.field), context))
                }, trialText: samplesText, thenSeconds: then)
        }
    }
}

/// Numbers as people write them in rules: 60, not 60.0.
enum RuleEngineText {
    static func number(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v) }
}
