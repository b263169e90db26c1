import Foundation
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliLinkage
@testable import LinliMessaging
@testable import LinliStorage

@Suite("Alarms and rule states on every engine")
struct AlarmStoreTests {
    static let tsl =
        #"{"properties":[{"identifier":"Temp","name":"T","accessMode":"rw","dataType":{"type":"float","specs":{"min":"-40","max":"120"}}}],"events":[],"services":[]}"#

    func makeDevices(_ store: Store, _ place: Place, count: Int = 2) async throws -> [Device] {
        let product = Product(
            communityId: place.community.id, productKey: Product.newKey(), name: "Thermometer", libraryKey: nil,
            tslJson: Self.tsl)
        try await store.createProduct(product, actor: tester)
        var placement = DevicePlacement()
        placement.buildingId = place.building.id
        placement.reportIntervalSeconds = 60
        return try await store.registerDevices(
            product: product, (0..<count).map { ("t-\($0)", placement) }, actor: tester
        ).map(\.0)
    }

    @Test(arguments: TestEngine.available)
    func alarmsCountRepeatsAndRuleStatesRoundTrip(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let d = try await makeDevices(store, place, count: 1)[0]
            let raise = AlarmRaise(
                communityId: place.community.id, type: "hot", severity: .minor, sourceType: "device", sourceId: d.id,
                sourceName: "t-0",
                buildingId: place.building.id, householdId: nil, ruleId: nil, message: "m", detail: "first", at: 1_000)
            let first = try await store.raiseAlarm(raise)
            var again = raise
            again.severity = .critical
            again.detail = "second"
            let second = try await store.raiseAlarm(again)
            #expect(first.isNew && !second.isNew && second.alarm.id == first.alarm.id)
            #expect(
                second.alarm.occurrences == 2 && second.alarm.severity == .critical && second.alarm.detail == "second")
            #expect(
                try await store.clearAlarm(sourceId: d.id, type: "hot", detail: "ended")?.status
                    == .clearedUnacknowledged)
            #expect(try await store.clearAlarm(sourceId: d.id, type: "hot", detail: "ended") == nil)
            #expect(try await store.raiseAlarm(raise).isNew)
            let events = try await store.read { db in
                try await EventLog.read(db, after: 0, limit: 100, scope: .everything)
            }.map(\.type)
            #expect(events.filter { $0.hasPrefix("alarm.") } == ["alarm.raised", "alarm.cleared", "alarm.raised"])

            let rule = Rule(
                communityId: place.community.id, name: "r",
                definition: RuleDefinition(
                    triggers: [Trigger(type: .absence, productKey: d.productKey, forSeconds: 60)],
                    actions: [Action(type: .alarm, alarmType: "a", severity: .major)]))
            try await store.createRule(rule, actor: tester)
            #expect(try await store.rule(id: rule.id)?.definition == rule.definition)
            let state = TriggerState(
                ruleId: rule.id, triggerIndex: 0, deviceId: d.id, since: 5, holding: true, fired: false)
            try await store.saveTriggerStates([state], delete: [])
            var fired = state
            fired.fired = true
            try await store.saveTriggerStates([fired], delete: [])
            #expect(try await store.triggerStates() == [fired])
            try await store.saveTriggerStates([], delete: [(rule.id, 0, d.id)])
            #expect(try await store.triggerStates().isEmpty)
            #expect(try await store.enabledRules().map(\.id) == [rule.id])
        }
    }

    /// A rule that is disabled, changed to call elsewhere, or deleted takes its waiting deliveries
    /// with it: nothing is sent on behalf of a rule that no longer wants it.
    @Test(arguments: TestEngine.available)
    func deliveriesWaitOnlyForARuleThatStillWantsThem(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let d = try await makeDevices(store, place, count: 1)[0]
            var hook = Action(type: .webhook)
            hook.url = "https://hooks.example.org/a"
            hook.secretCipher = "x"
            var rule = Rule(
                communityId: place.community.id, name: "r",
                definition: RuleDefinition(
                    triggers: [Trigger(type: .absence, productKey: d.productKey, forSeconds: 60)], actions: [hook]))
            try await store.createRule(rule, actor: tester)
            func enqueue(_ url: String) async throws -> ID {
                try await store.enqueueDelivery(
                    communityId: place.community.id, ruleId: rule.id, url: url, secretCipher: "x", payload: "{}"
                ).id
            }
            func status(_ id: ID) async throws -> WebhookDelivery.Status? {
                try await store.deliveries(ruleId: rule.id, page: PageRequest()).items.first { $0.id == id }?.status
            }
            let kept = try await enqueue("https://hooks.example.org/a")
            let dropped = try await enqueue("https://old.example.org/b")
            try await store.updateRule(rule, actor: tester)
            #expect(try await status(kept) == .pending)
            #expect(try await status(dropped) == .cancelled, "the rule no longer calls that URL")
            rule.enabled = false
            try await store.updateRule(rule, actor: tester)
            #expect(try await status(kept) == .cancelled, "a disabled rule wants none")
            let last = try await enqueue("https://hooks.example.org/a")
            try await store.deleteRule(rule, actor: tester)
            #expect(try await status(last) == .cancelled)
            #expect(try await store.claimDueDeliveries(now: nowMillis() + 60_000, limit: 10).isEmpty)
        }
    }
}
