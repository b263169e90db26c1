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
@testable import LinliLinkage
@testable import LinliMessaging
@testable import LinliServer
@testable import LinliStorage
@testable import LinliWorkOrders

@Suite("HTTP API")
struct APITests {
    @Test func healthReadinessMetricsAndContract() async throws {
        try await withApp { client, _ in
            #expect(try await client.execute(uri: "/healthz", method: .get) { $0.status } == .ok)
            // A bad token does not break public endpoints.
            #expect(
                try await client.execute(uri: "/healthz", method: .get, headers: [.authorization: "Bearer wrong"]) {
                    $0.status
                } == .ok)
            let ready = try await client.execute(uri: "/readyz", method: .get) { try $0.json() }
            #expect(ready["status"] as? String == "ready")
            let spec = try await client.execute(uri: "/api/v1/openapi.yaml", method: .get) { $0.text }
            #expect(spec.hasPrefix("openapi: 3.1"))
            let docs = try await client.execute(uri: "/api/docs", method: .get) { $0.text }
            #expect(docs.contains("/api/v1/communities/{cid}/people"))
            let metrics = try await client.execute(uri: "/metrics", method: .get) { $0.text }
            #expect(metrics.contains("hb_requests") && metrics.contains("http_route=\"/readyz\""))
            #expect(metrics.contains("linli_db_connections"))
        }
    }

    @Test func signInSetsAHardenedCookieAndWritesNeedTheCSRFToken() async throws {
        try await withApp { client, fixture in
            var (cookie, csrf) = ("", "")
            let status = try await WebTests.unlessBusy {
                try await client.execute(
                    uri: "/api/v1/session", method: .post, headers: .json,
                    body: jsonBody(["username": "Manager", "password": Fixture.password])
                ) { response in
                    guard response.status == .ok else { return response.status }
                    let setCookie = response.headers[.setCookie] ?? ""
                    #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Lax"))
                    cookie = String(setCookie.split(separator: ";").first ?? "")
                    csrf = try response.json()["csrfToken"] as? String ?? ""
                    return response.status
                }
            }
            #expect(status == .ok)
            #expect(!csrf.isEmpty)
            let me = try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: cookie]) {
                try $0.json()
            }
            #expect(me["username"] as? String == "manager")
            let path = "/api/v1/communities/\(fixture.community.id)/buildings"
            let body = jsonBody(["name": "4号楼", "floors": 18])
            let refused = try await client.execute(
                uri: path, method: .post, headers: HTTPFields.json.merging([.cookie: cookie]), body: body
            ) { $0 }
            #expect(refused.status == .forbidden)
            #expect(refused.text.contains("csrf"))
            let accepted = try await client.execute(
                uri: path, method: .post,
                headers: HTTPFields.json.merging([.cookie: cookie, HTTPField.Name("X-CSRF-Token")!: csrf]), body: body
            ) { $0.status }
            #expect(accepted == .created)
            // Signing out ends the session on the server, not only in the browser.
            _ = try await client.execute(uri: "/api/v1/session", method: .delete, headers: [.cookie: cookie]) {
                $0.status
            }
            #expect(
                try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: cookie]) { $0.status }
                    == .unauthorized)
        }
    }

    @Test func repeatedFailedSignInsAreThrottledThenLocked() async throws {
        try await withApp { client, _ in
            var statuses: [HTTPResponse.Status] = []
            var retryAfter: String? = nil
            // From the third failure each waits twice as long as the last (1 s, 2 s, 4 s …). On a
            // loaded machine the next try may come after the first wait is over; it cannot come
            // after all of them, so a 429 follows within a few tries.
            for _ in 0..<8 where retryAfter == nil {
                _ = try await WebTests.unlessBusy {
                    try await client.execute(
                        uri: "/api/v1/session", method: .post, headers: .json,
                        body: jsonBody(["username": "staff", "password": "wrong password!"])
                    ) { response in
                        if response.status != .serviceUnavailable { statuses.append(response.status) }
                        if response.status == .tooManyRequests { retryAfter = response.headers[.retryAfter] }
                        return response.status
                    }
                }
            }
            #expect(statuses.prefix(3).allSatisfy { $0 == .unauthorized })
            #expect(statuses.count >= 4 && statuses.last == .tooManyRequests, "\(statuses)")
            #expect(Int(retryAfter ?? "") ?? 0 >= 1)
            // While throttled even the right password waits: guessing cannot race the lock.
            let right = try await WebTests.unlessBusy {
                try await client.execute(
                    uri: "/api/v1/session", method: .post, headers: .json,
                    body: jsonBody(["username": "staff", "password": Fixture.password])
                ) { $0.status }
            }
            #expect(right == .tooManyRequests)
        }
        let throttle = LoginThrottle(lockAfter: 5, lockDuration: .seconds(900), spreadAfter: 8, logger: quietLogger)
        let x = LoginThrottle.Key.attempt("x")
        for _ in 0..<5 { await throttle.failed([x]) }
        #expect(await throttle.retryAfter([x]) ?? 0 > 800, "the fifth failure locks one client for the lock duration")
        await throttle.succeeded([x])
        #expect(await throttle.retryAfter([x]) == nil)
        // Failures spread over an account or an address slow it down, never lock it.
        let spread = LoginThrottle.Key.spread("account x")
        for _ in 0..<7 { await throttle.failed([spread]) }
        #expect(await throttle.retryAfter([spread]) == nil, "below the threshold nothing waits")
        for _ in 0..<30 { await throttle.failed([spread]) }
        let wait = await throttle.retryAfter([spread]) ?? 0
        #expect(wait >= 1 && wait <= 61, "slowed to at most a minute, got \(wait) s")
        await throttle.succeeded([spread])
        #expect(await throttle.retryAfter([spread]) != nil, "a success elsewhere does not clear what is spread")
    }

    /// The lockout attack: someone else's wrong passwords, as many as they like, do not keep the
    /// owner out of a browser that has signed in to the account before (its device cookie).
    @Test func wrongPasswordsFromElsewhereDoNotLockTheOwnerOut() async throws {
        try await withApp { client, fixture in
            var browser = ""
            let signedIn = try await WebTests.unlessBusy {
                try await client.execute(
                    uri: "/api/v1/session", method: .post, headers: .json,
                    body: jsonBody(["username": "staff", "password": Fixture.password])
                ) { response in
                    guard response.status == .ok else { return response.status }
                    let cookies = response.headers[values: .setCookie]
                    let device = try #require(cookies.first { $0.hasPrefix("linli_browser=") })
                    #expect(device.contains("HttpOnly") && device.contains("Max-Age=31536000"))
                    browser = String(device.split(separator: ";").first ?? "")
                    return response.status
                }
            }
            #expect(signedIn == .ok)
            var attacker: [HTTPResponse.Status] = []
            for _ in 0..<15 {
                attacker.append(
                    try await WebTests.unlessBusy {
                        try await client.execute(
                            uri: "/api/v1/session", method: .post, headers: .json,
                            body: jsonBody(["username": "staff", "password": "wrong password!"])
                        ) { $0.status }
                    })
            }
            #expect(attacker.contains(.tooManyRequests), "the guesser is slowed and then locked")
            #expect(!attacker.contains(.ok))
            let owner = try await WebTests.unlessBusy {
                try await client.execute(
                    uri: "/api/v1/session", method: .post, headers: HTTPFields.json.merging([.cookie: browser]),
                    body: jsonBody(["username": "staff", "password": Fixture.password])
                ) { $0.status }
            }
            #expect(owner == .ok, "the owner's browser still signs in")
            // A device cookie made for another account, or forged, is no pass.
            let signIn = Authentication(services: fixture.services)
            let value = String(browser.dropFirst("linli_browser=".count))
            #expect(signIn.knownBrowser(value, username: "staff") != nil)
            #expect(signIn.knownBrowser(value, username: "manager") == nil)
            #expect(signIn.knownBrowser("abc.def", username: "staff") == nil)
            #expect(signIn.knownBrowser(value + "x", username: "staff") == nil)
            let otherAccount = try await WebTests.unlessBusy {
                try await client.execute(
                    uri: "/api/v1/session", method: .post, headers: HTTPFields.json.merging([.cookie: browser]),
                    body: jsonBody(["username": "manager", "password": "wrong password!"])
                ) { $0.status }
            }
            #expect(otherAccount == .unauthorized)
        }
    }

    /// Whoever learnt an old password may have made a token with it: a new password revokes the
    /// account's tokens, unless the owner keeps them, which the audit log records.
    @Test func aNewPasswordRevokesTheAccountsTokensUnlessKept() async throws {
        try await withApp { client, fixture in
            let staff = try #require(try await fixture.store.account(username: "staff"))
            let revoked = try await fixture.store.setPassword(
                accountId: staff.id, hash: Fixture.passwordHash, actor: Principal(accountId: staff.id, name: "staff"))
            #expect(revoked.map(\.name) == ["test"])
            #expect(
                try await client.execute(uri: "/api/v1/me", method: .get, headers: fixture.bearer("staff")) {
                    $0.status
                }
                    == .unauthorized)
            let manager = try #require(try await fixture.store.account(username: "manager"))
            let kept = try await fixture.store.setPassword(
                accountId: manager.id, hash: Fixture.passwordHash, keepTokens: true,
                actor: Principal(accountId: manager.id, name: "manager"))
            #expect(kept.isEmpty)
            #expect(
                try await client.execute(uri: "/api/v1/me", method: .get, headers: fixture.bearer("manager")) {
                    $0.status
                } == .ok)
            let audit = try await fixture.store.read { db in
                try await AuditLog.list(
                    db, scope: .everything, action: "account.password_changed.tokens_kept", subjectId: manager.id,
                    page: PageRequest())
            }
            #expect(audit.total == 1)
        }
    }

    @Test func tokensAreShownOnceStoredHashedAndRevocable() async throws {
        try await withApp { client, fixture in
            let created = try await client.execute(
                uri: "/api/v1/tokens", method: .post, headers: HTTPFields.json.merging(fixture.bearer("staff")),
                body: jsonBody(["name": "gate sync"])
            ) { try $0.json() }
            let token = try #require(created["token"] as? String)
            let id = try #require(created["id"] as? String)
            let stored = try await fixture.store.read { db in
                try await db.raw("SELECT token_hash FROM api_tokens WHERE id = \(bind: id)").first()!.decode(
                    column: "token_hash", as: String.self)
            }
            #expect(stored == Digest.sha256Hex(token) && !stored.contains(token))
            let listed = try await client.execute(uri: "/api/v1/tokens", method: .get, headers: fixture.bearer("staff"))
            { $0.text }
            #expect(!listed.contains(token))
            #expect(
                try await client.execute(uri: "/api/v1/me", method: .get, headers: [.authorization: "Bearer \(token)"])
                { $0.status } == .ok)
            #expect(
                try await client.execute(uri: "/api/v1/tokens/\(id)", method: .delete, headers: fixture.bearer("staff"))
                { $0.status } == .noContent)
            let after = try await client.execute(
                uri: "/api/v1/me", method: .get, headers: [.authorization: "Bearer \(token)"]
            ) { $0 }
            #expect(after.status == .unauthorized && after.text.contains("token is not valid"))
            // Someone else's token id is not found, not revoked.
            #expect(
                try await client.execute(
                    uri: "/api/v1/tokens/\(id)", method: .delete, headers: fixture.bearer("manager")
                ) { $0.status } == .notFound)
        }
    }

    @Test func badInputGetsAClearProblemNeverA500() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let admin = HTTPFields.json.merging(fixture.bearer("admin"))
            func problem(_ uri: String, _ method: HTTPRequest.Method = .post, _ body: ByteBuffer? = nil) async throws
                -> (Int, [String: Any], String)
            {
                try await client.execute(uri: uri, method: method, headers: admin, body: body) { r in
                    (Int(r.status.code), try r.json(), r.headers[.contentType] ?? "")
                }
            }
            func fields(_ p: [String: Any]) -> [String] {
                (p["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
            }

            let malformed = try await problem(
                "/api/v1/communities/\(c)/buildings", .post, ByteBuffer(string: "{\"name\": "))
            #expect(malformed.0 == 400 && malformed.2 == "application/problem+json")
            let empty = try await problem("/api/v1/communities/\(c)/buildings", .post, nil)
            #expect(empty.0 == 400)
            let wrongType = try await problem(
                "/api/v1/communities/\(c)/buildings", .post, jsonBody(["name": "5号楼", "floors": "many"]))
            #expect(wrongType.0 == 422 && fields(wrongType.1) == ["floors"])
            let missing = try await problem("/api/v1/communities/\(c)/buildings", .post, jsonBody(["floors": 3]))
            #expect(missing.0 == 422 && fields(missing.1) == ["name"])
            let tooLong = try await problem(
                "/api/v1/communities/\(c)/people", .post, jsonBody(["name": String(repeating: "长", count: 101)]))
            #expect(tooLong.0 == 422 && fields(tooLong.1) == ["name"])
            let badEnum = try await problem(
                "/api/v1/communities/\(c)/organisations", .post, jsonBody(["name": "x", "kind": "spaceport"]))
            #expect(badEnum.0 == 422 && fields(badEnum.1) == ["kind"])
            let badTags = try await problem(
                "/api/v1/communities/\(c)/people", .post, jsonBody(["name": "x", "careTags": ["vip"]]))
            #expect(badTags.0 == 422 && fields(badTags.1) == ["careTags[0]"])
            let badId = try await problem(
                "/api/v1/communities/\(c)/people", .post,
                jsonBody(["name": "x", "identityNumber": "123456789012345678"]))
            #expect(badId.0 == 422 && fields(badId.1) == ["identityNumber"])
            let badPage = try await problem(
                "/api/v1/communities/\(c)/households?limit=100000&offset=-1&sort=colour&occupancy=castle", .get)
            #expect(badPage.0 == 400 && Set(fields(badPage.1)) == ["limit", "offset", "sort", "occupancy"])
            let notNumber = try await problem("/api/v1/communities/\(c)/people?limit=ten", .get)
            #expect(notNumber.0 == 400 && fields(notNumber.1) == ["limit"])
            let duplicate = try await problem(
                "/api/v1/communities/\(c)/buildings", .post, jsonBody(["name": "1号楼", "floors": 3]))
            #expect(duplicate.0 == 409 && fields(duplicate.1) == ["name"])
            let unknownCommunity = try await problem("/api/v1/communities/nope/people", .get)
            #expect(unknownCommunity.0 == 404)
            let noRoute = try await client.execute(uri: "/api/v1/no-such-thing", method: .get, headers: admin) { $0 }
            #expect(noRoute.status == .notFound && noRoute.headers[.contentType] == "application/problem+json")
            let badDates = try await problem(
                "/api/v1/residencies", .post,
                jsonBody(["personId": "x", "householdId": "y", "role": "owner", "leaseEnd": "2024-02-30"]))
            #expect(badDates.0 == 422 && Set(fields(badDates.1)) == ["leaseEnd"])
            let nullName = try await problem(
                "/api/v1/communities/\(c)/buildings", .post, ByteBuffer(string: "{\"name\": null, \"floors\": 2}"))
            #expect(nullName.0 == 422 && fields(nullName.1) == ["name"])
            let array = try await problem("/api/v1/communities/\(c)/buildings", .post, ByteBuffer(string: "[1,2]"))
            #expect(array.0 == 422)
            let big = ByteBuffer(repeating: UInt8(ascii: "a"), count: 17 * 1024 * 1024)
            let tooBig = try await client.execute(
                uri: "/api/v1/communities/\(c)/households/import", method: .post, headers: admin, body: big
            ) { $0.status }
            #expect(tooBig == .contentTooLarge)
        }
    }

    @Test func repeatedReadsAreCachedPerCallerAndNeverStaleAfterAWrite() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let uri = "/api/v1/communities/\(c)/buildings"
            func names(_ who: String, _ extra: HTTPFields = [:]) async throws -> [String] {
                try await client.execute(uri: uri, method: .get, headers: fixture.bearer(who).merging(extra)) { r in
                    (try r.json()["items"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                }
            }
            let first = try await names("staff")
            #expect(try await names("staff") == first)
            #expect(try await names("resident").count == 1, "another caller gets their own answer, not the cached one")
            let created = try await client.execute(
                uri: uri, method: .post, headers: HTTPFields.json.merging(fixture.bearer("staff")),
                body: jsonBody(["name": "缓存楼", "floors": 2])
            ) { $0.status }
            #expect(created == .created)
            #expect(try await names("staff").contains("缓存楼"), "a write in this process invalidates every cached answer")
            #expect(try await names("staff", [.cacheControl: "no-cache"]).contains("缓存楼"))
            // Direct database changes (another node) show after the entry's lifetime at most.
            try await fixture.store.database.write { db in
                try await db.raw("UPDATE buildings SET name = '改名楼' WHERE name = '缓存楼'").run()
            }
            #expect(try await names("staff", [.cacheControl: "no-cache"]).contains("改名楼"))
        }
    }

    /// The last platform administrator cannot give up the role (nobody could grant roles or create
    /// communities any more, except from the server's shell); with a second one, it can.
    @Test func theLastPlatformAdministratorStays() async throws {
        try await withApp { client, fixture in
            let admin = HTTPFields.json.merging(fixture.bearer("admin"))
            func call(
                _ uri: String, _ method: HTTPRequest.Method = .get, _ body: [String: Any]? = nil,
                expect: HTTPResponse.Status = .ok
            ) async throws -> [String: Any] {
                try await client.execute(uri: uri, method: method, headers: admin, body: body.map(jsonBody)) { r in
                    #expect(r.status == expect, "\(method) \(uri): \(r.status) \(r.text)")
                    return (try? r.json()) ?? [:]
                }
            }
            let me = try await call("/api/v1/me")
            let roles = me["roles"] as? [[String: Any]] ?? []
            let own = try #require(roles.first { $0["role"] as? String == "platform_admin" }?["id"] as? String)
            let refused = try await call("/api/v1/role-bindings/\(own)", .delete, expect: .conflict)
            #expect((refused["detail"] as? String ?? "").contains("last platform administrator"), "\(refused)")
            let second = try await call(
                "/api/v1/accounts", .post,
                ["username": "second-admin", "displayName": "第二管理员", "password": "second-admin-password"],
                expect: .created)
            let secondId = try #require(second["id"] as? String)
            _ = try await call(
                "/api/v1/accounts/\(secondId)/roles", .post, ["role": "platform_admin"], expect: .created)
            _ = try await call("/api/v1/role-bindings/\(own)", .delete, expect: .noContent)
        }
    }

    /// Every remaining endpoint once, as a property office would set up a new building.
    @Test func aTourOfTheRemainingEndpoints() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let manager = HTTPFields.json.merging(fixture.bearer("manager"))
            func call(
                _ uri: String, _ method: HTTPRequest.Method = .get, _ body: [String: Any]? = nil,
                expect: HTTPResponse.Status = .ok
            ) async throws -> [String: Any] {
                try await client.execute(uri: uri, method: method, headers: manager, body: body.map(jsonBody)) { r in
                    #expect(r.status == expect, "\(method) \(uri): \(r.status) \(r.text)")
                    return (try? r.json()) ?? [:]
                }
            }
            #expect(try await call("/api/v1/communities/\(c)")["name"] as? String == "幸福里小区")
            let building = try await call(
                "/api/v1/communities/\(c)/buildings", .post, ["name": "10号楼", "floors": 6], expect: .created)
            let b = try #require(building["id"] as? String)
            #expect(try await call("/api/v1/buildings/\(b)")["floors"] as? Int == 6)
            let unit = try await call("/api/v1/buildings/\(b)/units", .post, ["name": "1单元"], expect: .created)
            let u = try #require(unit["id"] as? String)
            _ = try await call("/api/v1/buildings/\(b)/units", .post, ["name": "1单元"], expect: .conflict)
            #expect((try await call("/api/v1/buildings/\(b)/units")["items"] as? [Any])?.count == 1)
            let household = try await call(
                "/api/v1/communities/\(c)/households", .post,
                ["unitId": u, "room": "101", "floor": 1, "area": 75.5, "occupancy": "vacant"], expect: .created)
            let h = try #require(household["id"] as? String)
            #expect(household["buildingName"] as? String == "10号楼")
            _ = try await call(
                "/api/v1/communities/\(c)/households", .post,
                ["unitId": "nope", "room": "102", "floor": 1, "occupancy": "vacant"], expect: .unprocessableContent)
            let patched = try await call(
                "/api/v1/households/\(h)", .patch, ["occupancy": "owner_occupied", "area": 80])
            #expect(patched["occupancy"] as? String == "owner_occupied" && patched["area"] as? Double == 80)
            let filtered = try await call(
                "/api/v1/communities/\(c)/households?buildingId=\(b)&occupancy=owner_occupied&sort=-area")
            #expect(filtered["total"] as? Int == 1)
            let person = try await call(
                "/api/v1/communities/\(c)/people", .post,
                ["name": "郑新", "phone": "13711112222", "careTags": ["elderly_alone"]], expect: .created)
            let p = try #require(person["id"] as? String)
            let changed = try await call(
                "/api/v1/people/\(p)", .patch, ["phone": "13711113333", "careTags": ["elderly_alone", "disabled"]])
            #expect(changed["phone"] as? String == "13711113333" && (changed["careTags"] as? [String])?.count == 2)
            _ = try await call(
                "/api/v1/residencies", .post, ["personId": p, "householdId": h, "role": "owner"], expect: .created)
            let tagged = try await call(
                "/api/v1/communities/\(c)/people?careTag=disabled&current=true&householdId=\(h)")
            #expect(tagged["total"] as? Int == 1)
            let vehicle = try await call(
                "/api/v1/communities/\(c)/vehicles", .post,
                ["plate": "浙A 12345", "householdId": h, "personId": p, "description": "白色轿车"], expect: .created)
            #expect(vehicle["plate"] as? String == "浙A12345")
            _ = try await call("/api/v1/communities/\(c)/vehicles", .post, ["plate": "浙A12345"], expect: .conflict)
            let byPlate = try await call("/api/v1/communities/\(c)/people?q=a12345")
            #expect(
                (byPlate["items"] as? [[String: Any]])?.first?["id"] as? String == p,
                "residents are found by their plate")
            #expect(try await call("/api/v1/communities/\(c)/vehicles?q=12345")["total"] as? Int == 1)
            let organisations =
                try await call("/api/v1/communities/\(c)/organisations")["items"] as? [[String: Any]] ?? []
            let o = try #require(organisations.first?["id"] as? String)
            _ = try await call(
                "/api/v1/organisations/\(o)/staff", .post, ["name": "冯工", "title": "电工", "phone": "13900008888"],
                expect: .created)
            #expect(
                (try await call("/api/v1/organisations/\(o)/staff")["items"] as? [[String: Any]])?.contains {
                    $0["name"] as? String == "冯工"
                } == true)
            _ = try await call(
                "/api/v1/communities/\(c)/grids", .post, ["name": "第二网格", "buildingIds": [b]], expect: .created)
            _ = try await call(
                "/api/v1/communities/\(c)/grids", .post, ["name": "坏网格", "buildingIds": ["nope"]],
                expect: .unprocessableContent)
            let grids = try await call("/api/v1/communities/\(c)/grids")["items"] as? [[String: Any]] ?? []
            #expect(
                grids.count == 2
                    && grids.contains { ($0["buildings"] as? [[String: Any]])?.first?["id"] as? String == b })
            let account = try await call(
                "/api/v1/accounts", .post,
                ["username": "temp-guard", "displayName": "临时门岗", "password": "temporary-password"], expect: .created)
            let a = try #require(account["id"] as? String)
            let binding = try await call(
                "/api/v1/accounts/\(a)/roles", .post, ["role": "guard", "communityId": c], expect: .created)
            let bindingId = try #require(binding["id"] as? String)
            _ = try await call("/api/v1/role-bindings/\(bindingId)", .delete, expect: .noContent)
            _ = try await call("/api/v1/role-bindings/\(bindingId)", .delete, expect: .notFound)
            #expect(try await call("/api/v1/tokens")["total"] as? Int == 1)
        }
    }

}
