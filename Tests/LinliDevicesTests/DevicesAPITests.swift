import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliAlink
import LinliCore
import LinliTestSupport
import LinliThings
import Synchronization
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliDevices
@testable import LinliHTTP
@testable import LinliServer
@testable import LinliStorage

@Suite("Devices API")
struct DevicesAPITests {
    @Test func productsFromTheLibraryOrATSLWithTheFaultNamed() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let library = try await staff.call("/api/v1/product-library")["items"] as? [[String: Any]] ?? []
            #expect(library.count == 16 && library.contains { $0["key"] as? String == "smoke_detector" })
            let smoke = try await staff.call(
                "/api/v1/communities/\(c)/products", .post, ["library": "smoke_detector"], expect: .created)
            let pk = try #require(smoke["productKey"] as? String)
            #expect(smoke["nodeType"] as? String == "device")
            // A gateway from the library is one; any TSL may be declared one; nothing else is a node type.
            let gateway = try await staff.call(
                "/api/v1/communities/\(c)/products", .post, ["library": "protocol_gateway"], expect: .created)
            #expect(gateway["nodeType"] as? String == "gateway")
            let wrongType = try await staff.call(
                "/api/v1/communities/\(c)/products", .post, ["library": "sos_button", "nodeType": "hub"],
                expect: .unprocessableContent)
            #expect((wrongType["errors"] as? [[String: Any]])?.first?["field"] as? String == "nodeType")
            #expect((smoke["tsl"] as? [String: Any])?["events"] != nil)
            let bad = try await staff.call(
                "/api/v1/communities/\(c)/products", .post,
                [
                    "tsl": [
                        "properties": [
                            [
                                "identifier": "T", "name": "t", "accessMode": "r",
                                "dataType": ["type": "float", "specs": ["min": "9", "max": "1"]],
                            ]
                        ]
                    ]
                ],
                expect: .unprocessableContent)
            let field = ((bad["errors"] as? [[String: Any]])?.first?["field"] as? String) ?? ""
            #expect(field.hasPrefix("tsl.properties[0]"), "got \(bad)")
            try await staff.call(
                "/api/v1/communities/\(c)/products", .post, ["library": "nope"], expect: .unprocessableContent)
            try await staff.call(
                "/api/v1/communities/\(c)/products", .post, ["name": "neither"], expect: .unprocessableContent)
            let listed = try await staff.call("/api/v1/communities/\(c)/products")["items"] as? [[String: Any]] ?? []
            let listedSmoke = listed.first { $0["productKey"] as? String == pk } ?? [:]
            #expect(
                listed.count == 2 && listedSmoke["events"] as? Int == 2 && listedSmoke["services"] as? Int == 1
                    && listedSmoke["tsl"] == nil, "\(listed)")
            #expect((try await staff.call("/api/v1/products/\(pk)")["tsl"] as? [String: Any]) != nil)
            // Another community's administrator does not see it; a grid worker may look but not define.
            try await APIUser(client, fixture, as: "other-manager").call("/api/v1/products/\(pk)", expect: .notFound)
            try await APIUser(client, fixture, as: "grid").call(
                "/api/v1/communities/\(c)/products", .post, ["library": "sos_button"], expect: .forbidden)
            try await APIUser(client, fixture, as: "resident").call(
                "/api/v1/communities/\(c)/products", expect: .forbidden)
        }
    }

    @Test func registryPlacesDevicesAndScopesThem() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let pk = try #require(
                try await staff.call(
                    "/api/v1/communities/\(c)/products", .post, ["library": "door_contact"], expect: .created)[
                        "productKey"] as? String)
            let gridHousehold = try await fixture.store.household(fixture.gridHousehold, scope: .everything)
            let made = try await staff.call(
                "/api/v1/communities/\(c)/devices", .post,
                [
                    "productKey": pk, "deviceName": "door-101", "nickname": "独居老人门磁",
                    "buildingId": gridHousehold.buildingId,
                    "unitId": gridHousehold.unitId, "householdId": gridHousehold.id, "tags": ["独居老人"],
                    "reportIntervalSeconds": 3600,
                ],
                expect: .created)
            #expect((made["deviceSecret"] as? String)?.count ?? 0 >= 24)
            let device = try #require(made["device"] as? [String: Any])
            #expect(
                device["status"] as? String == "inactive" && device["silent"] as? Bool == true
                    && device["connected"] as? Bool == false)
            #expect(device["secretCipher"] == nil)
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post, ["productKey": pk, "deviceName": "door-101"],
                expect: .conflict)
            // A personal device names its wearer, a person of the community.
            let worn = try await staff.call(
                "/api/v1/communities/\(c)/devices", .post,
                ["productKey": pk, "deviceName": "worn-1", "personId": fixture.personWithIdentity],
                expect: .created)
            #expect((worn["device"] as? [String: Any])?["personId"] as? String == fixture.personWithIdentity)
            let stranger = try await staff.call(
                "/api/v1/communities/\(c)/devices", .post,
                ["productKey": pk, "deviceName": "worn-2", "personId": fixture.otherPerson],
                expect: .unprocessableContent)
            #expect((stranger["errors"] as? [[String: Any]])?.compactMap { $0["field"] as? String } == ["personId"])
            let unworn = try await staff.call("/api/v1/devices/\(pk)/worn-1", .patch, ["personId": NSNull()])
            #expect(unworn["personId"] == nil)
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post, ["productKey": pk, "deviceName": "bad name/with slash"],
                expect: .unprocessableContent)
            let outside = try await fixture.store.household(fixture.outsideHousehold, scope: .everything)
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post,
                [
                    "productKey": pk, "deviceName": "door-x", "householdId": fixture.outsideHousehold,
                    "buildingId": gridHousehold.buildingId,
                ], expect: outside.buildingId == gridHousehold.buildingId ? .created : .unprocessableContent)
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post,
                [
                    "productKey": pk, "deviceName": "lobby-1", "buildingId": outside.buildingId,
                    "location": "大堂", "reportIntervalSeconds": 5,
                ], expect: .unprocessableContent)
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post,
                ["productKey": pk, "deviceName": "lobby-1", "buildingId": outside.buildingId, "location": "大堂"],
                expect: .created)

            #expect(try await staff.call("/api/v1/communities/\(c)/devices?tag=独居老人")["total"] as? Int == 1)
            #expect(try await staff.call("/api/v1/communities/\(c)/devices?silent=true")["total"] as? Int == 1)
            #expect(try await staff.call("/api/v1/communities/\(c)/devices?q=LOBBY")["total"] as? Int == 1)
            try await staff.call("/api/v1/communities/\(c)/devices?status=sleeping", expect: .badRequest)
            // The grid worker sees the devices of the grid's buildings only.
            let grid = APIUser(client, fixture, as: "grid")
            let seen = try await grid.call("/api/v1/communities/\(c)/devices")["items"] as? [[String: Any]] ?? []
            #expect(
                seen.contains { $0["deviceName"] as? String == "door-101" }
                    && !seen.contains {
                        $0["deviceName"] as? String == "lobby-1" || outside.buildingId == gridHousehold.buildingId
                    })
            try await grid.call(
                "/api/v1/devices/\(pk)/lobby-1",
                expect: outside.buildingId == gridHousehold.buildingId ? .ok : .notFound)
            try await APIUser(client, fixture, as: "other-manager").call(
                "/api/v1/devices/\(pk)/door-101", expect: .notFound)

            // Edit: tags, interval, then disable.
            let patched = try await staff.call(
                "/api/v1/devices/\(pk)/lobby-1", .patch,
                ["tags": ["公共区域"], "reportIntervalSeconds": 600, "enabled": false])
            #expect(
                patched["status"] as? String == "disabled" && (patched["tags"] as? [String]) == ["公共区域"]
                    && patched["buildingId"] as? String == outside.buildingId)
            #expect(patched["silent"] as? Bool == false, "a disabled device is not silent, it is disabled")
            try await staff.call(
                "/api/v1/devices/\(pk)/lobby-1", .patch, ["householdId": "nope"], expect: .unprocessableContent)
            try await grid.call("/api/v1/devices/\(pk)/door-101", .patch, ["nickname": "x"], expect: .forbidden)
            let audit = try await APIUser(client, fixture, as: "manager").call("/api/v1/audit?action=device.disabled")
            #expect(audit["total"] as? Int == 1)
        }
    }

    @Test func telemetryShadowAndDiagnosisThroughTheAPI() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let pk = try #require(
                try await staff.call(
                    "/api/v1/communities/\(c)/products", .post, ["library": "environment_sensor"], expect: .created)[
                        "productKey"] as? String)
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post, ["productKey": pk, "deviceName": "env-1"], expect: .created)
            let device = try #require(try await fixture.store.device(productKey: pk, deviceName: "env-1"))
            let writer = TelemetryWriter(store: fixture.store, logger: quietLogger)
            let base: Millis = 1_800_000_000_000
            for i in 0..<120 {
                let values = [
                    ReportedValue(
                        identifier: "CurrentTemperature", json: "\(20 + i % 10)", number: Double(20 + i % 10),
                        time: base + Millis(i) * 1000)
                ]
                try await writer.record(
                    DeviceReport(
                        deviceId: device.id, communityId: c, productKey: pk, deviceName: "env-1",
                        receivedAt: base + Millis(i) * 1000, content: .properties(values)))
            }
            try await writer.record(
                DeviceReport(
                    deviceId: device.id, communityId: c, productKey: pk, deviceName: "env-1",
                    content: .refused(reason: "CurrentTemperature: above 120")))

            let uri =
                "/api/v1/devices/\(pk)/env-1/telemetry?property=CurrentTemperature&from=\(base)&to=\(base + 120_000)"
            let raw = try await staff.call(uri + "&limit=50")
            let newest = raw["points"] as? [[String: Any]] ?? []
            #expect(newest.count == 50 && raw["truncated"] as? Bool == true, "the newest 50, marked as cut short")
            #expect(
                newest.first?["t"] as? Int == Int(base) + 70_000 && newest.last?["t"] as? Int == Int(base) + 119_000)
            #expect(
                try await staff.call(uri + "&bucket=")["truncated"] as? Bool == false,
                "an empty bucket means raw points")
            let perMinute = try await staff.call(uri + "&bucket=60")["buckets"] as? [[String: Any]] ?? []
            #expect(
                perMinute.count == 2 && perMinute[0]["count"] as? Int == 60 && perMinute[0]["min"] as? Double == 20
                    && perMinute[0]["max"] as? Double == 29)
            #expect(perMinute[0]["avg"] as? Double == 24.5)
            try await staff.call("/api/v1/devices/\(pk)/env-1/telemetry?from=5&to=1", expect: .badRequest)
            try await staff.call(
                "/api/v1/devices/\(pk)/env-1/telemetry?property=CurrentTemperature&from=0&to=\(base)&bucket=1",
                expect: .badRequest)

            let detail = try await staff.call("/api/v1/devices/\(pk)/env-1")
            let diagnosis = try #require(detail["diagnosis"] as? [String: Any])
            #expect(
                diagnosis["messages"] as? Int == 121 && diagnosis["errors"] as? Int == 1
                    && diagnosis["lastError"] as? String == "CurrentTemperature: above 120")
            let shadow = try #require(detail["shadow"] as? [[String: Any]])
            #expect(
                shadow.count == 1 && shadow[0]["reported"] as? String == "29"
                    && shadow[0]["reportedVersion"] as? Int == 120)

            // Desired values: writable properties only, checked against the model; they wait for the device.
            let desired = try await staff.call(
                "/api/v1/devices/\(pk)/env-1/shadow/desired", .put, ["values": ["ReportInterval": 300]])
            #expect(
                desired["delivered"] as? Bool == false
                    && (desired["items"] as? [[String: Any]])?.first?["version"] as? Int == 1)
            let readOnly = try await staff.call(
                "/api/v1/devices/\(pk)/env-1/shadow/desired", .put, ["values": ["CurrentTemperature": 5]],
                expect: .unprocessableContent)
            #expect((readOnly["errors"] as? [[String: Any]])?.first?["field"] as? String == "values.CurrentTemperature")
            try await staff.call(
                "/api/v1/devices/\(pk)/env-1/shadow/desired", .put, ["values": ["ReportInterval": 1]],
                expect: .unprocessableContent)
            try await staff.call(
                "/api/v1/devices/\(pk)/env-1/shadow/desired", .put,
                ["values": ["ReportInterval": ["value": 60, "time": 1]]], expect: .unprocessableContent)
            try await APIUser(client, fixture, as: "guard").call(
                "/api/v1/devices/\(pk)/env-1/shadow/desired", .put, ["values": ["ReportInterval": 60]],
                expect: .forbidden)
            let after =
                try await APIUser(client, fixture, as: "guard").call("/api/v1/devices/\(pk)/env-1/shadow")["items"]
                as? [[String: Any]] ?? []
            #expect(
                after.contains {
                    $0["identifier"] as? String == "ReportInterval" && $0["desired"] as? String == "300"
                        && $0["deliveredAt"] == nil
                })
        }
    }

    @Test func faultsInQueriesAndBodiesAreNamed() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            func field(_ answer: [String: Any]) -> [String] {
                (answer["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
            }
            let pk = try #require(
                try await staff.call(
                    "/api/v1/communities/\(c)/products", .post, ["library": "street_light"], expect: .created)[
                        "productKey"] as? String)

            // A number an integer field cannot hold is that field's fault, not "not valid JSON".
            for number in ["10.5", "1e300", "99999999999999999999999"] {
                let answer = try await staff.call(
                    "/api/v1/communities/\(c)/devices", .post,
                    raw:
                        #"{"productKey": "\#(pk)", "deviceName": "lamp-x", "nickname": "1.5", "reportIntervalSeconds": \#(number)}"#,
                    expect: .unprocessableContent)
                #expect(field(answer) == ["reportIntervalSeconds"], "\(number): \(answer)")
            }
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post, raw: #"{"productKey": "\#(pk)", "deviceName": 1.5}"#,
                expect: .unprocessableContent)
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post, raw: #"{"productKey": "\#(pk)", "#, expect: .badRequest)
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post, ["productKey": pk, "deviceName": "lamp-1"], expect: .created)

            // History: a property outside the thing model, one fault per field, a range from 0.
            let telemetry = "/api/v1/devices/\(pk)/lamp-1/telemetry"
            #expect(field(try await staff.call(telemetry + "?property=Nope", expect: .badRequest)) == ["property"])
            #expect(
                field(
                    try await staff.call(
                        telemetry + "?property=" + String(repeating: "P", count: 65), expect: .badRequest)) == [
                        "property"
                    ])
            #expect(
                try await staff.call(telemetry + "?property=LightSwitch&to=1")["from"] as? Int == 0,
                "the 24 hours before 1 ms start at 0")

            // `true` for a bool property is kept, and sent, as Alink's 1.
            let desired = try await staff.call(
                "/api/v1/devices/\(pk)/lamp-1/shadow/desired", .put, ["values": ["LightSwitch": true]])
            #expect((desired["items"] as? [[String: Any]])?.first?["value"] as? String == "1", "\(desired)")
            let shadow = try await staff.call("/api/v1/devices/\(pk)/lamp-1/shadow")["items"] as? [[String: Any]] ?? []
            #expect(shadow.first { $0["identifier"] as? String == "LightSwitch" }?["desired"] as? String == "1")
        }
    }

    @Test func shadowDocumentsAreReadAndChangedWithVersions() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let product = try await staff.call(
                "/api/v1/communities/\(c)/products", .post, ["library": "barrier_gate", "dynamicRegistration": true],
                expect: .created)
            #expect(product["dynamicRegistration"] as? Bool == true, "gateways may ask for this product's secrets")
            let pk = try #require(product["productKey"] as? String)
            #expect(try await staff.call("/api/v1/products/\(pk)")["dynamicRegistration"] as? Bool == true)
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post, ["productKey": pk, "deviceName": "gate-1"], expect: .created)
            let path = "/api/v1/devices/\(pk)/gate-1/shadow/document"

            // Before any change: an empty document at version 0.
            let empty = try await staff.call(path)
            #expect(empty["version"] as? Int == 0 && (empty["state"] as? [String: Any])?.isEmpty == true)

            // Desired attributes are free-form JSON (not the thing model's); the device is offline.
            let first = try await staff.call(
                path, .patch, ["desired": ["openHours": ["from": "06:00", "to": "23:00"], "plates": ["浙A12345"]]])
            #expect(first["version"] as? Int == 1 && first["delivered"] as? Bool == false)
            let desired = try #require((first["state"] as? [String: Any])?["desired"] as? [String: Any])
            #expect(
                (desired["openHours"] as? [String: Any])?["to"] as? String == "23:00"
                    && desired["plates"] as? [String] == ["浙A12345"])
            #expect(
                (((first["metadata"] as? [String: Any])?["desired"] as? [String: Any])?["plates"] as? [String: Any])?[
                    "timestamp"] is Int)

            // With a version: it must be above the document's, as Alibaba's shadow has it.
            let conflict = try await staff.call(
                path, .patch, ["desired": ["plates": []], "version": 1], expect: .conflict)
            #expect("\(conflict)".contains("version"))
            let second = try await staff.call(path, .patch, ["desired": ["plates": NSNull()], "version": 5])
            #expect(
                second["version"] as? Int == 5
                    && ((second["state"] as? [String: Any])?["desired"] as? [String: Any])?["plates"] == nil)
            #expect(try await staff.call(path)["version"] as? Int == 5)
            let cleared = try await staff.call(path, .patch, ["desired": NSNull()])
            #expect(cleared["version"] as? Int == 6 && (cleared["state"] as? [String: Any])?["desired"] == nil)

            // Faults are named; nothing changes.
            func fields(_ answer: [String: Any]) -> [String] {
                (answer["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
            }
            // The highest version leaves room for the next: 2^63 − 1 is refused (it stopped the
            // server once, at the next change's + 1), 2^53 − 1 taken and followed.
            #expect(
                fields(
                    try await staff.call(
                        path, .patch, ["desired": ["a": 1], "version": Int64.max], expect: .unprocessableContent))
                    == ["version"])
            let top = try await staff.call(path, .patch, ["desired": ["a": 1], "version": 9_007_199_254_740_991])
            #expect(top["version"] as? Int == 9_007_199_254_740_991)
            let after = try await staff.call(path, .patch, ["desired": NSNull()])
            #expect(after["version"] as? Int == 9_007_199_254_740_992)
            #expect(
                fields(try await staff.call(path, .patch, ["version": 9], expect: .unprocessableContent)) == ["desired"]
            )
            #expect(
                fields(
                    try await staff.call(path, .patch, ["desired": [:] as [String: Any]], expect: .unprocessableContent)
                ) == ["desired"])
            #expect(
                fields(try await staff.call(path, .patch, ["desired": "on"], expect: .unprocessableContent)) == [
                    "desired"
                ])
            #expect(
                fields(
                    try await staff.call(
                        path, .patch, ["desired": ["a": 1], "version": 0], expect: .unprocessableContent)) == [
                        "version"
                    ])
            #expect(
                fields(
                    try await staff.call(
                        path, .patch, ["desired": ["a": 1], "reported": ["a": 2]], expect: .unprocessableContent)) == [
                        "reported"
                    ])
            let huge = try await staff.call(
                path, .patch, ["desired": ["blob": String(repeating: "x", count: 17_000)]],
                expect: .unprocessableContent)
            #expect(fields(huge) == ["desired"])
            #expect(try await staff.call(path)["version"] as? Int == 9_007_199_254_740_992)

            // A guard may look, not change.
            let guardUser = APIUser(client, fixture, as: "guard")
            #expect(try await guardUser.call(path)["version"] as? Int == 9_007_199_254_740_992)
            try await guardUser.call(path, .patch, ["desired": ["a": 1]], expect: .forbidden)
            let audit = try await fixture.store.read { db in
                try await db.count("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'device.shadow-document'")
            }
            #expect(audit == 5, "each accepted change is in the audit log")
        }
    }

    @Test func firmwareIsForThoseWhoManageDevicesAndDownloadsNeedAnOfferedToken() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let pk = try #require(
                try await staff.call(
                    "/api/v1/communities/\(c)/products", .post, ["library": "access_controller"], expect: .created)[
                        "productKey"] as? String)
            try await staff.call(
                "/api/v1/communities/\(c)/devices", .post, ["productKey": pk, "deviceName": "door-1"], expect: .created)
            let path = "/api/v1/products/\(pk)/firmware"
            let package = try await staff.call(path + "?version=1.2.0", .post, raw: "firmware bytes", expect: .created)
            #expect(
                package["sha256"] as? String == "dbf1bce8c5e41be6f0c17880b1ed3033714b384b2c2232b1c7b4f3fda822b6ce"
                    && package["size"] as? Int == 14)
            let id = try #require(package["id"] as? String)

            // A guard sees the packages, and may not add one or start upgrades.
            let guardUser = APIUser(client, fixture, as: "guard")
            #expect((try await guardUser.call(path)["items"] as? [[String: Any]])?.count == 1)
            try await guardUser.call(path + "?version=1.3.0", .post, raw: "x", expect: .forbidden)
            try await guardUser.call(path + "/\(id)/upgrades", .post, ["all": true], expect: .forbidden)
            // Outside the community nothing is known of the product.
            try await APIUser(client, fixture, as: "other-manager").call(path, expect: .notFound)

            // Without a broker (or an address devices reach) no upgrade starts, and it says why.
            let refused = try await staff.call(
                path + "/\(id)/upgrades", .post, ["devices": ["door-1"]], expect: .conflict)
            #expect("\(refused)".contains("device-url"))
            #expect((try await staff.call(path + "/\(id)/upgrades")["items"] as? [[String: Any]])?.isEmpty == true)

            // A token that was never offered downloads nothing, and needs no account to be told so.
            try await client.execute(uri: "/ota/" + String(repeating: "a", count: 43), method: .get) {
                #expect($0.status == .notFound)
            }
            try await client.execute(uri: "/ota/" + String(repeating: "a", count: 200), method: .get) {
                #expect($0.status == .notFound)
            }
        }
    }

    @Test func bulkRegistrationChecksEveryRowFirst() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = APIUser(client, fixture, as: "staff")
            let pk = try #require(
                try await staff.call(
                    "/api/v1/communities/\(c)/products", .post, ["library": "smoke_detector"], expect: .created)[
                        "productKey"] as? String)
            let household = try await fixture.store.household(fixture.gridHousehold, scope: .everything)
            let header = "productKey,deviceName,nickname,building,unit,room,location,tags,reportIntervalSeconds\n"
            let good =
                "\(pk),smoke-1,烟感一,\(household.buildingName),\(household.unitName),\(household.room),,独居老人;高龄,3600\n\(pk),smoke-2,,\(household.buildingName),,,楼道,,\n"
            let bad =
                good
                + "\(pk),smoke-1,,,,,,,\nnope,smoke-9,,,,,,,\n\(pk),smoke-3,,没有这栋楼,,,,,\n\(pk),smoke-4,,,,,,,soon\n"
            let refused = try await staff.call(
                "/api/v1/communities/\(c)/devices/import", .post, raw: header + bad, expect: .unprocessableContent)
            let fields = (refused["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
            #expect(
                fields == [
                    "line 4: deviceName", "line 5: productKey", "line 6: building", "line 7: reportIntervalSeconds",
                ])
            #expect(
                try await staff.call("/api/v1/communities/\(c)/devices")["total"] as? Int == 0, "nothing registered")
            let done = try await staff.call(
                "/api/v1/communities/\(c)/devices/import", .post, raw: header + good, expect: .created)
            let registered = done["registered"] as? [[String: Any]] ?? []
            #expect(
                registered.count == 2 && registered.allSatisfy { ($0["deviceSecret"] as? String)?.isEmpty == false })
            let one = try await staff.call("/api/v1/devices/\(pk)/smoke-1")
            #expect(
                one["householdId"] as? String == household.id && one["tags"] as? [String] == ["独居老人", "高龄"]
                    && one["reportIntervalSeconds"] as? Int == 3600)
            try await staff.call(
                "/api/v1/communities/\(c)/devices/import", .post, raw: "wrong,header\n", expect: .badRequest)
            try await staff.call(
                "/api/v1/communities/\(c)/devices/import", .post,
                raw: "productKey,deviceName,tags,tags\n\(pk),smoke-8,a,b\n", expect: .badRequest)
            // A name already registered is found before anything is written, with its line.
            let again = try await staff.call(
                "/api/v1/communities/\(c)/devices/import", .post,
                raw: header + "\(pk),smoke-7,,,,,,,\n\(pk),smoke-2,,,,,,,\n", expect: .unprocessableContent)
            #expect(
                (again["errors"] as? [[String: Any]])?.compactMap { $0["field"] as? String } == ["line 3: deviceName"])
            try await staff.call("/api/v1/devices/\(pk)/smoke-7", expect: .notFound)
        }
    }

    @Test func bulkRegistrationRefusesWhatItWouldChangeOrDrop() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let uri = "/api/v1/communities/\(c)/devices/import"
            let staff = APIUser(client, fixture, as: "staff")
            let pk = try #require(
                try await staff.call(
                    "/api/v1/communities/\(c)/products", .post, ["library": "smoke_detector"], expect: .created)[
                        "productKey"] as? String)
            // A nickname saved as GBK (烟感) would be stored as U+FFFD: refused, with its line.
            let gbk = Array("productKey,deviceName,nickname\n\(pk),smoke-1,".utf8) + [0xD1, 0xCC, 0xB8, 0xD0, 0x0A]
            let notUTF8 = try await client.execute(
                uri: uri, method: .post, headers: fixture.bearer("staff"), body: ByteBuffer(bytes: gbk)
            ) { r in
                #expect(r.status == .badRequest)
                return try r.json()
            }
            #expect(
                notUTF8["detail"] as? String
                    == "body cannot be read: line 2: holds bytes that are not UTF-8 (save the file as UTF-8)")
            let unclosed = try await staff.call(
                uri, .post, raw: "productKey,deviceName\n\(pk),\"smoke-1\n", expect: .badRequest)
            #expect(unclosed["detail"] as? String == "body cannot be read: line 2: a quoted field is not closed")
            // A cell past the header belongs to no column; it is not dropped unseen.
            let extra = try await staff.call(
                uri, .post, raw: "productKey,deviceName\n\(pk),smoke-1\n\(pk),smoke-2,c2,extra\n",
                expect: .unprocessableContent)
            #expect(
                (extra["errors"] as? [[String: Any]])?.map { "\($0["field"] ?? "") \($0["reason"] ?? "")" } == [
                    "line 3: row has 4 cells; the header has 2"
                ])
            let commas = try await staff.call(
                uri, .post, raw: "productKey,deviceName\n\(pk),smoke-3" + String(repeating: ",", count: 100_000) + "\n",
                expect: .unprocessableContent)
            #expect((commas["errors"] as? [[String: Any]])?.first?["field"] as? String == "line 2: row")
            #expect(
                try await staff.call("/api/v1/communities/\(c)/devices")["total"] as? Int == 0, "nothing registered")
            // Fewer cells than the header read as empty ones.
            try await staff.call(
                uri, .post, raw: "productKey,deviceName,nickname,location\n\(pk),smoke-4\n", expect: .created)
            let short = try await staff.call("/api/v1/devices/\(pk)/smoke-4")
            #expect(short["nickname"] as? String == "" && short["location"] as? String == "")
        }
    }
}

@Suite("Device gateway: what a gateway may use")
struct GatewayPolicyTests {
    static func device(_ productKey: String, _ deviceName: String) -> Device {
        Device(
            id: deviceName, communityId: "c", productId: productKey, productKey: productKey, deviceName: deviceName,
            nickname: "", secretCipher: "",
            status: .online, location: "", tags: "[]", firmware: "", createdAt: 0)
    }

    /// A gateway answers its attached sub-devices' sync calls on their RRPC topics, as the
    /// sub-device itself would; the RRPC topics of any other device stay closed to it.
    @Test func aGatewayAnswersSyncCallsForItsAttachedSubDevicesOnly() {
        let session = DeviceSession(clientId: "gw-1", device: Self.device("a1Gw", "gw-1"), isGateway: true)
        session.state.withLock { $0.attached = ["a1Smoke/smoke-1"] }
        let policy = GatewayPolicy(own: AlinkSignIn.policy(productKey: "a1Gw", deviceName: "gw-1"), session: session)
        #expect(policy.mayPublish(to: "/ext/rrpc/17/sys/a1Gw/gw-1/thing/service/Reboot"), "its own calls")
        #expect(policy.mayPublish(to: "/ext/rrpc/18/sys/a1Smoke/smoke-1/thing/service/Mute"))
        #expect(policy.maySubscribe(to: "/ext/rrpc/+/sys/a1Smoke/smoke-1/thing/service/+"))
        #expect(policy.maySubscribe(to: "/ext/rrpc/+/sys/a1Smoke/smoke-1/#"))
        #expect(!policy.mayPublish(to: "/ext/rrpc/18/sys/a1Smoke/smoke-2/thing/service/Mute"), "not attached")
        #expect(!policy.maySubscribe(to: "/ext/rrpc/+/sys/a1Smoke/smoke-2/#"))
        #expect(!policy.maySubscribe(to: "/ext/rrpc/+/sys/a1Smoke/+/#"))
        #expect(!policy.maySubscribe(to: "/ext/rrpc/+/#"))
        #expect(
            !policy.mayPublish(to: "/ext/rrpc/18/sys/a1Smoke/smoke-1/thing/event/property/post"),
            "only answers to service calls")
        #expect(!policy.mayPublish(to: "/ext/rrpc/18/sys/a1Smoke/smoke-1/thing/service/property/set"))
        session.state.withLock { $0.attached = [] }
        #expect(!policy.mayPublish(to: "/ext/rrpc/18/sys/a1Smoke/smoke-1/thing/service/Mute"), "detached")
    }

    /// A gateway upgrades its attached sub-devices' firmware for them: it tells their versions and
    /// progress and hears their upgrades, and nobody else's.
    @Test func aGatewayUpgradesItsAttachedSubDevicesOnly() {
        let session = DeviceSession(clientId: "gw-1", device: Self.device("a1Gw", "gw-1"), isGateway: true)
        session.state.withLock { $0.attached = ["a1Door/door-1"] }
        let policy = GatewayPolicy(own: AlinkSignIn.policy(productKey: "a1Gw", deviceName: "gw-1"), session: session)
        #expect(
            policy.mayPublish(to: "/ota/device/inform/a1Door/door-1")
                && policy.mayPublish(to: "/ota/device/progress/a1Door/door-1"))
        #expect(policy.maySubscribe(to: "/ota/device/upgrade/a1Door/door-1"))
        #expect(!policy.mayPublish(to: "/ota/device/upgrade/a1Door/door-1"), "offers come from Linli")
        #expect(!policy.mayPublish(to: "/ota/device/progress/a1Door/door-2"), "not attached")
        #expect(!policy.maySubscribe(to: "/ota/device/upgrade/a1Door/+"))
        #expect(!policy.maySubscribe(to: "/ota/device/upgrade/#"))
        #expect(policy.mayPublish(to: "/ota/device/progress/a1Gw/gw-1"), "its own")
    }
}

@Suite("Device gateway: values as stored")
struct ReportedValueTextTests {
    /// The shadow and history keep each value's JSON text; numbers and booleans take a shorter
    /// road there than other values, and must come out the same.
    @Test func valuesAreWrittenAsJSONWritesThem() {
        let values: [JSONValue] = [
            .int(0), .int(-7), .int(Int64.max), .int(Int64.min), .bool(true), .bool(false), .double(21.5),
            .double(-0.25),
            .double(1e21), .double(1e-7), .double(0.30000000000000004), .double(.nan), .double(.infinity),
            .string("a\"b"),
            .null, .array([.int(1)]), .object(["k": .double(2.5)]),
        ]
        for value in values {
            #expect(DeviceGateway.jsonText(value) == String(decoding: value.serialized(), as: UTF8.self), "\(value)")
        }
    }

    /// A device's own time is the value's time; a bool is kept as Alink's 0 or 1.
    @Test func reportedValuesTakeTheDevicesTimeAndBoolsAsNumbers() throws {
        let model = try #require(ProductLibrary.entry("street_light")).model
        let arrived: Millis = 1_800_000_000_000
        let params = JSONValue.parse(
            Data(#"{"LightSwitch": {"value": true, "time": 1799999999}, "Brightness": 40}"#.utf8))!
        let values = DeviceGateway.reportedValues(params, model: model, receivedAt: arrived)
        let light = try #require(values.first { $0.identifier == "LightSwitch" })
        #expect(light.json == "1" && light.number == 1 && light.time == 1_799_999_999_000)
        #expect(values.first { $0.identifier == "Brightness" }?.time == arrived)
    }

    /// A water meter that wakes once a day posts its hourly readings and a leak it saw, each at its time.
    @Test func aBatchPostIsCheckedWholeAndKeepsEachTime() throws {
        let model = try #require(ProductLibrary.entry("water_meter")).model
        let now: Millis = 1_800_000_000_000
        func check(_ json: String) -> ([ValueError], DeviceReport.Content?) {
            DeviceGateway.batch(JSONValue.parse(Data(json.utf8))!, model: model, receivedAt: now)
        }
        let (faults, content) = check(
            """
            {"properties": {"TotalFlow": [{"value": 10.5, "time": \(now - 7_200_000)}, {"value": 10.75, "time": \(now - 3_600_000)}],
                            "ValveState": [{"value": true, "time": \(now - 60_000)}]},
             "events": {"Leakage": [{"value": {}, "time": \(now - 1_800_000)}]}}
            """)
        #expect(faults.isEmpty)
        guard case let .batch(values, events)? = content else {
            Issue.record("not a batch: \(String(describing: content))")
            return
        }
        #expect(values.map(\.identifier) == ["TotalFlow", "TotalFlow", "ValveState"])
        #expect(values.map(\.time) == [now - 7_200_000, now - 3_600_000, now - 60_000])
        #expect(values[1].number == 10.75 && values[2].json == "1", "a bool is kept as 0 or 1")
        #expect(events == [RaisedEvent(identifier: "Leakage", type: "alert", valuesJSON: "{}", time: now - 1_800_000)])

        // Every fault is named with its place; one bad entry refuses the whole post.
        let (bad, none) = check(
            """
            {"properties": {"TotalFlow": [{"value": 1, "time": \(now)}, {"value": -5, "time": \(now)}, {"value": 2, "time": \(now + 7_200_000)}, 7],
                            "Colour": [{"value": 1}]},
             "events": {"Leakage": [{"value": {}, "time": "yesterday"}], "Fire": [{"value": {}}]}, "extra": 1}
            """)
        #expect(none == nil)
        #expect(
            Set(bad.map(\.path)) == [
                "extra", "properties.TotalFlow[1].value", "properties.TotalFlow[2].time", "properties.TotalFlow[3]",
                "properties.Colour[0]", "events.Leakage[0].time", "events.Fire[0]",
            ])
        #expect(check("{}").0.map(\.path) == ["params"], "an empty batch is refused")
        #expect(check(#"{"properties": []}"#).0.map(\.path) == ["properties"])
        let many = (0..<1_001).map { _ in #"{"value": 1, "time": \#(now)}"# }.joined(separator: ",")
        #expect(check(#"{"properties": {"TotalFlow": [\#(many)]}}"#).0.first?.reason.contains("at most 1000") == true)
    }
}
