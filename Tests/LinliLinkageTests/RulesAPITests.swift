import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliDemo
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliDevices
@testable import LinliHTTP
@testable import LinliLinkage
@testable import LinliMessaging
@testable import LinliServer
@testable import LinliStorage
@testable import LinliWorkOrders

@Suite("Rules and alarms API")
struct RulesAPITests {
    @Test func rulesAreCheckedAndKeptToTheirCommunity() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let pk = try #require(
                try await staff.call(
                    "/api/v1/communities/\(c)/products", .post, ["library": "door_contact"], expect: .created)[
                        "productKey"] as? String)
            let body: [String: Any] = [
                "name": "未开门 door",
                "triggers": [
                    [
                        "type": "absence", "productKey": pk, "property": "ContactState", "op": "==", "value": 1,
                        "forSeconds": 43_200,
                    ]
                ],
                "conditions": [["type": "time", "from": "06:00", "to": "22:00"]],
                "actions": [["type": "alarm", "alarmType": "absence", "severity": "major"]],
            ]
            let rule = try await staff.call("/api/v1/communities/\(c)/rules", .post, body, expect: .created)
            let id = try #require(rule["id"] as? String)
            #expect(
                rule["enabled"] as? Bool == true
                    && (rule["triggers"] as? [[String: Any]])?.first?["forSeconds"] as? Int == 43_200)
            // An unknown comparison is a decoding fault named by its path; a wrong property is named by the model check.
            var bad = body
            bad["triggers"] = [
                ["type": "property", "productKey": pk, "property": "ContactState", "op": "~", "value": 1]
            ]
            try await staff.call("/api/v1/communities/\(c)/rules", .post, bad, expect: .unprocessableContent)
            bad["triggers"] = [
                [
                    "type": "property", "productKey": pk, "property": "BatteryPercentage", "op": "<", "value": 10,
                    "deviceName": "no-such-door",
                ]
            ]
            let fault = try await staff.call(
                "/api/v1/communities/\(c)/rules", .post, bad, expect: .unprocessableContent)
            #expect(
                (fault["errors"] as? [[String: Any]])?.compactMap { $0["field"] as? String } == [
                    "triggers[0].deviceName"
                ])

            // Replace, list, read, delete; each on the audit trail.
            var changed = body
            changed["enabled"] = false
            #expect(try await staff.call("/api/v1/rules/\(id)", .put, changed)["enabled"] as? Bool == false)
            #expect((try await staff.call("/api/v1/communities/\(c)/rules")["items"] as? [[String: Any]])?.count == 1)
            try await APIUser(client, fixture, as: "grid").call("/api/v1/rules/\(id)")
            try await APIUser(client, fixture, as: "grid").call("/api/v1/rules/\(id)", .put, body, expect: .forbidden)
            try await APIUser(client, fixture, as: "other-manager").call("/api/v1/rules/\(id)", expect: .notFound)
            try await APIUser(client, fixture, as: "resident").call(
                "/api/v1/communities/\(c)/rules", expect: .forbidden)
            try await staff.call("/api/v1/rules/\(id)", .delete, expect: .noContent)
            try await staff.call("/api/v1/rules/\(id)", expect: .notFound)
            let audit = try await APIUser(client, fixture, as: "manager").call("/api/v1/audit?subjectId=\(id)")
            #expect(
                Set((audit["items"] as? [[String: Any]])?.compactMap { $0["action"] as? String } ?? []) == [
                    "rule.created", "rule.updated", "rule.deleted",
                ])
            #expect((try await staff.call("/api/v1/rule-templates")["items"] as? [[String: Any]])?.count ?? 0 >= 8)
        }
    }

    @Test func careTagAndDeviceConditionsAreJudgedOnTheCommunityAsItIs() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let door = try #require(
                try await staff.call(
                    "/api/v1/communities/\(c)/products", .post, ["library": "door_contact"], expect: .created)[
                        "productKey"] as? String)
            let gate = try #require(
                try await staff.call(
                    "/api/v1/communities/\(c)/products", .post, ["library": "barrier_gate"], expect: .created)[
                        "productKey"] as? String)
            // A home where someone lives alone, and one where nobody carries a care tag.
            struct Row: Decodable {
                var id: String
                var tags: String
            }
            let homes = try await fixture.store.read { db in
                try await db.raw(
                    """
                    SELECT h.id, COALESCE(MAX(p.care_tags), '') AS tags FROM households h
                    JOIN residencies r ON r.household_id = h.id AND r.moved_out IS NULL JOIN people p ON p.id = r.person_id
                    WHERE h.community_id = \(bind: c) GROUP BY h.id
                    """
                ).all(decoding: Row.self)
            }
            let lonely = try #require(homes.first { $0.tags.contains(",elderly_alone,") }?.id)
            let untagged = try #require(homes.first { $0.tags.isEmpty }?.id)
            for (name, home) in [("door-lonely", lonely), ("door-family", untagged)] {
                let h = try await fixture.store.household(home, scope: .everything)
                try await staff.call(
                    "/api/v1/communities/\(c)/devices", .post,
                    [
                        "productKey": door, "deviceName": name, "buildingId": h.buildingId, "unitId": h.unitId,
                        "householdId": home,
                    ], expect: .created)
            }
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post, ["productKey": gate, "deviceName": "gate-1"],
                expect: .created)

            func trial(_ conditions: [[String: Any]]) async throws -> [String: [String]] {
                let body: [String: Any] = [
                    "rule": [
                        "name": "t",
                        "triggers": [
                            [
                                "type": "property", "productKey": door, "property": "ContactState", "op": "==",
                                "value": 1,
                            ]
                        ],
                        "conditions": conditions,
                        "actions": [["type": "alarm", "alarmType": "open", "severity": "minor"]],
                    ],
                    "samples": [
                        ["productKey": door, "deviceName": "door-lonely", "properties": ["ContactState": 1]],
                        ["productKey": door, "deviceName": "door-family", "properties": ["ContactState": 1]],
                        ["productKey": door, "deviceName": "door-lonely", "properties": ["ContactState": 0]],
                    ],
                ]
                let steps =
                    try await staff.call("/api/v1/communities/\(c)/rules/test", .post, body)["steps"]
                    as? [[String: Any]] ?? []
                return Dictionary(
                    steps.map {
                        (
                            "\($0["device"] as? String ?? "") \($0["change"] as? String ?? "")",
                            $0["actions"] as? [String] ?? []
                        )
                    }, uniquingKeysWith: { a, _ in a })
            }
            let byTag = try await trial([["type": "careTag", "tags": ["elderly_alone"]]])
            #expect(byTag["\(door)/door-lonely fired"] == ["raise alarm open (minor)"])
            #expect(
                byTag["\(door)/door-family fired"] == [
                    "not carried out: the household has none of the care tags elderly_alone"
                ])
            #expect(byTag["\(door)/door-lonely ended"] == ["clear alarm open"])
            // The gate has never reported and is not online.
            let byGate = try await trial([
                ["type": "device", "productKey": gate, "deviceName": "gate-1", "status": "online"]
            ])
            #expect(byGate["\(door)/door-lonely fired"] == ["not carried out: \(gate)/gate-1 is not online"])
            #expect(byGate["\(door)/door-lonely ended"] == nil, "what was not carried out does not end")
            // Faults name their field: an unknown device, an unknown property.
            var rule: [String: Any] = [
                "name": "t", "triggers": [["type": "event", "productKey": door, "event": "TamperAlarm"]],
                "conditions": [
                    ["type": "device", "productKey": gate, "deviceName": "gate-9", "status": "online"],
                    [
                        "type": "device", "productKey": gate, "deviceName": "gate-1", "property": "Nope", "op": ">",
                        "value": 1,
                    ],
                    ["type": "careTag", "tags": ["nobody"]],
                ],
                "actions": [["type": "alarm", "alarmType": "x", "severity": "minor"]],
            ]
            try await staff.call("/api/v1/communities/\(c)/rules", .post, rule, expect: .unprocessableContent)
            rule["conditions"] = [
                ["type": "device", "productKey": gate, "deviceName": "gate-9", "status": "online"],
                [
                    "type": "device", "productKey": gate, "deviceName": "gate-1", "property": "Nope", "op": ">",
                    "value": 1,
                ],
            ]
            let fault = try await staff.call(
                "/api/v1/communities/\(c)/rules", .post, rule, expect: .unprocessableContent)
            #expect(
                (fault["errors"] as? [[String: Any]])?.compactMap { $0["field"] as? String } == [
                    "conditions[0].deviceName", "conditions[1].property",
                ])
        }
    }

    @Test func alarmsAreSeenWithinReachAndHandledOnce() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let inGrid = try await fixture.store.household(fixture.gridHousehold, scope: .everything)
            let outside = try await fixture.store.household(fixture.outsideHousehold, scope: .everything)
            func raise(_ source: String, building: ID, type: String = "smoke", severity: AlarmSeverity = .critical)
                async throws -> Alarm
            {
                try await fixture.store.raiseAlarm(
                    AlarmRaise(
                        communityId: c, type: type, severity: severity, sourceType: "device", sourceId: source,
                        sourceName: source,
                        buildingId: building, householdId: nil, ruleId: nil, message: "m", detail: "d", at: nowMillis())
                ).alarm
            }
            let near = try await raise("dev-near", building: inGrid.buildingId)
            #expect(
                try await raise("dev-near", building: inGrid.buildingId, severity: .minor).id == near.id,
                "a repeat counts on the open alarm")
            let far = try await raise("dev-far", building: outside.buildingId, type: "leak", severity: .minor)

            let staff = APIUser(client, fixture, as: "staff")
            let all = try await staff.call("/api/v1/communities/\(c)/alarms?status=active")
            let items = all["items"] as? [[String: Any]] ?? []
            #expect(items.map { $0["id"] as? String } == [near.id, far.id], "most severe first")
            #expect(
                items.first?["occurrences"] as? Int == 2 && items.first?["severity"] as? String == "critical",
                "a repeat never lowers the severity")
            #expect(try await staff.call("/api/v1/communities/\(c)/alarms?severity=minor")["total"] as? Int == 1)
            try await staff.call("/api/v1/communities/\(c)/alarms?status=asleep", expect: .badRequest)

            // The grid worker sees and handles the alarms of the grid's buildings only.
            let grid = APIUser(client, fixture, as: "grid")
            let seen = (try await grid.call("/api/v1/communities/\(c)/alarms")["items"] as? [[String: Any]] ?? [])
                .compactMap { $0["id"] as? String }
            #expect(seen.contains(near.id) && (seen.contains(far.id) == (inGrid.buildingId == outside.buildingId)))
            if inGrid.buildingId != outside.buildingId {
                try await grid.call("/api/v1/alarms/\(far.id)/acknowledge", .post, expect: .notFound)
            }
            #expect(
                try await grid.call("/api/v1/alarms/\(near.id)/acknowledge", .post)["status"] as? String
                    == "active_acknowledged")
            try await staff.call("/api/v1/alarms/\(near.id)/acknowledge", .post, expect: .conflict)
            try await grid.call(
                "/api/v1/alarms/\(near.id)/comments", .post, ["text": ""], expect: .unprocessableContent)
            try await grid.call(
                "/api/v1/alarms/\(near.id)/comments", .post, ["text": "已上门 on my way"], expect: .created)
            #expect(
                try await staff.call("/api/v1/alarms/\(near.id)/clear", .post)["status"] as? String
                    == "cleared_acknowledged")
            try await staff.call("/api/v1/alarms/\(near.id)/clear", .post, expect: .conflict)
            let detail = try await staff.call("/api/v1/alarms/\(near.id)")
            #expect((detail["comments"] as? [[String: Any]])?.first?["authorName"] as? String == "grid")
            try await APIUser(client, fixture, as: "resident").call("/api/v1/alarms/\(near.id)", expect: .forbidden)
            try await APIUser(client, fixture, as: "other-manager").call("/api/v1/alarms/\(near.id)", expect: .notFound)
            // After clearing, the same source and type opens a new alarm.
            #expect(try await raise("dev-near", building: inGrid.buildingId).id != near.id)
        }
    }
}
