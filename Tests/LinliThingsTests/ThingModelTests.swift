import Foundation
import Testing

@testable import LinliThings

@Suite("Thing models")
struct ThingModelTests {
    static let sample = """
        {
          "schema": "https://iotx-tsl.oss-ap-southeast-1.aliyuncs.com/schema.json",
          "profile": {"productKey": "a1B2c3D4e5F"},
          "properties": [
            {"identifier": "CurrentTemperature", "name": "温度", "accessMode": "r", "required": true,
             "dataType": {"type": "float", "specs": {"min": "-40", "max": "120", "step": "0.1", "unit": "°C", "unitName": "摄氏度"}}},
            {"identifier": "LightSwitch", "name": "开关", "accessMode": "rw", "required": false,
             "dataType": {"type": "bool", "specs": {"0": "关", "1": "开"}}},
            {"identifier": "Mode", "name": "模式", "accessMode": "rw",
             "dataType": {"type": "enum", "specs": {"0": "自动", "1": "手动"}}},
            {"identifier": "Label", "name": "标签", "accessMode": "rw", "dataType": {"type": "text", "specs": {"length": "8"}}},
            {"identifier": "Position", "name": "位置", "accessMode": "r",
             "dataType": {"type": "struct", "specs": [
                {"identifier": "Floor", "name": "楼层", "dataType": {"type": "int", "specs": {"min": "-5", "max": "100", "step": "1"}}},
                {"identifier": "Room", "name": "房间", "dataType": {"type": "text", "specs": {"length": "16"}}}]}},
            {"identifier": "History", "name": "历史", "accessMode": "r",
             "dataType": {"type": "array", "specs": {"size": "3", "item": {"type": "int"}}}},
            {"identifier": "LastSeen", "name": "时间", "accessMode": "r", "dataType": {"type": "date", "specs": {}}}
          ],
          "events": [
            {"identifier": "post", "name": "post", "type": "info", "method": "thing.event.property.post", "outputData": []},
            {"identifier": "Overheat", "name": "过热", "type": "alert", "method": "thing.event.Overheat.post",
             "outputData": [{"identifier": "Temperature", "name": "温度", "dataType": {"type": "double", "specs": {"min": "0", "max": "200"}}}]}
          ],
          "services": [
            {"identifier": "set", "name": "set", "callType": "async", "method": "thing.service.property.set", "inputData": [], "outputData": []},
            {"identifier": "get", "name": "get", "callType": "async", "method": "thing.service.property.get", "inputData": ["CurrentTemperature"], "outputData": []},
            {"identifier": "Reboot", "name": "重启", "callType": "sync", "method": "thing.service.Reboot",
             "inputData": [{"identifier": "Delay", "name": "延时", "dataType": {"type": "int", "specs": {"min": "0", "max": "60"}}}], "outputData": []}
          ]
        }
        """

    static func model() throws -> ThingModel { try ThingModel.parse(tsl: Data(sample.utf8)) }

    @Test func parsesAlibabaTSL() throws {
        let m = try Self.model()
        #expect(m.productKey == "a1B2c3D4e5F")
        #expect(
            m.properties.map(\.identifier) == [
                "CurrentTemperature", "LightSwitch", "Mode", "Label", "Position", "History", "LastSeen",
            ])
        #expect(
            m.property("CurrentTemperature")?.dataType
                == .float(.init(min: -40, max: 120, step: 0.1, unit: "°C", unitName: "摄氏度")))
        #expect(m.event("Overheat")?.type == .alert)
        #expect(m.service("Reboot")?.callType == .sync)
        #expect(m.service("get")?.inputData.isEmpty == true)
    }

    @Test func exportsAndReimportsTheSameModel() throws {
        let m = try Self.model()
        #expect(try ThingModel.parse(tsl: m.tsl.serialized()) == m)
        for entry in ProductLibrary.all {
            #expect(try ThingModel.parse(tsl: entry.model.tsl.serialized()) == entry.model, "\(entry.key)")
        }
    }

    @Test func theLibraryCoversTheCommunitysDevices() {
        let keys = Set(ProductLibrary.all.map(\.key))
        #expect(
            keys.isSuperset(of: [
                "door_contact", "smoke_detector", "water_leak", "sos_button", "access_controller", "barrier_gate",
                "video_ai_camera",
                "smart_bin", "water_meter", "electricity_meter", "gas_meter", "lift_monitor", "hydrant_pressure",
                "environment_sensor", "street_light",
            ]))
        for entry in ProductLibrary.all {
            #expect(
                entry.model.event("post") != nil && entry.model.service("set") != nil
                    && entry.model.service("get") != nil, "\(entry.key)")
        }
    }

    static func fault(_ patch: (inout [String: Any]) -> Void) -> ThingModelError? {
        var root = try! JSONSerialization.jsonObject(with: Data(sample.utf8)) as! [String: Any]
        patch(&root)
        do {
            _ = try ThingModel.parse(tsl: try! JSONSerialization.data(withJSONObject: root))
            return nil
        } catch {
            return error
        }
    }

    static func setFirstProperty(_ root: inout [String: Any], _ key: String, _ value: Any) {
        var props = root["properties"] as! [[String: Any]]
        props[0][key] = value
        root["properties"] = props
    }

    @Test func malformedModelsAreRefusedWithThePathOfTheFault() {
        #expect((try? ThingModel.parse(tsl: Data("{".utf8))) == nil)
        #expect(Self.fault { Self.setFirstProperty(&$0, "identifier", "1bad") }?.path == "$.properties[0].identifier")
        #expect(Self.fault { Self.setFirstProperty(&$0, "accessMode", "x") }?.path == "$.properties[0].accessMode")
        #expect(
            Self.fault { Self.setFirstProperty(&$0, "dataType", ["type": "float", "specs": ["min": "ten"]]) }?.path
                == "$.properties[0].dataType.specs.min")
        #expect(
            Self.fault {
                Self.setFirstProperty(&$0, "dataType", ["type": "int", "specs": ["min": "10", "max": "1"]])
            }?.path == "$.properties[0].dataType.specs.max")
        #expect(
            Self.fault { Self.setFirstProperty(&$0, "dataType", ["type": "quaternion"]) }?.path
                == "$.properties[0].dataType.type")
        #expect(
            Self.fault { Self.setFirstProperty(&$0, "dataType", ["type": "bool", "specs": ["2": "maybe"]]) }?.path
                == "$.properties[0].dataType.specs.2")
        #expect(
            Self.fault {
                Self.setFirstProperty(
                    &$0, "dataType", ["type": "array", "specs": ["size": "3", "item": ["type": "date"]]])
            }?.path == "$.properties[0].dataType.specs.item.type")
        #expect(
            Self.fault { Self.setFirstProperty(&$0, "identifier", "LightSwitch") }?.reason.contains("twice") == true)
        #expect(Self.fault { $0["properties"] = "nope" }?.path == "$.properties")
    }

    @Test func numberSpecsAreRangesAValueCanMeet() {
        func fault(_ type: String, _ specs: [String: Any]) -> String? {
            Self.fault { Self.setFirstProperty(&$0, "dataType", ["type": type, "specs": specs]) }?.path
        }
        let specs = "$.properties[0].dataType.specs"
        // An int is a 32-bit value: bounds past that, or with a fraction, make a range no value meets.
        #expect(fault("int", ["min": "-99999999999999999999", "max": "99999999999999999999"]) == "\(specs).min")
        #expect(fault("int", ["min": "0", "max": "2147483648"]) == "\(specs).max")
        #expect(fault("int", ["max": 3_000_000_000]) == "\(specs).max")
        #expect(fault("int", ["min": "0.5"]) == "\(specs).min")
        #expect(fault("int", ["min": "1e3"]) == "\(specs).min", "an integer literal, as the export writes it")
        #expect(fault("int", ["step": "1.5"]) == "\(specs).step")
        #expect(fault("int", ["min": "-2147483648", "max": "2147483647", "step": "1"]) == nil)
        #expect(
            fault("int", ["min": -5, "max": 100, "step": ""]) == nil,
            "numbers as JSON numbers; an empty step is no step")
        // A step moves a value; 0 or less does not.
        #expect(fault("int", ["step": "0"]) == "\(specs).step")
        #expect(fault("float", ["step": "0"]) == "\(specs).step")
        #expect(fault("double", ["step": "-0.5"]) == "\(specs).step")
        #expect(fault("float", ["max": "inf"]) == "\(specs).max")
        #expect(fault("double", ["min": "nan"]) == "\(specs).min")
        #expect(
            fault("double", ["min": "-99999999999999999999", "max": "1e300", "step": "0.001"]) == nil,
            "a double's bounds need only be finite")
    }

    @Test func modelsStoredUnderEarlierRulesStillRead() throws {
        let stored =
            #"{"properties": [{"identifier": "Level", "name": "Level", "accessMode": "r", "dataType": {"type": "int", "specs": {"min": "-1e+20", "max": "100", "step": "0"}}}]}"#
        #expect(throws: ThingModelError.self) { try ThingModel.parse(tsl: Data(stored.utf8)) }
        let model = try #require(ThingModel.parse(stored: Data(stored.utf8)))
        #expect(model.property("Level")?.dataType == .int(.init(min: -1e20, max: 100, step: 0)))
        #expect(ThingModel.parse(stored: Data("{".utf8)) == nil)
        #expect(
            ThingModel.parse(
                stored: Data(
                    #"{"properties": [{"identifier": "L", "dataType": {"type": "int", "specs": {"step": "-1"}}}]}"#.utf8
                )) == nil,
            "a negative step was never accepted")
    }

    @Test func valuesAreCheckedAgainstTheModel() throws {
        let m = try Self.model()
        func faults(_ json: String, writing: Bool = false) -> [ValueError] {
            m.validateProperties(JSONValue.parse(Data(json.utf8))!, writing: writing)
        }
        #expect(
            faults(
                #"{"CurrentTemperature": 21.5, "LightSwitch": 1, "Mode": 0, "Label": "门厅", "LastSeen": "1700000000000"}"#
            ).isEmpty)
        #expect(
            faults(#"{"CurrentTemperature": {"value": 22, "time": 1700000000000}}"#).isEmpty, "values with their time")
        #expect(faults(#"{"Position": {"Floor": 3, "Room": "301"}, "History": [1, 2, 3]}"#).isEmpty)
        #expect(faults(#"{"CurrentTemperature": 121}"#).map(\.kind) == [.outOfRange])
        #expect(faults(#"{"CurrentTemperature": "hot"}"#).map(\.kind) == [.typeMismatch])
        #expect(faults(#"{"LightSwitch": 2}"#).map(\.kind) == [.typeMismatch])
        #expect(faults(#"{"Mode": 7}"#).map(\.kind) == [.outOfRange])
        #expect(faults(#"{"Label": "123456789"}"#).map(\.kind) == [.tooLong])
        #expect(faults(#"{"Position": {"Floor": 3.5}}"#).map(\.path) == ["Position.Floor"])
        #expect(faults(#"{"Position": {"Wing": "east"}}"#).map(\.kind) == [.unknownIdentifier])
        #expect(faults(#"{"History": [1, 2, 3, 4]}"#).map(\.kind) == [.tooLong])
        #expect(faults(#"{"History": [1, "two"]}"#).map(\.path) == ["History[1]"])
        #expect(faults(#"{"Colour": "red"}"#).map(\.kind) == [.unknownIdentifier])
        #expect(faults(#"{"CurrentTemperature": 20}"#, writing: true).map(\.kind) == [.notWritable])
        #expect(faults(#"[1]"#).map(\.kind) == [.typeMismatch])
        let overheat = m.event("Overheat")!
        #expect(
            m.validate(fields: overheat.outputData, JSONValue.parse(Data(#"{"Temperature": 150.5}"#.utf8))!).isEmpty)
        #expect(
            m.validate(fields: m.service("Reboot")!.inputData, JSONValue.parse(Data("{}".utf8))!, requireAll: true).map(
                \.kind) == [.missing])
    }
}
