import Foundation
import Testing

@testable import LinliThings

@Suite("Thing models: what devices and people send")
struct DeviceInputTests {
    static let arrived: Int64 = 1_800_000_000_000

    @Test func aDevicesTimeIsMillisecondsOrSecondsWithinSaneBounds() throws {
        func time(_ json: String?) throws(ValueError) -> Int64 {
            try ThingModel.measurementTime(
                json.map { JSONValue.parse(Data($0.utf8))! }, receivedAt: Self.arrived, path: "T.time")
        }
        #expect(try time(nil) == Self.arrived, "no time: when it arrived")
        #expect(try time("1799999990000") == 1_799_999_990_000)
        #expect(try time("1799999990") == 1_799_999_990_000, "seconds are taken as seconds")
        #expect(
            try time("\(Self.arrived + ThingModel.measurementLead)") == Self.arrived + ThingModel.measurementLead,
            "up to an hour ahead")
        for (bad, kind) in [
            ("9223372036854775807", ValueError.Kind.outOfRange),
            ("\(Self.arrived + ThingModel.measurementLead + 1)", .outOfRange),
            ("-5", .outOfRange), ("-9223372036854775808", .outOfRange), ("1", .outOfRange), ("0", .outOfRange),
            ("1e30", .typeMismatch), ("1.5", .typeMismatch),
            (#""1800000000000""#, .typeMismatch), ("null", .typeMismatch),
        ] {
            do {
                _ = try time(bad)
                Issue.record("\(bad) was taken as a time")
            } catch {
                #expect(error.path == "T.time" && error.kind == kind, "\(bad): \(error)")
            }
        }
    }

    @Test func aPostWithABadTimeIsRefusedNamingTheTime() throws {
        let m = try ThingModelTests.model()
        func faults(_ json: String) -> [ValueError] {
            m.validateProperties(JSONValue.parse(Data(json.utf8))!, receivedAt: Self.arrived)
        }
        #expect(faults(#"{"CurrentTemperature": {"value": 22, "time": 1799999999000}}"#).isEmpty)
        #expect(
            faults(#"{"CurrentTemperature": {"value": 4, "time": 9223372036854775807}}"#).map(\.path) == [
                "CurrentTemperature.time"
            ])
        #expect(faults(#"{"CurrentTemperature": {"value": 4, "time": "abc"}}"#).map(\.kind) == [.typeMismatch])
        // Both faults of one property are told.
        #expect(
            faults(#"{"CurrentTemperature": {"value": 500, "time": -5}}"#).map(\.path) == [
                "CurrentTemperature.time", "CurrentTemperature",
            ])
        // A property set from the platform carries no time to check.
        #expect(
            m.validateProperties(
                JSONValue.parse(Data(#"{"LightSwitch": 1}"#.utf8))!, writing: true, receivedAt: Self.arrived
            ).isEmpty)
    }

    @Test func boolsTravelAsZeroOrOneAsAlinkHasThem() throws {
        let m = try ThingModelTests.model()
        let given = JSONValue.parse(
            Data(#"{"LightSwitch": true, "Mode": 1, "Label": "true", "Position": {"Floor": 2}}"#.utf8))!
        #expect(
            m.normalizedProperties(given) == JSONValue.parse(
                Data(#"{"LightSwitch": 1, "Mode": 1, "Label": "true", "Position": {"Floor": 2}}"#.utf8))!)
        #expect(
            m.normalizedProperties(JSONValue.parse(Data(#"{"LightSwitch": false}"#.utf8))!)
                == .object(["LightSwitch": .int(0)]))
        let inStruct = ThingModel.DataType.structure([
            ThingModel.Field(identifier: "On", name: "on", dataType: .bool(names: ["0": "off", "1": "on"]))
        ])
        #expect(inStruct.normalized(.object(["On": .bool(true)])) == .object(["On": .int(1)]))
        #expect(
            ThingModel.DataType.array(size: 2, item: .bool(names: ["0": "off", "1": "on"])).normalized(
                .array([.bool(false), .bool(true)])) == .array([.int(0), .int(1)]))
        #expect(
            ThingModel.DataType.text(maxLength: 8).normalized(.bool(true)) == .bool(true),
            "only bools of bool properties change")
    }
}
