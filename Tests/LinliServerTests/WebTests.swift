import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliDemo
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliDevices
@testable import LinliHTTP
@testable import LinliHouseholdImport
@testable import LinliLinkage
@testable import LinliMessaging
@testable import LinliServer
@testable import LinliStorage
@testable import LinliWorkOrders

/// The console and portal pages, through the router with a real sign-in.
@Suite("Web console and portal")
struct WebTests {
    /// A sign-in's answer, asked again a second later while it is 503 (busy): the tests of this
    /// process share one bound on password checks, and a person would try again too.
    static func unlessBusy(_ attempt: () async throws -> HTTPResponse.Status) async throws -> HTTPResponse.Status {
        for _ in 0..<60 {
            let status = try await attempt()
            if status != .serviceUnavailable { return status }
            try await Task.sleep(for: .seconds(1))
        }
        return .serviceUnavailable
    }

    /// Signs in through the login form; returns the session cookie and the page's CSRF token.
    static func signIn(_ client: any TestClientProtocol, _ username: String) async throws -> (
        cookie: String, csrf: String, location: String
    ) {
        // The test process shares one bound on password checks between all its tests running at
        // once: a 503 says "try again in a second", and the sign-in does, as a browser's person would.
        var attempt = 0
        var answer: (status: HTTPResponse.Status, cookie: String, location: String)
        repeat {
            if attempt > 0 { try await Task.sleep(for: .seconds(1)) }
            attempt += 1
            answer = try await client.execute(
                uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "username=\(username)&password=\(Fixture.password)")
            ) { r in
                (
                    r.status, String((r.headers[.setCookie] ?? "").split(separator: ";").first ?? ""),
                    r.headers[.location] ?? ""
                )
            }
        } while answer.status == .serviceUnavailable && attempt < 60
        #expect(answer.status == .found)
        let (cookie, location) = (answer.cookie, answer.location)
        // A resident's account page is the portal's: /console/account sends them there.
        let own = try await client.execute(uri: "/console/account", method: .get, headers: [.cookie: cookie]) {
            $0.headers[.location] ?? "/console/account"
        }
        let page = try await client.execute(uri: own, method: .get, headers: [.cookie: cookie]) { $0.text }
        let csrf =
            page.components(separatedBy: "name=\"_csrf\" value=\"").dropFirst().first?.components(separatedBy: "\"")
            .first ?? ""
        return (cookie, csrf, location)
    }

    @Test func anonymousVisitorsAreSentToTheLoginPage() async throws {
        try await withApp { client, _ in
            let location = try await client.execute(uri: "/console", method: .get) { r in
                #expect(r.status == .seeOther || r.status == .found)
                return r.headers[.location] ?? ""
            }
            #expect(location.hasPrefix("/login"))
            let login = try await client.execute(uri: "/login", method: .get) { $0 }
            #expect(login.status == .ok && login.text.contains("id=\"login\""))
            #expect(login.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
            let wrong = try await client.execute(
                uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "username=staff&password=nope")
            ) { $0 }
            #expect(wrong.status == .unauthorized && wrong.text.contains("class=\"error\""))
        }
    }

    @Test func staffBrowseFromCommunityToHousehold() async throws {
        try await withApp { client, fixture in
            let session = try await Self.signIn(client, "staff")
            #expect(session.location == "/console")
            let c = fixture.community.id
            let headers: HTTPFields = [.cookie: session.cookie]
            // Staff of one community are sent straight to it; its overview names it.
            let home = try await client.execute(uri: "/console", method: .get, headers: headers) {
                ($0.status, $0.headers[.location] ?? "")
            }
            #expect(home == (.seeOther, "/console/c/\(c)") || home == (.found, "/console/c/\(c)"))
            let overview = try await client.execute(uri: "/console/c/\(c)", method: .get, headers: headers) { $0.text }
            #expect(overview.contains("id=\"count-households\">156<"))
            #expect(overview.contains("幸福里小区"))
            #expect(overview.contains("id=\"nav-import\""), "staff may import")
            let buildings = try await client.execute(uri: "/console/c/\(c)/buildings", method: .get, headers: headers) {
                $0.text
            }
            let buildingId = try #require(
                buildings.components(separatedBy: "/console/b/").dropFirst().first?.components(separatedBy: "\"").first)
            let units = try await client.execute(uri: "/console/b/\(buildingId)", method: .get, headers: headers) {
                $0.text
            }
            let unitLink = try #require(
                units.components(separatedBy: "class=\"unit\" href=\"").dropFirst().first?.components(separatedBy: "\"")
                    .first)
            let households = try await client.execute(
                uri: unitLink.replacingOccurrences(of: "&amp;", with: "&"), method: .get, headers: headers
            ) { $0.text }
            #expect(households.components(separatedBy: "class=\"household\"").count - 1 == 26)
            let householdId = try #require(
                households.components(separatedBy: "/console/h/").dropFirst().first?.components(separatedBy: "\"").first
            )
            let household = try await client.execute(uri: "/console/h/\(householdId)", method: .get, headers: headers) {
                $0
            }
            #expect(household.status == .ok && household.text.contains("id=\"residents\""))
            let people = try await client.execute(
                uri: "/console/c/\(c)/people?q=%E7%8E%8B", method: .get, headers: headers
            ) { $0.text }
            #expect(people.contains("class=\"person\"") || people.contains("id=\"no-results\""))
            let nobody = try await client.execute(
                uri: "/console/c/\(c)/people?q=zzzz-nobody", method: .get, headers: headers
            ) { $0.text }
            #expect(nobody.contains("id=\"no-results\""))
            // Staff see masked identity numbers and no reveal button.
            let person = try await client.execute(
                uri: "/console/p/\(fixture.personWithIdentity)", method: .get, headers: headers
            ) { $0.text }
            #expect(person.contains("**********") && !person.contains("id=\"reveal\""), "\(person)")
            let audit = try await client.execute(uri: "/console/audit", method: .get, headers: headers) { $0.status }
            #expect(audit == .forbidden)
            let foreign = try await client.execute(
                uri: "/console/c/\(fixture.other.id)", method: .get, headers: headers
            ) { $0.status }
            #expect(foreign == .notFound)
        }
    }

    @Test func formsNeedTheirCSRFTokenAndImportReportsBadRows() async throws {
        try await withApp { client, fixture in
            let session = try await Self.signIn(client, "manager")
            let c = fixture.community.id
            let csv = "building,unit,room,name,identity_number\n8号楼,1单元,101,甲乙,\n8号楼,1单元,102,丙丁,999\n"
            let form = "csv=\(csv.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)&mode=all"
            let forged = try await client.execute(
                uri: "/console/c/\(c)/import", method: .post,
                headers: [.cookie: session.cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: form)
            ) { $0.status }
            #expect(forged == .forbidden)
            let report = try await client.execute(
                uri: "/console/c/\(c)/import", method: .post,
                headers: [.cookie: session.cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: form + "&_csrf=\(session.csrf)")
            ) { $0.text }
            #expect(report.contains("data-imported=\"false\""))
            #expect(report.contains("class=\"problem\" data-line=\"3\""))
            // The manager may reveal; the reveal is audited and shows in the audit page.
            let revealed = try await client.execute(
                uri: "/console/p/\(fixture.personWithIdentity)/reveal", method: .post,
                headers: [.cookie: session.cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "_csrf=\(session.csrf)")
            ) { $0.text }
            #expect(!revealed.contains("**********"))
            let audit = try await client.execute(
                uri: "/console/audit?community=\(c)&action=person.identity.read", method: .get,
                headers: [.cookie: session.cookie]
            ) { $0.text }
            #expect(audit.contains("class=\"audit-entry\""))
        }
    }

    @Test func aWorkOrderPageOffersOnlyPeopleWhoMayHandleIt() async throws {
        try await withApp { client, fixture in
            let made = try await APIUser(client, fixture, as: "resident").call(
                "/api/v1/communities/\(fixture.community.id)/work-orders", .post,
                ["category": "repair", "title": "门锁坏了 lock broken"], expect: .created)
            let id = try #require(made["id"] as? String)
            let session = try await Self.signIn(client, "staff")
            let page = try await client.execute(
                uri: "/console/work-orders/\(id)", method: .get, headers: [.cookie: session.cookie]
            ) { $0.text }
            let select = try #require(
                page.components(separatedBy: "name=\"assigneeId\"").dropFirst().first?.components(
                    separatedBy: "</select>"
                ).first)
            // The property company's staff from the roster (a guard too, for what is his to handle,
            // and 钱工, who has no account), then other accounts that handle work orders.
            #expect(select.contains("value=\"staff:") && select.contains("钱工") && select.contains("李娜 · 客服主管"))
            #expect(select.contains("社区管理员 周敏"), "the manager handles work orders")
            #expect(!select.contains("物业客服 李娜"), "staff on the roster are listed once")
            #expect(
                !select.contains("孙磊") && !select.contains("社区民警"),
                "a department agent only sees what is transferred")
            let resident =
                try await fixture.store.residents(householdId: fixture.residentHousehold).first { $0.current }?
                .personName ?? "-"
            #expect(!select.contains(resident))
        }
    }

    @Test func residentsSeeTheirOwnHomeInThePortal() async throws {
        try await withApp { client, fixture in
            let session = try await Self.signIn(client, "resident")
            #expect(session.location == "/app")
            let portal = try await client.execute(uri: "/app", method: .get, headers: [.cookie: session.cookie]) { $0 }
            #expect(portal.status == .ok)
            let household = try await fixture.store.household(fixture.residentHousehold, scope: .everything)
            #expect(portal.text.contains(household.buildingName + " " + household.unitName + " " + household.room))
            #expect(portal.text.contains("class=\"members\""))
            let console = try await client.execute(uri: "/console", method: .get, headers: [.cookie: session.cookie]) {
                $0.headers[.location]
            }
            #expect(console == "/app")
            let elsewhere = try await client.execute(
                uri: "/console/h/\(fixture.outsideHousehold)", method: .get, headers: [.cookie: session.cookie]
            ) { $0.status }
            #expect(elsewhere == .notFound)
        }
    }

    @Test func changingThePasswordEndsTheSession() async throws {
        try await withApp { client, _ in
            let session = try await Self.signIn(client, "guard")
            let form = "_csrf=\(session.csrf)&current=\(Fixture.password)&new=brand-new-password-1"
            let response = try await client.execute(
                uri: "/console/account/password", method: .post,
                headers: [.cookie: session.cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: form)
            ) { $0.headers[.location] }
            #expect(response == "/login")
            #expect(
                try await client.execute(uri: "/console/account", method: .get, headers: [.cookie: session.cookie]) {
                    $0.status
                } != .ok)
            let again = try await Self.unlessBusy {
                try await client.execute(
                    uri: "/api/v1/session", method: .post, headers: .json,
                    body: jsonBody(["username": "guard", "password": "brand-new-password-1"])
                ) { $0.status }
            }
            #expect(again == .ok)
        }
    }

    @Test func administratorsCreateAccountsWithRolesFromTheAccessPage() async throws {
        try await withApp { client, fixture in
            let session = try await Self.signIn(client, "manager")
            let c = fixture.community.id
            let page = try await client.execute(
                uri: "/console/c/\(c)/access", method: .get, headers: [.cookie: session.cookie]
            ) { $0.text }
            #expect(page.contains("id=\"capabilities\"") && page.contains("id=\"new-account\""))
            #expect(page.components(separatedBy: "id=\"accounts\"").count == 2, "the accounts table once")
            func post(_ form: String) async throws -> (HTTPResponse.Status, String) {
                try await client.execute(
                    uri: "/console/c/\(c)/access/accounts", method: .post,
                    headers: [.cookie: session.cookie, .contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(string: form + "&_csrf=\(session.csrf)")
                ) { ($0.status, $0.text) }
            }
            let bad = try await post("username=x&displayName=X&password=longenough1&role=grid_worker&gridId=")
            #expect(bad.0 == .unprocessableContent && bad.1.contains("网格：网格员必须指定网格"))
            let good = try await post("username=door2&displayName=%E9%97%A8%E5%B2%97&password=longenough1&role=guard")
            #expect(good.0 == .ok && good.1.contains("已创建账号 door2，角色：保安。"))
            let again = try await post("username=door2&displayName=X&password=longenough1&role=guard")
            #expect(again.0 == .conflict)
            // The new guard can sign in and reads the community, masked.
            let status = try await Self.unlessBusy {
                try await client.execute(
                    uri: "/api/v1/session", method: .post, headers: .json,
                    body: jsonBody(["username": "door2", "password": "longenough1"])
                ) { $0.status }
            }
            #expect(status == .ok)
            // Staff see the matrix but not the account form.
            let staff = try await Self.signIn(client, "staff")
            let staffPage = try await client.execute(
                uri: "/console/c/\(c)/access", method: .get, headers: [.cookie: staff.cookie]
            ) { $0.text }
            #expect(staffPage.contains("id=\"capabilities\"") && !staffPage.contains("id=\"new-account\""))
            let forbidden = try await client.execute(
                uri: "/console/c/\(c)/access/accounts", method: .post,
                headers: [.cookie: staff.cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "username=y&displayName=Y&password=longenough1&role=guard&_csrf=\(staff.csrf)")
            ) { $0.status }
            #expect(forbidden == .forbidden)
        }
    }

    @Test func safeRedirectsOnly() {
        #expect(WebConsole.safeNext("/console/c/1") == "/console/c/1")
        #expect(WebConsole.safeNext("//evil.example") == "")
        #expect(WebConsole.safeNext("https://evil.example") == "")
        #expect(WebConsole.safeNext("/\\evil") == "")
    }
}
