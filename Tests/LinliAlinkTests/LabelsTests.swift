import Foundation
import LinliThings
import Testing

@testable import LinliAlink

@Suite("Alink device labels")
struct LabelsTests {
    func params(_ text: String) throws -> JSONValue { try #require(JSONValue.parse(Data(text.utf8))) }

    func updateFault(_ text: String) throws -> String? {
        if case let .failure(f) = AlinkLabels.parseUpdate(try params(text)) { return f.path }
        return nil
    }

    @Test func updatesAndDeletesAreReadAsLinkKitSendsThem() throws {
        let labels = try AlinkLabels.parseUpdate(
            params(
                #"[{"attrKey":"vendor","attrValue":"海康威视"},{"attrKey":"batch.no","attrValue":2024},{"attrKey":"vendor","attrValue":"Hikvision"}]"#
            )
        ).get()
        #expect(
            labels.map(\.key) == ["vendor", "batch.no", "vendor"]
                && labels.map(\.value) == ["海康威视", "2024", "Hikvision"])
        #expect(
            try AlinkLabels.parseDelete(params(#"[{"attrKey":"vendor"},{"attrKey":"batch.no"}]"#)).get() == [
                "vendor", "batch.no",
            ])
        #expect(AlinkTopic.parse("/sys/a1K/d1/thing/deviceinfo/update")?.kind == .labelsUpdate)
        #expect(AlinkTopic.parse("/sys/a1K/d1/thing/deviceinfo/delete")?.kind == .labelsDelete)
    }

    @Test func faultsNameTheEntryAndField() throws {
        #expect(try updateFault(#"{"attrKey":"a","attrValue":"b"}"#) == "params")
        #expect(try updateFault("[]") == "params")
        let many = (0...AlinkLabels.perRequest).map { #"{"attrKey":"k\#($0)","attrValue":"v"}"# }.joined(separator: ",")
        #expect(try updateFault("[\(many)]") == "params")
        #expect(try updateFault(#"[{"attrKey":"ok","attrValue":"v"}, "x"]"#) == "params[1]")
        #expect(try updateFault(#"[{"attrValue":"v"}]"#) == "params[0].attrKey")
        #expect(try updateFault(#"[{"attrKey":"has space","attrValue":"v"}]"#) == "params[0].attrKey")
        #expect(try updateFault(#"[{"attrKey":"厂商","attrValue":"v"}]"#) == "params[0].attrKey")
        #expect(
            try updateFault(#"[{"attrKey":"\#(String(repeating: "k", count: 31))","attrValue":"v"}]"#)
                == "params[0].attrKey")
        #expect(try updateFault(#"[{"attrKey":"k"}]"#) == "params[0].attrValue")
        #expect(try updateFault(#"[{"attrKey":"k","attrValue":""}]"#) == "params[0].attrValue")
        #expect(try updateFault(#"[{"attrKey":"k","attrValue":{"a":1}}]"#) == "params[0].attrValue")
        #expect(try updateFault(#"[{"attrKey":"k","attrValue":"a\u0007b"}]"#) == "params[0].attrValue")
        // 64 Chinese characters are 128 wide; one more is too wide. 128 ASCII fit.
        #expect(try updateFault(#"[{"attrKey":"k","attrValue":"\#(String(repeating: "海", count: 64))"}]"#) == nil)
        #expect(
            try updateFault(#"[{"attrKey":"k","attrValue":"\#(String(repeating: "海", count: 65))"}]"#)
                == "params[0].attrValue")
        #expect(try updateFault(#"[{"attrKey":"k","attrValue":"\#(String(repeating: "a", count: 128))"}]"#) == nil)
        if case let .failure(f) = AlinkLabels.parseDelete(try params(#"[{"attrKey":"ok"},{"attrKey":7}]"#)) {
            #expect(f.path == "params[1].attrKey" && f.description.hasPrefix("params[1].attrKey: "))
        } else {
            Issue.record("a delete with a numeric key was accepted")
        }
    }
}
