import Foundation
import LinliCommunity
import LinliCore
import Testing

@testable import LinliLinkage

@Suite("Rules engine")
struct RuleEngineTests {
    static let community = "c1"
    static let door = WatchedDevice(id: "d1", communityId: community, productKey: "a1Door", deviceName: "door-1")
    static let otherDoor = WatchedDevice(id: "d2", communityId: community, productKey: "a1Door", deviceName: "door-2")
    static let elsewhere = WatchedDevice(id: "d3", communityId: "c2", productKey: "a1Door", deviceName: "door-9")
    static let alarm = Action(type: .alarm, alarmType: "t", severity: .major)

    static func rule(_ triggers: [Trigger], conditions: [Condition] = []) -> Rule {
        Rule(
            communityId: community, name: "r",
            definition: RuleDefinition(triggers: triggers, conditions: conditions, actions: [alarm]))
    }

    static func utc() -> Calendar {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }

    @Test func thresholdFiresOnceWhileItHoldsAndEndsWhenItStops() {
        var engine = RuleEngine()
        engine.install(
            Self.rule([Trigger(type: .property, productKey: "a1Door", property: "T", op: .greater, value: 60)]))
        #expect(engine.observe(.properties(["T": 20]), from: Self.door, now: 1).isEmpty)
        let fired = engine.observe(.properties(["T": 61]), from: Self.door, now: 2)
        #expect(fired.map(\.change) == [.fired] && fired[0].detail == "T = 61 (> 60)")
        #expect(engine.observe(.properties(["T": 70]), from: Self.door, now: 3).isEmpty, "still above: no flood")
        #expect(
            engine.observe(.properties(["Other": 1]), from: Self.door, now: 4).isEmpty,
            "a post without the property changes nothing")
        #expect(engine.observe(.properties(["T": 59]), from: Self.door, now: 5).map(\.change) == [.ended])
        // Devices are told apart, and another community's device is not watched at all.
        #expect(engine.observe(.properties(["T": 99]), from: Self.otherDoor, now: 6).count == 1)
        #expect(engine.observe(.properties(["T": 99]), from: Self.elsewhere, now: 6).isEmpty)
    }

    /// Devices' posts skip the engine while it watches no device at all.
    @Test func theEngineSaysWhetherAnyRuleWatchesDevices() {
        var engine = RuleEngine()
        #expect(!engine.watchesDevices)
        engine.install(Self.rule([Trigger(type: .domain, productKey: "", eventType: "workorder.overdue")]))
        #expect(!engine.watchesDevices)
        let threshold = Self.rule([
            Trigger(type: .property, productKey: "a1Door", property: "T", op: .greater, value: 60)
        ])
        engine.install(threshold)
        #expect(engine.watchesDevices)
        engine.remove(threshold.id)
        #expect(!engine.watchesDevices)
        engine.install(Self.rule([Trigger(type: .absence, productKey: "", forSeconds: 60, per: .household)]))
        #expect(engine.watchesDevices)
    }

    @Test func aDurationFiresOnlyAfterHoldingThatLong() {
        var engine = RuleEngine()
        engine.install(
            Self.rule([
                Trigger(type: .property, productKey: "a1Door", property: "T", op: .greater, value: 60, forSeconds: 120)
            ]))
        #expect(engine.observe(.properties(["T": 70]), from: Self.door, now: 0).isEmpty)
        #expect(engine.nextDue == 120_000)
        #expect(engine.expire(now: 119_999).isEmpty)
        // Dropping below and rising again restarts the wait.
        _ = engine.observe(.properties(["T": 10]), from: Self.door, now: 60_000)
        _ = engine.observe(.properties(["T": 70]), from: Self.door, now: 100_000)
        #expect(engine.expire(now: 120_000).isEmpty, "the first timer is stale")
        let fired = engine.expire(now: 220_000)
        #expect(fired.map(\.change) == [.fired] && fired[0].detail == "held for 2 min")
        #expect(engine.expire(now: 999_000).isEmpty)
        #expect(engine.observe(.properties(["T": 10]), from: Self.door, now: 230_000).map(\.change) == [.ended])
    }

    @Test func absenceIsTimedFromTheLastActivityAndEndsWhenActivityResumes() {
        var engine = RuleEngine()
        let r = Self.rule([
            Trigger(
                type: .absence, productKey: "a1Door", deviceName: "door-1", property: "ContactState", op: .equal,
                value: 1, forSeconds: 3600)
        ])
        engine.install(r)
        engine.watch(Self.door, now: 0)
        engine.watch(Self.otherDoor, now: 0)  // not the named device
        #expect(engine.armedTimers == 1)
        // Closing the door (0) or a battery report is not the activity watched; opening it (1) is.
        _ = engine.observe(.properties(["ContactState": 0]), from: Self.door, now: 1_000_000)
        #expect(engine.expire(now: 3_600_000).map(\.detail) == ["no activity for 1 h"])
        #expect(engine.expire(now: 9_000_000).isEmpty, "fired once, not every hour")
        #expect(
            engine.observe(.properties(["ContactState": 1]), from: Self.door, now: 9_000_000).map(\.change) == [.ended])
        // Regular activity keeps moving the deadline without piling up timers.
        for t in stride(from: Millis(9_100_000), to: 20_000_000, by: 100_000) {
            _ = engine.observe(.properties(["ContactState": 1]), from: Self.door, now: t)
        }
        #expect(engine.armedTimers <= 2)
        #expect(engine.expire(now: 20_000_000).isEmpty)
        #expect(engine.expire(now: 19_900_000 + 3_600_000).count == 1)
    }

    @Test func statesSurviveARestartWithoutFiringTwice() {
        var engine = RuleEngine()
        let r = Self.rule([Trigger(type: .absence, productKey: "a1Door", forSeconds: 60)])
        engine.install(r)
        engine.watch(Self.door, now: 0)
        #expect(engine.expire(now: 60_000).count == 1)
        let stored = engine.takeChanges().save
        #expect(stored.count == 1 && stored[0].fired)
        // A new process: restored, it neither fires again nor forgets it must end.
        var restarted = RuleEngine()
        restarted.install(r, states: stored)
        restarted.watch(Self.door, now: 120_000)
        #expect(restarted.expire(now: 500_000).isEmpty)
        #expect(restarted.observe(.properties(["Any": 1]), from: Self.door, now: 500_000).map(\.change) == [.ended])
        // Activity is stored at most once a minute, not per message.
        _ = restarted.takeChanges()
        _ = restarted.observe(.properties(["Any": 1]), from: Self.door, now: 510_000)
        #expect(restarted.takeChanges().save.isEmpty)
        _ = restarted.observe(.properties(["Any": 1]), from: Self.door, now: 570_000)
        #expect(restarted.takeChanges().save.count == 1)
    }

    @Test func eventsFireEveryTimeAndStatusWithADuration() {
        var engine = RuleEngine()
        engine.install(
            Self.rule([
                Trigger(type: .event, productKey: "a1Door", event: "Tamper"),
                Trigger(type: .status, productKey: "a1Door", status: "offline", forSeconds: 600),
            ]))
        #expect(engine.observe(.event("Tamper"), from: Self.door, now: 1).count == 1)
        #expect(engine.observe(.event("Tamper"), from: Self.door, now: 2).count == 1)
        #expect(engine.observe(.event("Other"), from: Self.door, now: 3).isEmpty)
        #expect(engine.observe(.status("offline"), from: Self.door, now: 0).isEmpty)
        #expect(engine.expire(now: 600_000).map(\.triggerIndex) == [1])
        #expect(engine.observe(.status("online"), from: Self.door, now: 700_000).map(\.change) == [.ended])
    }

    @Test func conditionsAreCheckedWhenATriggerFires() {
        var engine = RuleEngine(calendar: Self.utc())
        // 22:00 to 06:00, across midnight, weekdays only.
        engine.install(
            Self.rule(
                [Trigger(type: .event, productKey: "a1Door", event: "Open")],
                conditions: [Condition(type: .time, from: "22:00", to: "06:00", weekdays: [1, 2, 3, 4, 5])]))
        let mondayNight: Millis = 1_767_043_800_000  // 2025-12-29 21:30 UTC, a Monday
        #expect(engine.observe(.event("Open"), from: Self.door, now: mondayNight).isEmpty)
        #expect(engine.observe(.event("Open"), from: Self.door, now: mondayNight + 3_600_000).count == 1)
        #expect(
            engine.observe(.event("Open"), from: Self.door, now: mondayNight + 9 * 3_600_000).isEmpty, "06:30 Tuesday")
        let saturdayNight = mondayNight + 5 * 86_400_000 + 3_600_000
        #expect(engine.observe(.event("Open"), from: Self.door, now: saturdayNight).isEmpty)
    }

    @Test func careTagsAndOtherDevicesAreJudgedOnTheFactsFound() {
        let lonely = Condition.careTag([.elderlyAlone])
        #expect(lonely.unmet(given: ConditionFacts(householdTags: [.elderlyAlone, .disabled])) == nil)
        #expect(
            lonely.unmet(given: ConditionFacts(householdTags: [.child]))
                == "the household has none of the care tags elderly_alone")
        #expect(lonely.unmet(given: ConditionFacts(householdTags: nil)) == "the device is not in a household")
        let gateDown = Condition.device("a1Gate", "gate-1", property: "BarrierState", op: .equal, value: 0)
        let gateOnline = Condition.device("a1Gate", "gate-1", status: "online")
        let facts = ConditionFacts(devices: ["a1Gate/gate-1": DeviceFacts(online: false, values: ["BarrierState": 0])])
        #expect(gateDown.unmet(given: facts) == nil)
        #expect(gateOnline.unmet(given: facts) == "a1Gate/gate-1 is not online")
        #expect(
            gateDown.unmet(
                given: ConditionFacts(devices: ["a1Gate/gate-1": DeviceFacts(online: true, values: ["BarrierState": 1])]
                )) == "a1Gate/gate-1 BarrierState = 1, not == 0")
        #expect(
            gateDown.unmet(given: ConditionFacts(devices: ["a1Gate/gate-1": DeviceFacts(online: true, values: [:])]))
                == "a1Gate/gate-1 has not reported BarrierState")
        #expect(gateDown.unmet(given: ConditionFacts()) == "a1Gate/gate-1 is not a device of this community")
        // Time is the engine's; the others pass there and are left to the server.
        #expect(gateDown.holds(at: Date()) && gateDown.needsFacts && !Condition(type: .time).needsFacts)
        let definition = RuleDefinition(
            triggers: [Trigger(type: .event, productKey: "p", event: "E")],
            conditions: [Condition(type: .time), lonely, gateDown], actions: [Self.alarm])
        #expect(definition.factConditions == [lonely, gateDown])
        #expect(
            definition.unmetCondition(given: ConditionFacts(householdTags: [.elderlyAlone], devices: facts.devices))
                == nil)
        #expect(
            definition.unmetCondition(given: ConditionFacts(householdTags: [], devices: facts.devices))?.hasPrefix(
                "the household") == true)
    }

    @Test func aHouseholdIsSilentOnlyWhenAllItsDevicesAre() {
        var engine = RuleEngine()
        let rule = Self.rule([Trigger(type: .absence, productKey: "", forSeconds: 60, per: .household)])
        engine.install(rule)
        let door = WatchedDevice(
            id: "d1", communityId: Self.community, productKey: "a1Door", deviceName: "door-1", householdId: "h1")
        let meter = WatchedDevice(
            id: "m1", communityId: Self.community, productKey: "a1Water", deviceName: "meter-1", householdId: "h1")
        let lobby = WatchedDevice(id: "l1", communityId: Self.community, productKey: "a1Door", deviceName: "lobby")
        for d in [door, meter, lobby] { engine.watch(d, now: 0) }
        #expect(engine.armedTimers == 1, "one timer for the home; the lobby door is in no home")
        // Either device is a sign of life.
        _ = engine.observe(.properties(["Flow": 1]), from: meter, now: 30_000)
        #expect(engine.expire(now: 60_000).isEmpty)
        _ = engine.observe(.event("Open"), from: door, now: 80_000)
        #expect(engine.expire(now: 100_000).isEmpty)
        let silent = engine.expire(now: 140_000)
        #expect(
            silent.count == 1 && silent[0].device.id == "h1" && silent[0].device.householdId == "h1"
                && silent[0].device.deviceName == "household")
        #expect(engine.observe(.properties(["Flow": 0]), from: meter, now: 150_000).map(\.change) == [.ended])
        // Stored per household, and restored so after a restart.
        let saved = engine.takeChanges().save
        #expect(saved.allSatisfy { $0.deviceId == "h1" } && !saved.isEmpty)
        var restarted = RuleEngine()
        restarted.install(rule, states: saved)
        restarted.watch(door, now: 200_000)
        #expect(restarted.expire(now: 209_999).isEmpty)
        #expect(restarted.expire(now: 210_000).count == 1, "timed from the stored activity, not from the restart")
        // What the definition allows.
        #expect(
            RuleDefinition(
                triggers: [Trigger(type: .absence, productKey: "", forSeconds: 60, per: .household)],
                actions: [Self.alarm]
            ).issues().isEmpty)
        let bad = RuleDefinition(
            triggers: [
                Trigger(type: .absence, productKey: "", deviceName: "d", forSeconds: 60, per: .household),
                Trigger(type: .event, productKey: "p", event: "E", per: .household),
                Trigger(type: .absence, productKey: "", event: "Open", forSeconds: 60, per: .household),
            ], actions: [Self.alarm])
        #expect(
            Set(bad.issues().map(\.path)) == ["triggers[0].deviceName", "triggers[1].per", "triggers[2].productKey"])
    }

    @Test func aPersonIsStillOnlyWhenEverythingTheyWearIs() {
        var engine = RuleEngine()
        engine.install(Self.rule([Trigger(type: .absence, productKey: "", forSeconds: 60, per: .person)]))
        let pendant = WatchedDevice(
            id: "p1", communityId: Self.community, productKey: "a1Sos", deviceName: "pendant-1", householdId: "h1",
            personId: "grandma")
        let bracelet = WatchedDevice(
            id: "b1", communityId: Self.community, productKey: "a1Band", deviceName: "band-1", personId: "grandma")
        let door = WatchedDevice(
            id: "d1", communityId: Self.community, productKey: "a1Door", deviceName: "door-1", householdId: "h1")
        for d in [pendant, bracelet, door] { engine.watch(d, now: 0) }
        #expect(engine.armedTimers == 1, "one timer for the person; the door is nobody's own")
        _ = engine.observe(.event("Heartbeat"), from: bracelet, now: 50_000)
        _ = engine.observe(.event("Open"), from: door, now: 100_000)
        let still = engine.expire(now: 110_000)
        #expect(
            still.count == 1 && still[0].device.id == "grandma" && still[0].device.deviceName == "person"
                && still[0].device.personId == "grandma")
        #expect(engine.observe(.properties(["Battery": 80]), from: pendant, now: 120_000).map(\.change) == [.ended])
    }

    @Test func aSuppressedFiringNeitherFiresAgainNorEnds() {
        var engine = RuleEngine()
        engine.install(
            Self.rule([
                Trigger(type: .property, productKey: "a1Door", property: "T", op: .greater, value: 60),
                Trigger(type: .absence, productKey: "a1Door", forSeconds: 60),
            ]))
        engine.watch(Self.door, now: 0)
        let fired = engine.observe(.properties(["T": 61]), from: Self.door, now: 1)
        #expect(fired.map(\.triggerIndex) == [0])
        engine.suppress(fired[0])
        #expect(
            engine.takeChanges().save.contains { $0.triggerIndex == 0 && $0.holding && !$0.fired },
            "stored, so a restart does not end it")
        #expect(
            engine.observe(.properties(["T": 70]), from: Self.door, now: 2).isEmpty, "still holding: not fired again")
        #expect(engine.observe(.properties(["T": 10]), from: Self.door, now: 3).isEmpty, "no end for what did not fire")
        #expect(
            engine.observe(.properties(["T": 61]), from: Self.door, now: 4).count == 1, "a new crossing fires again")
        // Absence: taken back, it waits for activity and the next silence.
        let silent = engine.expire(now: 70_000)
        #expect(silent.map(\.triggerIndex) == [1])
        engine.suppress(silent[0])
        #expect(engine.expire(now: 200_000).isEmpty)
        #expect(engine.observe(.event("Any"), from: Self.door, now: 210_000).allSatisfy { $0.triggerIndex != 1 })
        #expect(engine.expire(now: 270_000).map(\.triggerIndex) == [1])
    }

    @Test func definitionsAreCheckedWithThePathOfEachFault() {
        let bad = RuleDefinition(
            triggers: [
                Trigger(type: .property, productKey: "a1Door", property: "T"),
                Trigger(type: .absence, productKey: ""),
                Trigger(type: .event, productKey: "p", event: "E", forSeconds: 5),
            ],
            conditions: [Condition(type: .time, from: "25:00", to: "06:00", weekdays: [0])],
            actions: [Action(type: .alarm)])
        let paths = Set(bad.issues().map(\.path))
        #expect(
            paths == [
                "triggers[0].op", "triggers[0].value", "triggers[1].productKey", "triggers[1].forSeconds",
                "triggers[2].forSeconds",
                "conditions[0].from", "conditions[0].weekdays", "actions[0].alarmType", "actions[0].severity",
            ])
        #expect(RuleDefinition(triggers: [], actions: []).issues().map(\.path) == ["triggers", "actions"])
        let conditions = RuleDefinition(
            triggers: [Trigger(type: .event, productKey: "p", event: "E")],
            conditions: [
                Condition(type: .careTag), Condition.device("p", "d", property: "T"),
                Condition.device("p", "", property: "T", op: .less, value: 1, status: "up"),
            ],
            actions: [Self.alarm])
        #expect(
            Set(conditions.issues().map(\.path)) == [
                "conditions[0].tags", "conditions[1].op", "conditions[1].value",
                "conditions[2].deviceName", "conditions[2].status", "conditions[2].property",
            ])
    }

    @Test func removingARuleForgetsItsTimers() {
        var engine = RuleEngine()
        let r = Self.rule([Trigger(type: .absence, productKey: "a1Door", forSeconds: 60)])
        engine.install(r)
        engine.watch(Self.door, now: 0)
        engine.remove(r.id)
        #expect(engine.expire(now: 100_000).isEmpty && engine.ruleCount == 0)
        #expect(engine.takeChanges().delete.count == 1)
    }

    @Test func cronSchedulesNameTheNextMinute() throws {
        let utc = Self.utc()
        let monday = Date(timeIntervalSince1970: 1_767_043_800)  // 2025-12-29 21:30 UTC, a Monday
        func next(_ cron: String, after date: Date = monday) throws -> String {
            let d = try #require(try CronSchedule(cron).next(after: date, calendar: utc))
            let f = DateFormatter()
            f.timeZone = utc.timeZone
            f.dateFormat = "EEE yyyy-MM-dd HH:mm"
            return f.string(from: d)
        }
        #expect(try next("*/15 * * * *") == "Mon 2025-12-29 21:45")
        #expect(try next("0 8 * * *") == "Tue 2025-12-30 08:00")
        #expect(try next("30 18 * * 6") == "Sat 2026-01-03 18:30")
        #expect(try next("0 9 1 * *") == "Thu 2026-01-01 09:00")
        #expect(try next("0 0 29 2 *") == "Tue 2028-02-29 00:00", "the next leap day")
        #expect(try next("0 9-17/4 * * 1-5") == "Tue 2025-12-30 09:00")
        #expect(try next("30 21 * * 1", after: monday) == "Mon 2026-01-05 21:30", "strictly after, not the same minute")
        for bad in ["* * * *", "61 * * * *", "* * 0 * *", "*/0 * * * *", "a b c d e", "5-1 * * * *"] {
            #expect(throws: CronSchedule.Fault.self, "\(bad)") { try CronSchedule(bad) }
        }
    }

    @Test func schedulesFireOnTimeAndRearm() {
        var engine = RuleEngine(calendar: Self.utc())
        let start: Millis = 1_767_043_800_000  // 21:30
        let r = Rule(
            communityId: Self.community, name: "lights",
            definition: RuleDefinition(
                triggers: [Trigger(type: .schedule, productKey: "", cron: "0 22 * * *")], actions: [Self.alarm]))
        engine.install(r, now: start)
        #expect(engine.nextDue == start + 30 * 60_000)
        #expect(engine.expire(now: start + 29 * 60_000).isEmpty)
        let fired = engine.expire(now: start + 30 * 60_000 + 500)
        #expect(fired.count == 1 && fired[0].device.id == r.id && fired[0].detail == "schedule 0 22 * * *")
        #expect(engine.nextDue == start + 30 * 60_000 + 86_400_000, "tomorrow at 22:00")
        // Woken very late, it fires once, not for every day missed.
        #expect(engine.expire(now: start + 10 * 86_400_000).count == 1)
        engine.remove(r.id)
        #expect(engine.expire(now: start + 20 * 86_400_000).isEmpty)
    }

    @Test func domainEventsFireRulesOfTheirCommunity() {
        var engine = RuleEngine()
        let r = Rule(
            communityId: Self.community, name: "overdue",
            definition: RuleDefinition(
                triggers: [Trigger(type: .domain, productKey: "", eventType: "workorder.overdue")],
                actions: [Action(type: .notify)]))
        engine.install(r)
        let order = WatchedDevice(id: "wo-1", communityId: Self.community, productKey: "", deviceName: "workorder")
        #expect(engine.observe(.domain("workorder.overdue"), from: order, now: 1).map(\.device.id) == ["wo-1"])
        #expect(engine.observe(.domain("workorder.submitted"), from: order, now: 2).isEmpty)
        #expect(
            engine.observe(
                .domain("workorder.overdue"),
                from: WatchedDevice(id: "x", communityId: "c2", productKey: "", deviceName: "workorder"), now: 3
            ).isEmpty)
        // A rule started by alarms may not raise alarms (it would raise itself).
        let loop = RuleDefinition(
            triggers: [Trigger(type: .domain, productKey: "", eventType: "alarm.raised")], actions: [Self.alarm])
        #expect(loop.issues().map(\.path) == ["actions[0]"])
        #expect(
            RuleDefinition(
                triggers: [Trigger(type: .domain, productKey: "", eventType: "made.up")], actions: [Self.alarm]
            ).issues().map(\.path) == ["triggers[0].eventType"])
    }
}
