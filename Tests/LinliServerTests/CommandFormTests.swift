import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import LinliThings
import Testing

@testable import LinliDevices
@testable import LinliHTTP

/// A device's commands as forms made from its thing model: a field of its type for each writable
/// property or service input, what was typed turned into the parameters, faults beside their fields.
@Suite("Device commands as forms from the thing model")
struct CommandFormTests {
    static let light = ProductLibrary.entry("street_light")!.model

    @Test func fieldsBecomeParametersOfTheirTypes() {
        let (params, faults) = CommandForm.parameters(
            Self.light, service: "property.set",
            form: [
                "in.property.set.LightSwitch": "1", "in.property.set.Brightness": " 80 ", "in.property.set.Power": "5",
            ])
        #expect(params == ["LightSwitch": .int(1), "Brightness": .int(80)], "Power is read-only: not a field")
        #expect(faults.isEmpty)
        let bad = CommandForm.parameters(
            Self.light, service: "property.set", form: ["in.property.set.Brightness": "很亮"])
        #expect(bad.params.isEmpty && bad.faults == ["Brightness": "int"])
        let schedule = CommandForm.parameters(
            Self.light, service: "SetSchedule",
            form: ["in.SetSchedule.OnTime": "18:30", "in.SetSchedule.OffTime": "", "in.property.set.Brightness": "1"])
        #expect(schedule.params == ["OnTime": .string("18:30")], "only the chosen command's filled fields")
    }

    @Test func theDevicePageOffersEachCommandAsAFormAndNamesTheFieldAtFault() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let token = ["Authorization": "Bearer \(fixture.tokens["manager"]!)"]
            var headers = HTTPFields.json
            for (k, v) in token { headers[HTTPField.Name(k)!] = v }
            let pk = try await client.execute(
                uri: "/api/v1/communities/\(c)/products", method: .post, headers: headers,
                body: jsonBody(["library": "street_light"])
            ) { try $0.json()["productKey"] as? String ?? "" }
            let made = try await client.execute(
                uri: "/api/v1/communities/\(c)/devices", method: .post, headers: headers,
                body: jsonBody(["productKey": pk, "deviceName": "light-1"])
            ) { $0.status }
            #expect(made == .created)
            let staff = try await WebTests.signIn(client, "manager")
            let page = try await WorkFromAlarmsTests.page(client, "/console/d/\(pk)/light-1", staff.cookie)
            #expect(page.status == .ok)
            #expect(page.text.contains("<option value=\"property.set\" selected>"))
            #expect(page.text.contains("<option value=\"SetSchedule\">设置时间表</option>"))
            #expect(
                page.text.contains(
                    "type=\"number\" id=\"in.property.set.Brightness\" name=\"in.property.set.Brightness\" value=\"\" min=\"0\" max=\"100\" step=\"1\""
                ))
            #expect(page.text.contains("百分比（%）") && page.text.contains("范围 0 至 100"))
            #expect(page.text.contains("<option value=\"1\">开（1）</option>"), "a switch by its names")
            #expect(!page.text.contains("in.property.set.Power"), "a read-only property is no field")
            #expect(page.text.contains("id=\"in.SetSchedule.OnTime\"") && page.text.contains("最多 5 个字"))

            let wrong = try await WorkFromAlarmsTests.post(
                client, "/console/d/\(pk)/light-1/command", staff,
                "service=property.set&in.property.set.Brightness=\(WorkFromAlarmsTests.encoded("很亮"))&params=")
            #expect(wrong.status == .unprocessableContent)
            #expect(wrong.text.contains("id=\"in.property.set.Brightness-error\">必须是整数。"))
            #expect(wrong.text.contains("value=\"很亮\""), "what was typed is kept")
            let nothing = try await WorkFromAlarmsTests.post(
                client, "/console/d/\(pk)/light-1/command", staff, "service=property.set&params=")
            #expect(nothing.status == .unprocessableContent && nothing.text.contains("请至少填一项要设置的属性。"))
            let json = try await WorkFromAlarmsTests.post(
                client, "/console/d/\(pk)/light-1/command", staff,
                "service=property.set&params=\(WorkFromAlarmsTests.encoded("[1, 2]"))")
            #expect(json.status == .unprocessableContent && json.text.contains("JSON 参数必须是一个对象"))
            #expect(json.text.contains("<details id=\"command-advanced\" open>"), "the JSON written stays open")
        }
    }
}
