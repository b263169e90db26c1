import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliServer
@testable import LinliStorage

/// LinliCommunity's pages speak one language at a time: every page of the module, rendered for
/// the demo community in Chinese and in English, holds no word of the other language in what a
/// person reads (text, placeholders, titles, the labels of narrow tables) but for the data.
@Suite("LinliCommunity's pages in each language")
struct LanguageCommunityTests {
    /// Words a Chinese page may hold: the brand, units, formats and the names of standards.
    /// As `ALLOWED_LATIN` of tests/browser/test_languages.py: names of formats people know as such.
    static let latinAllowed: Set<String> = ["Linli", "CSV", "API", "MQTT", "kWh", "YYYY", "UTC", "TSL", "JSON"]

    /// What a person reads of a page: its text and the texts of the attributes that are shown
    /// (placeholder, title, aria-label, alt, data-label, data-confirm); without scripts, styles,
    /// the codes (`<code>`) the import takes as they are, the header's brand and its language
    /// switch (which names the other language in that language, on purpose).
    static func visible(_ html: String) -> String {
        var page = html
        for pattern in [
            #"<script\b[^>]*>.*?</script>"#, #"<style\b[^>]*>.*?</style>"#, #"<code>.*?</code>"#,
            #"<form method="post" action="/language".*?</form>"#, #"<a class="brand"[^>]*>.*?</a>"#,
            #"<title>.*?</title>"#,
        ] {
            page = page.replacingOccurrences(
                of: pattern, with: " ", options: [.regularExpression, .caseInsensitive])
        }
        var shown: [String] = []
        let attribute = try! NSRegularExpression(
            pattern: #"\s(?:placeholder|title|aria-label|alt|data-label|data-confirm)="([^"]*)""#)
        for m in attribute.matches(in: page, range: NSRange(page.startIndex..., in: page)) {
            shown.append(String(page[Range(m.range(at: 1), in: page)!]))
        }
        let text = page.replacingOccurrences(of: #"<[^>]*>"#, with: " ", options: .regularExpression)
        return ([text] + shown).joined(separator: " ").replacingOccurrences(of: "&amp;", with: "&")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
    }

    /// The demo's data as pages show it: names, places, plates, titles, usernames (these are what
    /// they are in either language).
    static func data(_ store: Store) async throws -> [String] {
        try await store.read { db in
            var values: [String] = []
            for c in try await db.all(Community.self, "SELECT * FROM communities") { values += [c.name, c.address] }
            for b in try await db.all(Building.self, "SELECT * FROM buildings") { values.append(b.name) }
            for u in try await db.all(BuildingUnit.self, "SELECT * FROM units") { values.append(u.name) }
            for h in try await db.all(Household.self, "SELECT * FROM households") { values.append(h.room) }
            for p in try await db.all(Person.self, "SELECT * FROM people") { values.append(p.name) }
            for v in try await db.all(Vehicle.self, "SELECT * FROM vehicles") { values += [v.plate, v.description] }
            for o in try await db.all(Organisation.self, "SELECT * FROM organisations") { values.append(o.name) }
            for s in try await db.all(StaffMember.self, "SELECT * FROM staff") { values += [s.name, s.title] }
            for g in try await db.all(Grid.self, "SELECT * FROM grids") { values.append(g.name) }
            for a in try await db.all(Account.self, "SELECT * FROM accounts") { values += [a.username, a.displayName] }
            return values.filter { !$0.isEmpty }.sorted { $0.count > $1.count }
        }
    }

    static func withoutData(_ text: String, _ data: [String]) -> String {
        var text = text
        for value in data { text = text.replacingOccurrences(of: value, with: " ") }
        // Ids (UUIDs) and the parts of links are no words.
        return text.replacingOccurrences(
            of: #"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"#, with: " ", options: .regularExpression
        )
    }

    /// Latin words of three letters or more that are not allowed on a Chinese page.
    static func latinWords(_ text: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: "[A-Za-z]{3,}")
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
            String(text[Range($0.range, in: text)!])
        }.filter { !latinAllowed.contains($0) }
    }

    /// Chinese characters and full-width punctuation on an English page.
    static func chinese(_ text: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: #"[\x{3000}-\x{303F}\x{4E00}-\x{9FFF}\x{FF00}-\x{FFEF}]+"#)
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
            String(text[Range($0.range, in: text)!])
        }
    }

    static func check(_ html: String, _ language: Language, _ data: [String], page: String) {
        let text = withoutData(visible(html), data)
        if language == .zh {
            let words = latinWords(text)
            #expect(words.isEmpty, "\(page) in Chinese shows \(Set(words).sorted())")
        } else {
            let words = chinese(text)
            #expect(words.isEmpty, "\(page) in English shows \(Set(words).sorted())")
        }
    }

    @Test func everyPageSpeaksOneLanguage() async throws {
        try await withApp { client, fixture in
            let data = try await Self.data(fixture.store)
            let c = fixture.community.id
            let store = fixture.store
            let buildings = try await store.buildings(communityId: c, scope: .everything)
            let units = try await store.units(buildingId: buildings[0].id, scope: .everything)
            let tenant = try await store.read { db in
                try await db.all(
                    Residency.self, "SELECT * FROM residencies WHERE role = 'tenant' AND lease_end IS NOT NULL LIMIT 1")
            }
            let cared = try await store.people(
                communityId: c, filter: PeopleFilter(careTag: .elderlyAlone),
                sort: ListOrder(nil, allowed: [:], default: "p.id"),
                page: PageRequest(limit: 1), scope: .everything, fullPhone: false
            ).items
            var paths = [
                "/console", "/console/c/\(c)", "/console/c/\(c)/buildings", "/console/b/\(buildings[0].id)",
                "/console/c/\(c)/households", "/console/c/\(c)/households?unitId=\(units[0].id)&occupancy=rented",
                "/console/h/\(fixture.residentHousehold)", "/console/c/\(c)/people",
                "/console/c/\(c)/people?careTag=elderly_alone&current=true", "/console/p/\(fixture.personWithIdentity)",
                "/console/c/\(c)/vehicles", "/console/c/\(c)/vehicles?q=zzzz", "/console/c/\(c)/organisations",
                "/console/c/\(c)/import", "/console/c/\(c)/access", "/console/audit?community=\(c)",
                "/console/c/\(c)/people?q=zzzz-nobody",
            ]
            if let t = tenant.first { paths += ["/console/h/\(t.householdId)", "/console/p/\(t.personId)"] }
            // The forms of the data core, and the add-resident form with the people a search found.
            paths += try await EditingTests.forms(fixture)
            paths.append("/console/h/\(fixture.residentHousehold)/residents/new?q=1")
            if let p = cared.first { paths.append("/console/p/\(p.id)") }
            let manager = try await WebTests.signIn(client, "admin")
            let resident = try await WebTests.signIn(client, "resident")
            let badSheet =
                "building,unit,room,floor,area,occupancy,name,phone,identity_number,role,lease_end,care_tags,colour\n"
                + "8号楼,1单元,101,x,-3,maybe,甲乙,12,999,boss,2020-01-01,brave,\n"
            for language in [Language.zh, .en] {
                let accept = language == .zh ? "zh-CN,zh;q=0.9" : "en-US,en;q=0.9"
                for path in paths {
                    let html = try await client.execute(
                        uri: path, method: .get, headers: [.cookie: manager.cookie, .acceptLanguage: accept]
                    ) { r in
                        #expect(r.status == .ok, "\(path)")
                        return r.text
                    }
                    #expect(html.contains("<html lang=\"\(language.rawValue)\">"), "\(path)")
                    // The audit log's actions and subjects are codes of every module (the kernel's
                    // template shows them as they are): left out here.
                    let shown = html.replacingOccurrences(
                        of: #"<td data-label="(操作|对象|Action|Subject)">[^<]*</td>"#, with: " ",
                        options: .regularExpression)
                    Self.check(shown, language, data, page: path)
                }
                let portal = try await client.execute(
                    uri: "/app", method: .get, headers: [.cookie: resident.cookie, .acceptLanguage: accept]
                ) { $0.text }
                #expect(portal.contains("class=\"members\""))
                Self.check(portal, language, data, page: "/app")
                // The import's report, with a problem in every column the sheet checks.
                for sheet in [badSheet, badSheet.replacingOccurrences(of: ",colour", with: "")] {
                    let report = try await client.execute(
                        uri: "/console/c/\(c)/import", method: .post,
                        headers: [
                            .cookie: manager.cookie, .acceptLanguage: accept,
                            .contentType: "application/x-www-form-urlencoded",
                        ],
                        body: ByteBuffer(
                            string: "_csrf=\(manager.csrf)&mode=all&csv="
                                + sheet.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
                    ) { $0.text }
                    #expect(report.contains("class=\"problem\""))
                    // The sheet itself is the person's own text, shown back as it was sent.
                    let shown = report.replacingOccurrences(
                        of: #"(?s)<textarea\b[^>]*>.*?</textarea>"#, with: " ", options: .regularExpression)
                    Self.check(shown, language, data + ["brave", "colour"], page: "the import report")
                }
                // The new-account form's refusal and its confirmation.
                for form in [
                    "username=x%21&displayName=X&password=short&role=grid_worker&gridId=",
                    "username=door-\(language.rawValue.lowercased())&displayName=Door&password=longenough1&role=guard",
                ] {
                    let page = try await client.execute(
                        uri: "/console/c/\(c)/access/accounts", method: .post,
                        headers: [
                            .cookie: manager.cookie, .acceptLanguage: accept,
                            .contentType: "application/x-www-form-urlencoded",
                        ],
                        body: ByteBuffer(string: form + "&_csrf=\(manager.csrf)")
                    ) { $0.text }
                    #expect(page.contains("id=\"account-error\"") || page.contains("id=\"account-message\""))
                    Self.check(
                        page, language, data + ["door-\(language.rawValue.lowercased())", "Door"],
                        page: "the access form")
                }
            }
        }
    }

    @Test func codesShowTheirLabelsAndTimesAreBeijingTime() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let manager = try await WebTests.signIn(client, "admin")
            func page(_ path: String, _ accept: String = "zh-CN") async throws -> String {
                try await client.execute(
                    uri: path, method: .get, headers: [.cookie: manager.cookie, .acceptLanguage: accept]
                ) { $0.text }
            }
            let households = try await page("/console/c/\(c)/households")
            #expect(households.contains("<option value=\"owner_occupied\">自住</option>"))
            #expect(!households.contains(">owner_occupied<") && !households.contains("房屋 Households"))
            let english = try await page("/console/c/\(c)/households", "en")
            #expect(english.contains("<option value=\"owner_occupied\">Owner-occupied</option>"))
            let people = try await page("/console/c/\(c)/people?careTag=elderly_alone")
            #expect(people.contains("<option value=\"elderly_alone\" selected>独居老人</option>"))
            #expect(people.contains(">独居老人</span>"))
            // The access page: each account once, the matrix by capability with short role headers.
            let access = try await page("/console/c/\(c)/access")
            #expect(access.components(separatedBy: "id=\"accounts\"").count == 2)
            #expect(access.components(separatedBy: "<tr class=\"account\">").count - 1 > 3)
            #expect(access.contains("title=\"社区管理员\"><abbr title=\"社区管理员\">社区管理</abbr>"))
            #expect(access.contains("<th scope=\"row\" class=\"capability\">查看完整身份证号（记入审计）</th>"))
            // The audit log by community: Beijing time, no ISO 8601 in UTC.
            let audit = try await page("/console/audit?community=\(c)")
            #expect(audit.contains("class=\"audit-entry\""))
            #expect(audit.range(of: #"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"#, options: .regularExpression) == nil)
            #expect(
                audit.range(of: #"<td[^>]*>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td>"#, options: .regularExpression) != nil)
        }
    }

    /// The check itself finds a doubled label (so that it can fail).
    @Test func theCheckFindsADoubledLabel() {
        let doubled = #"<h1>房屋 Households</h1><input placeholder="房号 Room"><p>李娜</p>"#
        #expect(Self.latinWords(Self.withoutData(Self.visible(doubled), ["李娜"])) == ["Households", "Room"])
        let english = #"<h1>Households</h1><td data-label="楼栋">1号楼</td><p>李娜</p>"#
        #expect(Self.chinese(Self.withoutData(Self.visible(english), ["李娜", "1号楼"])) == ["楼栋"])
        #expect(
            Self.latinWords(Self.visible("<script>var households = 1;</script><code>owner_occupied</code>")).isEmpty)
    }
}
