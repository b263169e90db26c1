import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliHTTP
@testable import LinliMessaging
@testable import LinliStorage
@testable import LinliWorkOrders

/// Every page of notices, the inbox and work orders speaks one language: the Chinese page has no
/// English words but an allowed few, the English page no Chinese but the data's (names, rooms,
/// what people wrote).
@Suite("Languages of the messaging and work-order pages")
struct LanguageMessagingWorkOrdersTests {
    /// What a person reads on a page: the text between tags and the words of `placeholder`,
    /// `title`, `aria-label`, `alt` and `data-label`; scripts, styles and other attributes left out.
    static func visibleText(_ html: String) -> String {
        var page = html
        for tag in ["script", "style"] {
            page = page.replacingOccurrences(
                of: "<\(tag)[^>]*>[\\s\\S]*?</\(tag)>", with: " ", options: [.regularExpression, .caseInsensitive])
        }
        var said: [String] = []
        let attribute = try! NSRegularExpression(
            pattern: "\\s(?:placeholder|title|aria-label|alt|data-label|data-confirm)=\"([^\"]*)\"")
        for match in attribute.matches(in: page, range: NSRange(page.startIndex..., in: page)) {
            if let range = Range(match.range(at: 1), in: page) { said.append(String(page[range])) }
        }
        // The page's own <title> is text too; the rest of the head is not.
        let body = page.replacingOccurrences(of: "<[^>]*>", with: " ", options: .regularExpression)
        return (said + [body]).joined(separator: "\n")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    /// `text` without the data values, longest first (a room inside a building's name stays whole).
    static func withoutData(_ text: String, _ data: [String]) -> String {
        var text = text
        for value in data.filter({ !$0.isEmpty }).sorted(by: { $0.count > $1.count }) {
            text = text.replacingOccurrences(of: value, with: " ")
        }
        return text
    }

    /// Words of three or more Latin letters the Chinese page may show: the brand, the language
    /// switch, file types and units, a key, the UTC offset, the event name rules use.
    static let allowedOnChinese: Set<String> = [
        "Linli", "English", "Switch", "CSV", "JPEG", "PNG", "WebP", "HEIC", "MiB", "Ctrl", "Mac", "UTC", "notice",
        "unanswered",
    ]
    /// The English page's Chinese: the brand and the language switch.
    static let allowedOnEnglish = ["Linli 邻里", "切换到中文", "中文"]

    static func englishWords(_ text: String) -> [String] {
        let words = try! NSRegularExpression(pattern: "[A-Za-z]{3,}")
        return words.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range, in: text).map { String(text[$0]) }
        }.filter { !allowedOnChinese.contains($0) }
    }

    static func chineseCharacters(_ text: String) -> [String] {
        let cjk = try! NSRegularExpression(pattern: "[\\p{Han}]+")
        return cjk.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range, in: text).map { String(text[$0]) }
        }
    }

    /// The fixture's data as pages show it: names, places, accounts, organisations, what people wrote.
    static func dataValues(_ store: Store) async throws -> [String] {
        try await store.read { db in
            var values: [String] = []
            for (table, column) in [
                ("people", "name"), ("buildings", "name"), ("units", "name"), ("households", "room"),
                ("accounts", "display_name"), ("accounts", "username"), ("organisations", "name"),
                ("communities", "name"), ("notices", "title"), ("notices", "body"), ("notices", "question"),
                ("work_orders", "title"), ("work_orders", "description"), ("work_orders", "number"),
                ("work_orders", "location"), ("work_order_steps", "note"), ("notifications", "title"),
                ("notifications", "body"), ("staff", "name"), ("staff", "title"),
            ] {
                for row in try await db.raw("SELECT \(unsafeRaw: column) AS v FROM \(unsafeRaw: table)").all() {
                    if let v = try? row.decode(column: "v", as: String?.self) { values.append(v) }
                }
            }
            // A notice's answers are a JSON list.
            for row in try await db.raw("SELECT options AS v FROM notices").all() {
                let list = try row.decode(column: "v", as: String.self)
                values += (try? JSONDecoder().decode([String].self, from: Data(list.utf8))) ?? []
            }
            return values
        }
    }

    @Test func everyPageSpeaksOnlyItsLanguage() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staffUser = APIUser(client, fixture, as: "staff")
            let residentUser = APIUser(client, fixture, as: "resident")
            // A notice with a question one household answered, one scheduled, one work order taken
            // through its steps and rated, one refused photo, a message in the inbox.
            let sent = try await staffUser.call(
                "/api/v1/communities/\(c)/notices", .post,
                [
                    "title": "疫苗接种", "body": "请回复接种情况", "question": "接种了吗？", "options": ["已接种", "未接种"],
                    "audience": ["everyone": true],
                ], expect: .created)
            let noticeId = try #require(sent["id"] as? String)
            let notice = try #require(try await fixture.store.notice(id: noticeId))
            let resident = try #require(try await fixture.store.account(username: "resident"))
            try await fixture.store.answerNotice(
                notice, householdId: fixture.residentHousehold, answer: "已接种",
                actor: Principal(accountId: resident.id, name: resident.username))
            let scheduled = try await staffUser.call(
                "/api/v1/communities/\(c)/notices", .post,
                [
                    "title": "停水通知", "body": "周三停水", "audience": ["everyone": true],
                    "sendAt": nowMillis() + 86_400_000,
                ], expect: .created)
            let made = try await residentUser.call(
                "/api/v1/communities/\(c)/work-orders", .post, ["category": "repair", "title": "楼道灯不亮"],
                expect: .created)
            let orderId = try #require(made["id"] as? String)
            for step in [["step": "accept"], ["step": "grab"], ["step": "start"], ["step": "resolve", "note": "已换灯泡"]] {
                try await staffUser.call("/api/v1/work-orders/\(orderId)/steps", .post, step)
            }
            try await residentUser.call("/api/v1/work-orders/\(orderId)/steps", .post, ["step": "rate", "rating": 4])
            let open = try await residentUser.call(
                "/api/v1/communities/\(c)/work-orders", .post, ["category": "noise", "title": "夜间施工"], expect: .created)
            let openId = try #require(open["id"] as? String)
            try await fixture.store.notify(
                [Recipient(accountId: resident.id, name: resident.username)], communityId: c, title: "烟感告警",
                body: "3 号楼烟感报警", severity: "critical", link: nil, subjectType: nil, subjectId: nil,
                actor: .system)

            let data = try await Self.dataValues(fixture.store)
            let staff = try await WebTests.signIn(client, "staff")
            let residentSession = try await WebTests.signIn(client, "resident")
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            typealias Page = (who: String, uri: String, method: HTTPRequest.Method, body: String?)
            let pages: [Page] = [
                ("staff", "/console/c/\(c)/notices", .get, nil),
                ("staff", "/console/c/\(c)/notices", .post, "_csrf=\(staff.csrf)&title=&body="),
                (
                    "staff", "/console/c/\(c)/notices", .post,
                    "_csrf=\(staff.csrf)&title=t&body=b&to=everyone&question=q&options=a%2Fb&intent=preview"
                ),
                ("staff", "/console/notices/\(noticeId)", .get, nil),
                ("staff", "/console/notices/\(noticeId)?partial=1", .get, nil),
                ("staff", "/console/notices/\(scheduled["id"] as? String ?? "")", .get, nil),
                ("staff", "/console/c/\(c)/work-orders", .get, nil),
                ("staff", "/console/c/\(c)/work-orders?status=closed", .get, nil),
                ("staff", "/console/c/\(c)/work-orders/new", .get, nil),
                (
                    "staff", "/console/c/\(c)/work-orders", .post,
                    "_csrf=\(staff.csrf)&category=x&title=&room=1&reporterPhone=abc"
                ),
                ("staff", "/console/c/\(c)/roster", .get, nil),
                ("staff", "/console/work-orders/\(orderId)", .get, nil),
                ("staff", "/console/work-orders/\(openId)", .get, nil),
                ("staff", "/console/work-orders/\(openId)", .post, "_csrf=\(staff.csrf)&step=reject&note="),
                ("resident", "/app/inbox", .get, nil),
                ("resident", "/app/inbox/preferences", .post, "_csrf=\(residentSession.csrf)&sms=on&quietFrom=22%3A00"),
                ("resident", "/app/notices", .get, nil),
                ("resident", "/app/notices/\(noticeId)", .get, nil),
                ("resident", "/app/reports", .get, nil),
                ("resident", "/app/reports/new", .get, nil),
                ("resident", "/app/reports/\(orderId)", .get, nil),
                ("resident", "/app/reports/\(openId)?photo=type", .get, nil),
            ]
            for language in ["zh-CN", "en"] {
                for page in pages {
                    let cookie = page.who == "staff" ? staff.cookie : residentSession.cookie
                    var headers: HTTPFields = [.cookie: cookie, .acceptLanguage: language]
                    if page.body != nil { headers.append(contentsOf: form) }
                    // The step form posts to …/steps.
                    let uri =
                        page.method == .post && page.uri.hasPrefix("/console/work-orders/")
                        ? page.uri + "/steps" : page.uri
                    let html = try await client.execute(
                        uri: uri, method: page.method, headers: headers, body: page.body.map { ByteBuffer(string: $0) }
                    ) { r in
                        #expect(r.status.code < 500 && r.status != .forbidden && r.status != .notFound, "\(uri)")
                        return r.text
                    }
                    let visible = Self.withoutData(Self.visibleText(html), data)
                    if language == "en" {
                        let chinese = Self.chineseCharacters(Self.withoutData(visible, Self.allowedOnEnglish))
                        #expect(chinese.isEmpty, "\(page.method) \(uri) in English shows \(chinese)")
                        #expect(uri.hasSuffix("partial=1") || html.contains("<html lang=\"en\">"), "\(uri)")
                    } else {
                        let english = Self.englishWords(visible)
                        #expect(english.isEmpty, "\(page.method) \(uri) in Chinese shows \(english)")
                    }
                }
            }

            // Timelines and receipts name people by their display names; a kept photo needs no word.
            let staffName = try #require(try await fixture.store.account(username: "staff")).displayName
            let order = try await client.execute(
                uri: "/console/work-orders/\(orderId)", method: .get, headers: [.cookie: staff.cookie]
            ) { $0.text }
            #expect(order.contains("\(staffName): 受理 → 已受理") && !order.contains("staff: "))
            let progress = try await client.execute(
                uri: "/console/notices/\(noticeId)?partial=1", method: .get, headers: [.cookie: staff.cookie]
            ) { $0.text }
            #expect(progress.contains("data-label=\"回复人\">\(resident.displayName) "))
            let report = try await client.execute(
                uri: "/app/reports/\(orderId)", method: .get, headers: [.cookie: residentSession.cookie]
            ) { $0.text }
            #expect(!report.contains("id=\"photo-problem\"") && report.contains("\(staffName): 办结 → 已办结 — 已换灯泡"))
            let refused = try await client.execute(
                uri: "/app/reports/\(openId)?photo=tooLarge", method: .get, headers: [.cookie: residentSession.cookie]
            ) { $0.text }
            #expect(refused.contains("id=\"photo-problem\">照片没有保存：照片超过 5 MiB。"))
        }
    }

    @Test func theCheckFindsADoubledLabel() {
        let doubled = "<h1>消息 Inbox</h1><input placeholder=\"说明 Note\"><script>var s = 'words';</script>"
        #expect(Set(Self.englishWords(Self.visibleText(doubled))) == ["Inbox", "Note"])
        #expect(Set(Self.chineseCharacters(Self.visibleText(doubled))) == ["消息", "说明"])
        #expect(Self.withoutData("李娜 answered", ["李娜"]) == "  answered")
    }
}
