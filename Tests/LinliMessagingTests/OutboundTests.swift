import Foundation
import Testing

@testable import LinliMessaging

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

    @Test func smsTextIsShortAndSaysWhoSentIt() {
        let text = OutboundService.smsText(subject: "停水", body: String(repeating: "水", count: 500))
        #expect(text.hasPrefix("【Linli】停水: 水") && text.hasSuffix("…") && text.count == 7 + 300)
    }
}
