import Foundation
import LinliThings
import Testing

@testable import LinliAlink

@Suite("Alink firmware upgrades")
struct OTATests {
    func params(_ text: String) throws -> JSONValue { try #require(JSONValue.parse(Data(text.utf8))) }

    @Test func topicsAreParsedAndAllowed() throws {
        #expect(AlinkTopic.parse("/ota/device/progress/a1K/door-1")?.kind == .firmwareProgress)
        #expect(AlinkTopic.parse("/ota/device/inform/a1K/door-1")?.kind == .firmwareInform)
        #expect(AlinkTopic.parse("/sys/a1K/door-1/thing/ota/firmware/get")?.kind == .firmwareGet)
        #expect(AlinkTopic.parse("/ota/device/upgrade/a1K/door-1") == nil, "offers go to devices, not from them")
        let policy = AlinkSignIn.policy(productKey: "a1K", deviceName: "door-1")
        #expect(policy.mayPublish(to: AlinkOTA.progressTopic("a1K", "door-1")))
        #expect(!policy.mayPublish(to: AlinkOTA.progressTopic("a1K", "door-2")))
        #expect(!policy.mayPublish(to: AlinkOTA.upgradeTopic("a1K", "door-1")))
        #expect(policy.maySubscribe(to: AlinkOTA.upgradeTopic("a1K", "door-1")))
    }

    @Test func progressIsReadAsSDKsWriteIt() throws {
        #expect(
            AlinkOTA.progress(try params(#"{"step":"95","desc":"flashing","module":"MCU"}"#))
                == AlinkOTA.Progress(step: 95, detail: "flashing", module: "MCU"))
        #expect(
            AlinkOTA.progress(try params(#"{"step":-3}"#)) == AlinkOTA.Progress(step: -3, detail: "", module: "default")
        )
        #expect(AlinkOTA.progress(try params(#"{"step":"-3"}"#))?.failed == true)
        for bad in [
            #"{"step":"101"}"#, #"{"step":"-5"}"#, #"{"step":"0"}"#, #"{"step":"half"}"#, #"{"step":50.5}"#,
            #"{"desc":"x"}"#, #"[1]"#,
        ] {
            #expect(AlinkOTA.progress(try params(bad)) == nil, "\(bad)")
        }
        #expect(AlinkOTA.failure(-3) == "digest mismatch" && AlinkOTA.failure(-1) == "upgrade failed")
    }

    @Test func anOfferCarriesWhatLinkKitChecks() throws {
        let package = AlinkOTA.Package(
            version: "2.0.1", module: "default", size: 300, url: "http://127.0.0.1:8080/ota/t", sha256: "ab", md5: "cd")
        let offer = try #require(JSONValue.parse(AlinkOTA.offer(package, id: 7)))
        #expect(offer["code"] == .string("1000") && offer["id"] == .int(7) && offer["message"] == .string("success"))
        #expect(
            offer["data"]?["signMethod"] == .string("SHA256") && offer["data"]?["sign"] == .string("ab")
                && offer["data"]?["md5"] == .string("cd"))
        #expect(offer["data"]?["size"] == .int(300) && offer["data"]?["url"] == .string("http://127.0.0.1:8080/ota/t"))
    }
}
