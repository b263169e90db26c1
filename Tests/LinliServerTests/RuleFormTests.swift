import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliHTTP
@testable import LinliLinkage
@testable import LinliStorage
@testable import LinliWorkOrders

/// The rule form of the console: it writes the rule JSON the API takes, refuses a field at fault
/// beside it, shows a stored rule again for editing, and the trial's sample comes from a real
/// device of the community, so that trying it as it is works.
@Suite("The rule form and its trial")
struct RuleFormTests {
    typealias Session = (cookie: String, csrf: String, location: String)

    static func post(
        _ client: any TestClientProtocol, _ uri: String, _ session: Session, _ form: String,
        accept: String = "zh-CN"
    )
        async throws -> (status: HTTPResponse.Status, location: String, text: String)
    {
        try await WorkFromAlarmsTests.post(client, uri, session, form, accept: accept)
    }

    static func form(_ fields: [(String, String)]) -> String {
        fields.map { "\($0.0)=\(WorkFromAlarmsTests.encoded($0.1))" }.joined(separator: "&")
    }

    /// The trial's prefilled samples and wait, as the page holds them.
    static func trialFields(_ html: String) -> (samples: String, wait: String) {
        let samples =
            html.components(separatedBy: "<textarea name=\"samples\"").dropFirst().first?
            .components(separatedBy: ">").dropFirst().joined(separator: ">").components(separatedBy: "</textarea>")
            .first ?? ""
        let wait =
            html.components(separatedBy: "id=\"thenSeconds\" type=\"number\" min=\"0\" value=\"").dropFirst().first?
            .components(separatedBy: "\"").first ?? ""
        return (
            samples.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&amp;", with: "&"), wait
        )
    }

    /// A sensor and a smoke detector with one device each, made through the API.
    static func devices(_ client: any TestClientProtocol, _ fixture: Fixture) async throws -> (
        env: String, smoke: String
    ) {
        let c = fixture.community.id
        let api = APIUser(client, fixture, as: "manager")
        var keys: [String] = []
        for (library, name) in [("environment_sensor", "env-1"), ("smoke_detector", "smoke-1")] {
            let pk = try #require(
                try await api.call("/api/v1/communities/\(c)/products", .post, ["library": library], expect: .created)[
                    "productKey"] as? String)
            try await api.call(
                "/api/v1/communities/\(c)/devices", .post, ["productKey": pk, "deviceName": name], expect: .created)
            keys.append(pk)
        }
        return (keys[0], keys[1])
    }

    static func hotFields(_ env: String, _ smoke: String, value: String = "60") -> [(String, String)] {
        [
            ("name", "机房过热"), ("enabled", "on"), ("source", env), ("kind", "property"),
            ("property", "CurrentTemperature"), ("op", ">"), ("value", value), ("minutes", "2"),
            ("careTag.elderly_alone", "on"),
            ("alarm", "on"), ("alarmType", "overheat"), ("severity", "major"), ("alarmMessage", "温度过高"),
            ("escalate", "on"), ("escalateMinutes", "10"), ("escalateTo.community_admin", "on"),
            ("repeatMinutes", "30"),
            ("workOrder", "on"), ("category", "repair"), ("workOrderTitle", "机房降温"),
            ("notify", "on"), ("notifyTo.property_staff", "on"), ("notifyTo.gridWorker", "on"),
            ("notifyAccounts", "staff"), ("notifyMessage", "请查看机房"),
            ("command", "on"), ("commandDevice", "\(smoke)/smoke-1"), ("commandService", "Mute"),
        ]
    }

    /// The definition the form above stands for, as the API would take it in JSON.
    static func hotDefinition(_ env: String, _ smoke: String, value: Double = 60) -> RuleDefinition {
        var alarm = Action(type: .alarm, alarmType: "overheat", severity: .major, message: "温度过高")
        alarm.escalate = Escalation(
            tiers: [.init(afterSeconds: 600, to: Recipients(roles: ["community_admin"]))], repeatSeconds: 1800)
        var order = Action(type: .workOrder, message: "机房降温")
        order.category = .repair
        var notify = Action(type: .notify, message: "请查看机房")
        notify.to = Recipients(roles: ["property_staff"], accounts: ["staff"], gridWorker: true)
        var command = Action(type: .device)
        command.productKey = smoke
        command.deviceName = "smoke-1"
        command.service = "Mute"
        command.params = .object([:])
        return RuleDefinition(
            triggers: [
                Trigger(
                    type: .property, productKey: env, property: "CurrentTemperature", op: .greater, value: value,
                    forSeconds: 120)
            ], conditions: [.careTag([.elderlyAlone])], actions: [alarm, order, notify, command])
    }

    @Test func theFormWritesTheRuleAndRefusesAFieldBesideIt() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let manager = try await WebTests.signIn(client, "manager")
            let (env, smoke) = try await Self.devices(client, fixture)

            // The blank form offers the community's products and their thing models' names.
            let blank = try await WorkFromAlarmsTests.page(client, "/console/c/\(c)/rules/new", manager.cookie)
            #expect(blank.status == .ok && blank.text.contains("id=\"rule-form\""))
            #expect(blank.text.contains("<option value=\"\(env)\">") && blank.text.contains("value=\"\(env)/env-1\""))
            #expect(
                blank.text.contains("data-product=\"\(env)\"") && blank.text.contains("value=\"CurrentTemperature\""))
            #expect(blank.text.contains("value=\"SmokeAlarm\"") && blank.text.contains("value=\"Mute\""))
            let named = blank.text.contains(">烟雾检测状态 (SmokeSensorState) · 0 正常, 1 检测到烟雾</option>")
            let snippet = blank.text.components(separatedBy: "value=\"SmokeSensorState\"").dropFirst().first?.prefix(80)
            #expect(named, "\(snippet ?? "")")
            #expect(blank.text.contains("id=\"definition\""), "the JSON stays, under Advanced")
            #expect(blank.text.contains("workOrder"), "the help names the workOrder action")
            #expect(!blank.text.contains("class=\"error field-error\""), "no error before anything is sent")

            // A property its product does not have: refused by the API's check, said beside the field.
            var fields = Self.hotFields(env, smoke)
            fields[4] = ("property", "SmokeSensorState")
            let wrong = try await Self.post(client, "/console/c/\(c)/rules", manager, Self.form(fields))
            #expect(wrong.status == .unprocessableContent)
            #expect(
                wrong.text.contains("id=\"error-property\"")
                    && wrong.text.contains("aria-describedby=\"error-property\""))
            #expect(wrong.text.contains("请选择所选产品物模型中的一个属性"))
            #expect(!wrong.text.contains("id=\"error-value\"") && !wrong.text.contains("id=\"error-name\""))
            #expect(wrong.text.contains("value=\"机房降温\""), "what was typed is kept")
            // Not a number, and no action at all: the form's own checks, each beside its field.
            let empty = try await Self.post(
                client, "/console/c/\(c)/rules", manager,
                Self.form([
                    ("name", "x"), ("source", env), ("kind", "property"), ("property", "CurrentTemperature"),
                    ("op", ">"), ("value", "hot"),
                ]))
            #expect(empty.status == .unprocessableContent)
            #expect(empty.text.contains("id=\"error-value\"") && empty.text.contains("id=\"error-actions\""))
            #expect(!empty.text.contains("id=\"error-property\""))
            // A webhook without its secret.
            let hook = try await Self.post(
                client, "/console/c/\(c)/rules", manager,
                Self.form([
                    ("name", "x"), ("source", smoke), ("kind", "event"), ("event", "SmokeAlarm"),
                    ("webhook", "on"), ("webhookUrl", "https://93.184.216.34/hook"),
                ]))
            #expect(hook.status == .unprocessableContent && hook.text.contains("id=\"error-webhookSecret\""))
            #expect(!hook.text.contains("id=\"error-webhookUrl\""))
            // A time of day needs both ends, each a time.
            let night: [(String, String)] = [
                ("name", "夜间烟雾"), ("source", smoke), ("kind", "event"), ("event", "SmokeAlarm"), ("alarm", "on"),
                ("alarmType", "smoke"), ("severity", "critical"), ("weekday.6", "on"), ("weekday.7", "on"),
            ]
            let half = try await Self.post(
                client, "/console/c/\(c)/rules", manager, Self.form(night + [("timeFrom", "22:00")]))
            #expect(half.status == .unprocessableContent && half.text.contains("id=\"error-timeTo\""))
            #expect(!half.text.contains("id=\"error-timeFrom\""))
            let late = try await Self.post(
                client, "/console/c/\(c)/rules", manager,
                Self.form(night + [("timeFrom", "25:00"), ("timeTo", "06:00")]))
            #expect(late.status == .unprocessableContent && late.text.contains("id=\"error-timeFrom\""))
            #expect(!late.text.contains("id=\"error-timeTo\""))
            #expect(try await fixture.store.rules(communityId: c).isEmpty, "nothing refused was stored")
            let nightly = try await Self.post(
                client, "/console/c/\(c)/rules", manager,
                Self.form(night + [("timeFrom", "22:00"), ("timeTo", "06:00")]))
            #expect(nightly.status == .seeOther)
            let weekend = try #require(
                try await fixture.store.rule(id: String(nightly.location.dropFirst("/console/rules/".count))))
            #expect(
                weekend.definition.conditions == [Condition(type: .time, from: "22:00", to: "06:00", weekdays: [6, 7])])
            #expect(!weekend.enabled, "not ticked, not on")
            let nightPage = try await WorkFromAlarmsTests.page(client, nightly.location, manager.cookie)
            #expect(nightPage.text.contains("name=\"timeFrom\" type=\"time\" value=\"22:00\""))
            #expect(nightPage.text.contains("name=\"weekday.7\" checked"))
            try await fixture.store.deleteRule(weekend, actor: .system)

            // The whole form: the rule stored is the JSON it stands for.
            let made = try await Self.post(
                client, "/console/c/\(c)/rules", manager, Self.form(Self.hotFields(env, smoke)))
            #expect(made.status == .seeOther && made.location.hasPrefix("/console/rules/"))
            let id = String(made.location.dropFirst("/console/rules/".count))
            let rule = try #require(try await fixture.store.rule(id: id))
            #expect(rule.name == "机房过热" && rule.enabled)
            #expect(rule.definition == Self.hotDefinition(env, smoke))
            let json = try await APIUser(client, fixture, as: "manager").call("/api/v1/rules/\(id)")
            let trigger = try #require((json["triggers"] as? [[String: Any]])?.first)
            #expect(trigger["op"] as? String == ">" && trigger["forSeconds"] as? Int == 120)
            #expect(
                (json["actions"] as? [[String: Any]])?.map { $0["type"] as? String } == [
                    "alarm", "workOrder", "notify", "device",
                ])

            // Shown again for editing: what is stored is chosen; sent back changed, stored changed.
            let shown = try await WorkFromAlarmsTests.page(client, made.location, manager.cookie)
            #expect(shown.status == .ok && shown.text.contains("<option value=\"CurrentTemperature\" selected>"))
            #expect(shown.text.contains("id=\"in-value\" name=\"value\" value=\"60\""))
            #expect(shown.text.contains("<option value=\"\(smoke)/smoke-1\" selected>"))
            let values = try #require(RuleForm.values(name: rule.name, enabled: rule.enabled, rule.definition))
            #expect(
                Set(values.map { "\($0.key)=\($0.value)" }) == Set(Self.hotFields(env, smoke).map { "\($0.0)=\($0.1)" })
            )
            let edited = try await Self.post(
                client, made.location, manager, Self.form(Self.hotFields(env, smoke, value: "70")))
            #expect(edited.status == .seeOther && edited.location == made.location)
            #expect(try await fixture.store.rule(id: id)?.definition == Self.hotDefinition(env, smoke, value: 70))
            // Unticked, the rule is off and the work order is gone; the rest stays.
            let fewer = Self.hotFields(env, smoke, value: "70").filter { !["enabled", "workOrder"].contains($0.0) }
            #expect(try await Self.post(client, made.location, manager, Self.form(fewer)).status == .seeOther)
            let after = try #require(try await fixture.store.rule(id: id))
            #expect(!after.enabled && !after.definition.actions.contains { $0.type == .workOrder })
            #expect(after.definition.actions.count == 3)

            // A rule the form cannot show (a schedule) is edited as JSON.
            let scheduled = try await APIUser(client, fixture, as: "manager").call(
                "/api/v1/communities/\(c)/rules", .post,
                [
                    "name": "每晚", "triggers": [["type": "schedule", "cron": "0 22 * * *"]],
                    "actions": [["type": "notify", "to": ["roles": ["guard"]], "message": "巡逻"]],
                ], expect: .created)
            let plain = try await WorkFromAlarmsTests.page(
                client, "/console/rules/\(scheduled["id"] as? String ?? "")", manager.cookie)
            #expect(plain.text.contains("id=\"rule-form-unavailable\"") && !plain.text.contains("id=\"rule-form\""))
            #expect(plain.text.contains("<details id=\"rule-advanced\" open>"))
        }
    }

    @Test func tryingTheSampleAsItIsFires() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let manager = try await WebTests.signIn(client, "manager")
            let (env, smoke) = try await Self.devices(client, fixture)
            // Care tags would make the trial say the sensor has no household: this one has none.
            let plain = Self.hotFields(env, smoke).filter { $0.0 != "careTag.elderly_alone" }
            let made = try await Self.post(client, "/console/c/\(c)/rules", manager, Self.form(plain))
            #expect(made.status == .seeOther)
            let event = try await Self.post(
                client, "/console/c/\(c)/rules", manager,
                Self.form([
                    ("name", "烟雾"), ("enabled", "on"), ("source", smoke), ("kind", "event"),
                    ("event", "SmokeAlarm"), ("alarm", "on"), ("alarmType", "smoke"), ("severity", "critical"),
                ]))
            #expect(event.status == .seeOther)
            for (location, device, expected) in [
                (made.location, "env-1", "等待 2 分钟 后"), (event.location, "smoke-1", "第 1 条样例"),
            ] {
                let page = try await WorkFromAlarmsTests.page(client, location, manager.cookie)
                let (sample, wait) = Self.trialFields(page.text)
                #expect(sample.contains("\"deviceName\":\"\(device)\""), "\(sample)")
                #expect(!page.text.contains("id=\"trial-no-device\""))
                let trial = try await Self.post(
                    client, location + "/test", manager, Self.form([("samples", sample), ("thenSeconds", wait)]))
                #expect(trial.status == .ok, "\(trial.text)")
                #expect(!trial.text.contains("id=\"trial-problems\"") && trial.text.contains("id=\"trial\""))
                #expect(trial.text.contains(expected) && trial.text.contains("触发"))
                #expect(!trial.text.contains("id=\"trial-nothing\"") && !trial.text.contains("条件不满足"))
            }
            let steps = try await WorkFromAlarmsTests.page(client, made.location, manager.cookie)
            #expect(Self.trialFields(steps.text).wait == "120", "a duration is waited for")
            // The raw sample of before, a made-up device, is refused, said in the page's language.
            let bad = try await Self.post(
                client, event.location + "/test", manager,
                Self.form([("samples", #"[{"productKey":"\#(smoke)","deviceName":"DEVICE","event":"SmokeAlarm"}]"#)]))
            #expect(bad.status == .unprocessableContent && bad.text.contains("id=\"trial-problems\""))
            #expect(bad.text.contains("样例有误"))
        }
    }

    /// A page without its text boxes of JSON (the rule and the samples), which are code, as the API takes it.
    static func withoutJSON(_ html: String) -> String {
        html.replacingOccurrences(
            of: #"(?s)<textarea\b[^>]*>.*?</textarea>"#, with: " ", options: [.regularExpression, .caseInsensitive])
    }

    @Test func theRulePagesSpeakOneLanguage() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let manager = try await WebTests.signIn(client, "manager")
            let (env, smoke) = try await Self.devices(client, fixture)
            let made = try await Self.post(
                client, "/console/c/\(c)/rules", manager, Self.form(Self.hotFields(env, smoke)))
            var data = try await LanguageCommunityTests.data(fixture.store)
            for p in try await fixture.store.products(communityId: c) {
                data += [p.name, p.productKey]
                let model = try #require(p.thingModel)
                data += model.properties.flatMap { [$0.identifier, $0.name] }
                // What a bool's or enum's values stand for, and units: the thing model's own words.
                for property in model.properties {
                    switch property.dataType {
                    case let .bool(names): data += names.values
                    case let .enumeration(names): data += names.values
                    case let .int(spec), let .float(spec), let .double(spec): data += spec.unit.map { [$0] } ?? []
                    default: break
                    }
                }
                data +=
                    model.events.flatMap { [$0.identifier, $0.name] }
                    + model.services.flatMap { [$0.identifier, $0.name] }
            }
            // What the rule's author typed is theirs.
            data += ["env-1", "smoke-1", "机房过热", "overheat", "温度过高", "机房降温", "请查看机房"]
            data.sort { $0.count > $1.count }
            for (language, accept) in [(Language.zh, "zh-CN,zh;q=0.9"), (.en, "en-US,en;q=0.9")] {
                for path in ["/console/c/\(c)/rules", "/console/c/\(c)/rules/new", made.location] {
                    let page = try await WorkFromAlarmsTests.page(client, path, manager.cookie, accept: accept)
                    #expect(page.status == .ok, "\(path)")
                    LanguageCommunityTests.check(Self.withoutJSON(page.text), language, data, page: path)
                }
                // A template's rule in the form, its words in the page's language only.
                let picked = try await WorkFromAlarmsTests.page(
                    client, "/console/c/\(c)/rules/new?pick=hot%7C\(env)", manager.cookie, accept: accept)
                #expect(picked.status == .ok && picked.text.contains("<option value=\"CurrentTemperature\" selected>"))
                LanguageCommunityTests.check(Self.withoutJSON(picked.text), language, data, page: "the hot template")
                let message = language == .zh ? "温度过高" : "Temperature too high"
                #expect(
                    picked.text.contains(
                        "id=\"in-alarmMessage\" name=\"alarmMessage\" maxlength=\"500\" value=\"\(message)\""))
                #expect(!picked.text.contains(language == .zh ? "Temperature too high" : "温度过高 "))
                let refused = try await Self.post(
                    client, "/console/c/\(c)/rules", manager, Self.form([("name", ""), ("kind", "event")]),
                    accept: accept)
                #expect(refused.status == .unprocessableContent)
                LanguageCommunityTests.check(Self.withoutJSON(refused.text), language, data, page: "the refused rule")
                let page = try await WorkFromAlarmsTests.page(client, made.location, manager.cookie, accept: accept)
                let (samples, wait) = Self.trialFields(page.text)
                let trial = try await Self.post(
                    client, made.location + "/test", manager, Self.form([("samples", samples), ("thenSeconds", wait)]),
                    accept: accept)
                #expect(trial.status == .ok)
                LanguageCommunityTests.check(Self.withoutJSON(trial.text), language, data, page: "the trial")
                #expect(trial.text.contains(language == .zh ? "条件不满足，不执行" : "Not carried out"))
            }
        }
    }

    @Test func anAbsenceAnEscalationAndAWebhookWhoseSecretIsKept() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let manager = try await WebTests.signIn(client, "manager")
            let (env, smoke) = try await Self.devices(client, fixture)
            // No report for a while needs its minutes; an escalation needs whom it goes to.
            let fields: [(String, String)] = [
                ("name", "传感器失联"), ("enabled", "on"), ("source", "\(env)/env-1"), ("kind", "absence"),
                ("alarm", "on"), ("alarmType", "silent"), ("severity", "minor"), ("escalate", "on"),
                ("escalateMinutes", "30"), ("webhook", "on"), ("webhookUrl", "https://93.184.216.34/hook"),
                ("webhookSecret", "a-secret-of-twenty-chars"),
            ]
            let refused = try await Self.post(client, "/console/c/\(c)/rules", manager, Self.form(fields))
            #expect(refused.status == .unprocessableContent)
            #expect(refused.text.contains("id=\"error-minutes\"") && refused.text.contains("id=\"error-escalateTo\""))
            #expect(
                !refused.text.contains("id=\"error-alarmType\"") && !refused.text.contains("id=\"error-webhookUrl\""))
            #expect(!refused.text.contains("a-secret-of-twenty-chars"), "a secret is never shown again")
            let whole = fields + [("minutes", "720"), ("escalateTo.gridWorker", "on")]
            let made = try await Self.post(client, "/console/c/\(c)/rules", manager, Self.form(whole))
            #expect(made.status == .seeOther)
            let id = String(made.location.dropFirst("/console/rules/".count))
            let rule = try #require(try await fixture.store.rule(id: id))
            #expect(
                rule.definition.triggers == [
                    Trigger(type: .absence, productKey: env, deviceName: "env-1", forSeconds: 12 * 3600)
                ])
            #expect(
                rule.definition.actions.first?.escalate
                    == Escalation(tiers: [.init(afterSeconds: 1800, to: Recipients(gridWorker: true))]))
            let cipher = try #require(rule.definition.actions.last?.secretCipher)
            #expect(try fixture.store.cipher.decrypt(cipher) == "a-secret-of-twenty-chars")
            // Edited without typing the secret again: the same webhook keeps it.
            let edited = whole.filter { $0.0 != "webhookSecret" }.map { $0.0 == "minutes" ? ("minutes", "600") : $0 }
            #expect(try await Self.post(client, made.location, manager, Self.form(edited)).status == .seeOther)
            let after = try #require(try await fixture.store.rule(id: id))
            #expect(after.definition.triggers.first?.forSeconds == 600 * 60)
            #expect(
                after.definition.actions.last?.secretCipher.map { try? fixture.store.cipher.decrypt($0) }
                    == "a-secret-of-twenty-chars")
            // The trial of an absence waits for its time, from a sample of the real sensor.
            let page = try await WorkFromAlarmsTests.page(client, made.location, manager.cookie)
            let (sample, wait) = Self.trialFields(page.text)
            #expect(wait == "36000" && sample.contains("\"deviceName\":\"env-1\""))
            let trial = try await Self.post(
                client, made.location + "/test", manager, Self.form([("samples", sample), ("thenSeconds", wait)]))
            // A stored webhook's secret is not needed to try it: nothing is sent.
            #expect(trial.status == .ok && !trial.text.contains("id=\"trial-problems\""))
            #expect(trial.text.contains("等待 600 分钟 后") && trial.text.contains("触发"))
            #expect(trial.text.contains("调用网络回调 https://93.184.216.34/hook"))
            _ = smoke
        }
    }
}
