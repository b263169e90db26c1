import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliHTTP
@testable import LinliServer

/// The message catalogues and the language switch.
@Suite("Languages of the pages")
struct CatalogueTests {
    /// A folder with the given files, removed after `body`.
    static func folder(_ files: [String: String], _ body: (URL) throws -> Void) throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("catalogue-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: url) }
        for (name, text) in files {
            try text.write(to: url.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        try body(url)
    }

    @Test func templatesAreRenderedOncePerLanguage() throws {
        try Self.folder([
            "strings.zh-CN.json": #"{"greeting": "你好，{{name}} & <邻居>", "count": "共 {n} 户"}"#,
            "strings.en.json": #"{"greeting": "Hello, {{name}} & <neighbour>", "count": "{n} households"}"#,
            "hello.mustache": "<p title=\"{{t:greeting}}\">{{t:greeting}}</p>",
        ]) { url in
            let pages = try Pages(folders: [url])
            #expect(
                pages.libraries[.zh]?.render(["name": "李娜"], withTemplate: "hello")
                    == "<p title=\"你好，李娜 &amp; &lt;邻居&gt;\">你好，李娜 &amp; &lt;邻居&gt;</p>")
            #expect(
                pages.libraries[.en]?.render(["name": "<b>"], withTemplate: "hello")
                    == "<p title=\"Hello, &lt;b&gt; &amp; &lt;neighbour&gt;\">Hello, &lt;b&gt; &amp; &lt;neighbour&gt;</p>"
            )
            #expect(pages.catalogue.text("count", .zh, ["n": "156"]) == "共 156 户")
            #expect(pages.catalogue.text("count", .en, ["n": "156"]) == "156 households")
            #expect(pages.catalogue.label("occupancy", "ownerOccupied", .zh) == "occupancy.ownerOccupied")
        }
    }

    @Test func whatWouldShowAKeyIsRefusedAtLoading() throws {
        // A key one language lacks.
        try Self.folder([
            "strings.zh-CN.json": #"{"a": "甲", "b": "乙"}"#, "strings.en.json": #"{"a": "A"}"#,
        ]) { url in
            #expect { try Catalogue(folders: [url]) } throws: { "\($0)".contains("strings.en.json lacks b") }
        }
        // A template naming a key no catalogue has, and one left unclosed.
        try Self.folder([
            "strings.zh-CN.json": #"{"a": "甲"}"#, "strings.en.json": #"{"a": "A"}"#, "page.mustache": "{{t:a}} {{t:b}}",
        ]) { url in
            #expect { try Pages(folders: [url]) } throws: { "\($0)".contains("uses b") }
        }
        try Self.folder([
            "strings.zh-CN.json": #"{"a": "甲"}"#, "strings.en.json": #"{"a": "A"}"#, "page.mustache": "{{t:a",
        ]) { url in
            #expect { try Pages(folders: [url]) } throws: { "\($0)".contains("unclosed") }
        }
        // Not an object of strings.
        try Self.folder(["strings.zh-CN.json": #"{"a": 1}"#, "strings.en.json": #"{"a": "A"}"#]) { url in
            #expect(throws: CatalogueError.self) { try Catalogue(folders: [url]) }
        }
        // A catalogue in parts: the texts of both, each part whole in every language, no key in two.
        try Self.folder([
            "strings.zh-CN.json": #"{"a": "甲"}"#, "strings.en.json": #"{"a": "A"}"#,
            "strings.roster.zh-CN.json": #"{"b": "乙"}"#, "strings.roster.en.json": #"{"b": "B"}"#,
        ]) { url in
            let catalogue = try Catalogue(folders: [url])
            #expect(catalogue.text("b", .zh) == "乙" && catalogue.text("a", .en) == "A")
        }
        try Self.folder([
            "strings.zh-CN.json": #"{"a": "甲"}"#, "strings.en.json": #"{"a": "A"}"#,
            "strings.roster.zh-CN.json": #"{"b": "乙"}"#,
        ]) { url in
            #expect { try Catalogue(folders: [url]) } throws: { "\($0)".contains("strings.roster.en.json lacks b") }
        }
        try Self.folder([
            "strings.zh-CN.json": #"{"a": "甲"}"#, "strings.en.json": #"{"a": "A"}"#,
            "strings.roster.zh-CN.json": #"{"a": "乙"}"#, "strings.roster.en.json": #"{"a": "B"}"#,
        ]) { url in
            #expect { try Catalogue(folders: [url]) } throws: { "\($0)".contains("the key a is in") }
        }
        // The same key from two modules.
        try Self.folder(["strings.zh-CN.json": #"{"a": "甲"}"#, "strings.en.json": #"{"a": "A"}"#]) { one in
            try Self.folder(["strings.zh-CN.json": #"{"a": "乙"}"#, "strings.en.json": #"{"a": "B"}"#]) { two in
                #expect { try Catalogue(folders: [one, two]) } throws: { "\($0)".contains("the key a is in") }
            }
        }
    }

    @Test func theSwitchIsRememberedInTheBrowserAndOnTheAccount() async throws {
        try await withApp { client, _ in
            // A first visit speaks the browser's language; Chinese when it says none Linli speaks.
            let chinese = try await client.execute(uri: "/login", method: .get) { $0.text }
            #expect(chinese.contains("<html lang=\"zh-CN\">") && chinese.contains("<h1>登录</h1>"))
            let french = try await client.execute(
                uri: "/login", method: .get, headers: [.acceptLanguage: "fr-FR,fr;q=0.9"]
            ) { $0.text }
            #expect(french.contains("<h1>登录</h1>"))
            let english = try await client.execute(
                uri: "/login", method: .get, headers: [.acceptLanguage: "en-US,en;q=0.9"]
            ) { $0.text }
            #expect(english.contains("<html lang=\"en\">") && english.contains("<h1>Sign in</h1>"))
            #expect(!english.contains("登录"))

            // Before signing in: a cookie, and back to the page it was chosen on.
            let cookie = try await client.execute(
                uri: "/language", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "language=en&return=%2Flogin%3Fnext%3D%252Fconsole")
            ) { r in
                #expect(r.status == .found && r.headers[.location] == "/login?next=%2Fconsole")
                return String((r.headers[.setCookie] ?? "").split(separator: ";").first ?? "")
            }
            #expect(cookie == "linli_lang=en")
            let chosen = try await client.execute(uri: "/login", method: .get, headers: [.cookie: cookie]) { $0.text }
            #expect(chosen.contains("<h1>Sign in</h1>"))
            // Elsewhere than this site is not a way back; an unknown language is refused by name.
            try await client.execute(
                uri: "/language", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "language=en&return=%2F%2Fevil.example")
            ) { #expect($0.headers[.location] == "/") }
            try await client.execute(
                uri: "/language", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "language=fr")
            ) { r in
                #expect(r.status == .unprocessableContent && r.text.contains("language"))
            }

            // Signed in: the account keeps it, whatever the browser says next.
            let session = try await WebTests.signIn(client, "staff")
            try await client.execute(
                uri: "/language", method: .post,
                headers: [.cookie: session.cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "_csrf=\(session.csrf)&language=en&return=%2Fconsole%2Faccount")
            ) { #expect($0.status == .found && $0.headers[.location] == "/console/account") }
            let account = try await client.execute(
                uri: "/console/account", method: .get, headers: [.cookie: session.cookie, .acceptLanguage: "zh-CN"]
            ) { $0.text }
            #expect(account.contains("<h1>Account settings</h1>") && account.contains("Property staff"))
            let again = try await WebTests.signIn(client, "staff")
            let fresh = try await client.execute(
                uri: "/console/account", method: .get, headers: [.cookie: again.cookie]
            ) { $0.text }
            #expect(fresh.contains("<h1>Account settings</h1>"))
            // Without the form's token a signed-in switch is refused (CSRF).
            try await client.execute(
                uri: "/language", method: .post,
                headers: [.cookie: again.cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "language=zh-CN")
            ) { #expect($0.status == .forbidden) }
        }
    }

    /// An error page speaks the page's language: its title and what it says, a capability by its
    /// label; in English the plain words, not the API's.
    @Test func errorPagesSayWhatWentWrongInThePagesLanguage() async throws {
        try await withApp { client, fixture in
            let guardOnDuty = try await WebTests.signIn(client, "guard")
            func page(_ uri: String, _ language: String) async throws -> (HTTPResponse.Status, String) {
                try await client.execute(
                    uri: uri, method: .get, headers: [.cookie: guardOnDuty.cookie, .acceptLanguage: language]
                ) { ($0.status, $0.text) }
            }
            let (status, forbidden) = try await page("/console/c/\(fixture.community.id)/import", "zh-CN")
            #expect(status == .forbidden)
            #expect(forbidden.contains("<p class=\"error\" lang=\"zh-CN\">您的角色没有「导入数据」权限。"), "\(forbidden)")
            #expect(!forbidden.contains("importData"), "no capability by its code")
            let (_, english) = try await page("/console/c/\(fixture.community.id)/import", "en")
            #expect(english.contains("lang=\"en\">Your roles do not allow “Import data”."))
            let (missing, notFound) = try await page("/console/c/no-such-community", "zh-CN")
            #expect(missing == .notFound && notFound.contains("不存在，或不在您可以查看的范围内。"))
        }
    }
}
