import Foundation
import LinliStorage
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliDevices
@testable import LinliLinkage
@testable import LinliMessaging
@testable import LinliServer
@testable import LinliWorkOrders

@Suite("Outbound channels")
struct OutboundTests {
    @Test func mailIsBase64SoNoLineCanEndItOrForgeAHeader() throws {
        let text = SMTP.compose(
            from: "linli@example.org", to: "a@example.org", subject: "停水 Water off\r\nBcc: x@evil.example",
            body: "line one\r\n.\r\nMAIL FROM:<x@evil.example>\n" + String(repeating: "长", count: 200), messageId: "m1",
            date: Date(timeIntervalSince1970: 0))
        let lines = text.components(separatedBy: "\r\n")
        #expect(
            lines.contains("Date: Thu, 01 Jan 1970 00:00:00 +0000") && lines.contains("Message-ID: <m1@example.org>"))
        #expect(
            !lines.contains { $0.hasPrefix("Bcc:") || $0 == "." || $0.hasPrefix("MAIL") },
            "title and body cannot add headers or end the message")
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"), "no bare line feeds")
        let subject = try #require(lines.first { $0.hasPrefix("Subject: =?UTF-8?B?") })
        let encoded = String(subject.dropFirst("Subject: =?UTF-8?B?".count).dropLast(2))
        #expect(String(decoding: try #require(Data(base64Encoded: encoded)), as: UTF8.self).hasPrefix("停水 Water off"))
        let blank = try #require(lines.firstIndex(of: ""))
        let body = lines[(blank + 1)...].joined()
        #expect(lines[(blank + 1)...].allSatisfy { $0.count <= 76 })
        #expect(
            String(decoding: try #require(Data(base64Encoded: body)), as: UTF8.self).hasSuffix(
                String(repeating: "长", count: 200)))
    }

    @Test func channelsComeWholeFromTheConfiguration() throws {
        func resolve(_ flags: [String: String]) throws -> ServerConfiguration {
            try ServerConfiguration.resolve(flags: flags, environment: [:], configFile: nil)
        }
        #expect(try resolve([:]).outbound.channels.isEmpty)
        let both = try resolve([
            "smtp": "smtp://user:p%40ss@mail.example.org:587", "mail-from": "linli@example.org",
            "sms-webhook": "https://sms.example.org/send", "sms-secret": "0123456789abcdef",
        ])
        #expect(both.outbound.channels == [.sms, .email])
        #expect(
            both.outbound.smtp
                == SMTPSettings(
                    host: "mail.example.org", port: 587, username: "user", password: "p@ss", from: "linli@example.org"))
        for (flags, key) in [
            (["smtp": "smtp://mail.example.org"], "--smtp"), (["mail-from": "a@example.org"], "--mail-from"),
            (["smtp": "http://mail.example.org", "mail-from": "a@example.org"], "--smtp"),
            (["smtp": "smtp://mail.example.org", "mail-from": "not an address"], "--mail-from"),
            (["sms-webhook": "https://sms.example.org"], "--sms-webhook"),
            (["sms-webhook": "ftp://sms.example.org", "sms-secret": "0123456789abcdef"], "--sms-webhook"),
            (["sms-webhook": "https://sms.example.org", "sms-secret": "short"], "--sms-secret"),
        ] {
            #expect(throws: ServerConfiguration.Invalid.self, "\(flags)") { try resolve(flags) }
            do { _ = try resolve(flags) } catch let invalid as ServerConfiguration.Invalid {
                #expect(invalid.key == key, "\(flags)")
            }
        }
    }

    @Test func devicesAreToldAnAddressTheyCanReach() throws {
        func resolve(_ flags: [String: String]) throws -> ServerConfiguration {
            try ServerConfiguration.resolve(flags: flags, environment: [:], configFile: nil)
        }
        #expect(try resolve([:]).downloadBase == "http://127.0.0.1:8080")
        #expect(try resolve(["http": "192.168.1.10:9000"]).downloadBase == "http://192.168.1.10:9000")
        #expect(
            try resolve(["http": "0.0.0.0:8080"]).downloadBase == nil,
            "every interface names no address a device could use")
        #expect(
            try resolve(["http": "0.0.0.0:8080", "device-url": "https://linli.example.org/"]).downloadBase
                == "https://linli.example.org")
        for bad in ["linli.example.org", "ftp://linli.example.org", "http://", "http://x.org/?a=1"] {
            do {
                _ = try resolve(["device-url": bad])
                Issue.record("\(bad) was taken")
            } catch let invalid as ServerConfiguration.Invalid {
                #expect(invalid.key == "--device-url", "\(bad)")
            }
        }
    }

    @Test func smsTextIsShortAndSaysWhoSentIt() {
        let text = OutboundService.smsText(subject: "停水", body: String(repeating: "水", count: 500))
        #expect(text.hasPrefix("【Linli】停水: 水") && text.hasSuffix("…") && text.count == 7 + 300)
    }
}
