import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliDemo
import LinliStorage
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliDevices
@testable import LinliHTTP
@testable import LinliLinkage
@testable import LinliMessaging
@testable import LinliServer
@testable import LinliWorkOrders

@Suite("HTTP methods and media types")
struct HTTPSemanticsTests {
    // MARK: 405

    @Test func aPathServedUnderOtherMethodsAnswers405WithAllow() async throws {
        try await withApp { client, fixture in
            func ask(_ method: HTTPRequest.Method, _ uri: String, _ headers: HTTPFields = [:]) async throws -> (
                status: HTTPResponse.Status, allow: String?, type: String?, problem: [String: Any]
            ) {
                try await client.execute(uri: uri, method: method, headers: headers) { r in
                    (r.status, r.headers[.allow], r.headers[.contentType], (try? r.json()) ?? [:])
                }
            }
            let collection = try await ask(.delete, "/api/v1/communities")
            #expect(collection.status == .methodNotAllowed && collection.allow == "GET, HEAD, POST")
            #expect(collection.type == "application/problem+json")
            #expect(collection.problem["type"] as? String == "https://linli.dev/problems/method-not-allowed")
            #expect(collection.problem["status"] as? Int == 405)
            #expect((collection.problem["detail"] as? String)?.contains("GET, HEAD, POST") == true)
            // PUT where only PATCH is, with a parameter in the path; signed in or not, the same.
            let household = "/api/v1/households/\(fixture.residentHousehold)"
            #expect(try await ask(.put, household).allow == "GET, HEAD, PATCH")
            let signedIn = try await ask(.put, household, fixture.bearer("manager"))
            #expect(signedIn.status == .methodNotAllowed && signedIn.allow == "GET, HEAD, PATCH")
            #expect(try await ask(.get, "/api/v1/tokens/\(UUID().uuidString.lowercased())").allow == "DELETE")
            #expect(try await ask(.post, "/api/v1/devices/pk1/dn1").allow == "GET, HEAD, PATCH")
            // A trailing slash is the same path to the router, and so here.
            #expect(try await ask(.delete, "/api/v1/communities/").allow == "GET, HEAD, POST")
            // Paths served under no method stay 404, deeper or beside a real one.
            for (method, uri) in [
                (HTTPRequest.Method.get, "/api/v1/nothing"), (.delete, "/api/v1/nothing"),
                (.post, household + "/nothing"),
                (.get, "/api/v1/communities/x/nothing"), (.put, "/nowhere"),
            ] {
                let answer = try await ask(method, uri)
                #expect(answer.status == .notFound && answer.allow == nil, "\(method) \(uri)")
                #expect(answer.problem["type"] as? String == "https://linli.dev/problems/not-found")
            }
            // Errors carry the security headers as every other answer does.
            for uri in ["/api/v1/nothing", "/api/v1/communities", "/console/nothing"] {
                let headers = try await client.execute(uri: uri, method: .get) { $0.headers }
                #expect(
                    headers[.xContentTypeOptions] == "nosniff" && headers[HTTPField.Name("X-Frame-Options")!] == "DENY",
                    "\(uri)")
            }
            // HEAD is served wherever GET is, without a body; OPTIONS on a served path says what is.
            let head = try await client.execute(uri: "/healthz", method: .head) { ($0.status, $0.body.readableBytes) }
            #expect(head.0 == .ok && head.1 == 0)
            #expect(
                try await ask(.head, "/api/v1/communities").status == .unauthorized, "a HEAD is checked as its GET is")
            #expect(try await ask(.head, "/logout").allow == "POST")
            #expect(try await ask(.options, "/api/v1/communities").allow == "GET, HEAD, POST")
            #expect(try await ask(.options, "/nowhere").status == .notFound)
            // Open311's paths, and the metrics name the route, not "NotFound".
            #expect(try await ask(.delete, "/open311/v2/requests.json").allow == "GET, HEAD, POST")
            let metrics = try await client.execute(uri: "/metrics", method: .get) { $0.text }
            let line = metrics.split(separator: "\n").first {
                $0.contains("\"/api/v1/households/{id}\"") && $0.contains("\"PUT\"") && $0.contains("\"405\"")
            }
            #expect(line != nil, "\(metrics)")
        }
    }

    @Test func consolePagesAnswer405AsAPage() async throws {
        try await withApp { client, _ in
            let session = try await WebTests.signIn(client, "manager")
            // A GET on a form's target: no CSRF token needed, and the answer is the console's page.
            let page = try await client.execute(
                uri: "/console/rules/\(UUID().uuidString.lowercased())/delete", method: .get,
                headers: [.cookie: session.cookie]
            ) { $0 }
            #expect(page.status == .methodNotAllowed && page.headers[.allow] == "POST")
            #expect(
                page.headers[.contentType]?.hasPrefix("text/html") == true && page.text.contains("不支持这种请求方式"))
            let anonymous = try await client.execute(uri: "/console", method: .delete) { $0 }
            #expect(anonymous.status == .methodNotAllowed && anonymous.headers[.allow] == "GET, HEAD")
            #expect(try await client.execute(uri: "/logout", method: .get) { $0.headers[.allow] } == "POST")
            // The pages themselves are untouched (a manager of one community is sent on to it).
            #expect(
                try await client.execute(uri: "/console", method: .get, headers: [.cookie: session.cookie]) {
                    $0.status
                } == .seeOther)
            #expect(try await client.execute(uri: "/login", method: .get) { $0.status } == .ok)
        }
    }

    /// Every route the server registers: another method on its path answers 405 listing exactly
    /// the methods registered for that path, so the table and the router agree.
    @Test func everyRegisteredPathListsItsMethods() async throws {
        try await withApp { client, fixture in
            var byPath: [String: Set<HTTPRequest.Method>] = [:]
            for route in buildRouter(fixture.services).routes {
                byPath[route.path.description, default: []].insert(route.method)
                if route.method == .get { byPath[route.path.description]!.insert(.head) }
            }
            #expect(byPath.count > 100)
            for (pattern, methods) in byPath {
                let uri =
                    "/"
                    + pattern.split(separator: "/").map {
                        $0.hasPrefix("{") || $0.hasPrefix("*") ? "sample-1" : String($0)
                    }.joined(separator: "/")
                let other = try #require(
                    [HTTPRequest.Method.put, .patch, .delete, .post, .get].first { !methods.contains($0) })
                let allow = try await client.execute(uri: uri, method: other) { r in
                    #expect(r.status == .methodNotAllowed, "\(other) \(uri)")
                    return r.headers[.allow] ?? ""
                }
                #expect(
                    Set(allow.components(separatedBy: ", ").compactMap { HTTPRequest.Method($0) }) == methods,
                    "\(pattern): \(allow)")
            }
        }
    }

    /// Parameters, wildcards and their order, on a router of its own: whatever the router matches
    /// (or not) under one method, the table matches under every other.
    @Test func patternsMatchAsTheRouterMatchesThem() async throws {
        let router = Router()
        router.get("/files/**") { _, _ in "files" }
        router.get("/a/:id") { _, _ in "a" }
        router.patch("/a/{id}") { _, _ in "a" }
        router.get("/a/new") { _, _ in "new" }
        router.post("/img/{name}.jpg") { _, _ in "jpg" }
        router.get("/x/*/y") { _, _ in "y" }
        router.delete("/doc-*") { _, _ in "doc" }
        router.add(middleware: MethodNotAllowedMiddleware<BasicRequestContext>(routes: RouteMethods(router)))
        let cases: [(String, String?)] = [
            ("/a/42", "GET, PATCH"), ("/a/new", "GET"), ("/a/42/more", nil), ("/files/1/2/3", "GET"), ("/files", nil),
            ("/img/cat.jpg", "POST"), ("/img/cat.png", nil), ("/x/any/y", "GET"), ("/x/any/z", nil),
            ("/doc-7", "DELETE"), ("/dog-7", nil),
        ]
        let table = RouteMethods(router)
        for (path, allow) in cases {
            #expect(table.resolve(path)?.methods.map(\.rawValue).joined(separator: ", ") == allow, "\(path)")
        }
        let app = Application(router: router)
        try await app.test(.router) { client in
            for (path, allow) in cases {
                let served = allow?.components(separatedBy: ", ") ?? []
                for method in [HTTPRequest.Method.get, .post, .patch, .delete] {
                    let (status, header) = try await client.execute(uri: path, method: method) {
                        ($0.status, $0.headers[.allow])
                    }
                    if served.contains(method.rawValue) {
                        #expect(status == .ok, "\(method) \(path)")
                    } else if let allow {
                        #expect(status == .methodNotAllowed && header == allow, "\(method) \(path)")
                    } else {
                        #expect(status == .notFound && header == nil, "\(method) \(path)")
                    }
                }
            }
        }
    }

    // MARK: 415

    @Test func jsonEndpointsRefuseBodiesDeclaredAsSomethingElse() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let buildings = "/api/v1/communities/\(c)/buildings"
            func post(_ uri: String, _ method: HTTPRequest.Method = .post, type: String?, _ body: String) async throws
                -> (status: HTTPResponse.Status, headers: HTTPFields, problem: [String: Any])
            {
                var headers = fixture.bearer("manager")
                if let type { headers[.contentType] = type }
                return try await client.execute(
                    uri: uri, method: method, headers: headers, body: ByteBuffer(string: body)
                ) { r in
                    (r.status, r.headers, (try? r.json()) ?? [:])
                }
            }
            // What `curl -d` sends without -H: a form.
            let form = try await post(
                buildings, type: "application/x-www-form-urlencoded", #"{"name": "9号楼", "floors": 6}"#)
            #expect(form.status == .unsupportedMediaType)
            #expect(form.headers[.contentType] == "application/problem+json")
            #expect(form.headers[HTTPField.Name("Accept-Post")!] == "application/json")
            #expect(form.problem["type"] as? String == "https://linli.dev/problems/unsupported-media-type")
            #expect((form.problem["errors"] as? [[String: Any]])?.first?["field"] as? String == "Content-Type")
            #expect((form.problem["detail"] as? String)?.contains("application/json") == true)
            #expect(
                try await post(buildings, type: "text/plain", #"{"name": "9号楼", "floors": 6}"#).status
                    == .unsupportedMediaType)
            #expect(try await post(buildings, type: "text/csv", "name,floors\n9号楼,6\n").status == .unsupportedMediaType)
            // JSON by any spelling passes; parameters and case do not matter.
            #expect(
                try await post(buildings, type: "Application/JSON; charset=UTF-8", #"{"name": "10号楼", "floors": 6}"#)
                    .status == .created)
            #expect(
                try await post(buildings, type: "application/vnd.linli+json", #"{"name": "11号楼", "floors": 6}"#).status
                    == .created)
            // No Content-Type: read as JSON, and a body that is not JSON is still a 400.
            #expect(try await post(buildings, type: nil, #"{"name": "12号楼", "floors": 6}"#).status == .created)
            #expect(try await post(buildings, type: nil, "name=13").status == .badRequest)
            // PATCH names Accept-Patch; JSON merge patch is JSON.
            let household = "/api/v1/households/\(fixture.residentHousehold)"
            let patch = try await post(household, .patch, type: "text/plain", #"{"occupancy": "rented"}"#)
            #expect(
                patch.status == .unsupportedMediaType
                    && patch.headers[HTTPField.Name("Accept-Patch")!] == "application/json")
            #expect(patch.headers[HTTPField.Name("Accept-Post")!] == nil)
            #expect(
                try await post(household, .patch, type: "application/merge-patch+json", #"{"occupancy": "rented"}"#)
                    .status == .ok)
            // PUT, and the device PATCH that reads its body itself.
            #expect(
                try await post("/api/v1/me/notification-preferences", .put, type: "text/plain", "{}").status
                    == .unsupportedMediaType)
            let pk = try #require(
                try await APIUser(client, fixture, as: "staff").call(
                    "/api/v1/communities/\(c)/products", .post, ["library": "door_contact"], expect: .created)[
                        "productKey"] as? String)
            _ = try await APIUser(client, fixture, as: "staff").call(
                "/api/v1/communities/\(c)/devices", .post, ["productKey": pk, "deviceName": "door-415"],
                expect: .created)
            #expect(
                try await post(
                    "/api/v1/devices/\(pk)/door-415", .patch, type: "application/x-www-form-urlencoded", "nickname=x"
                ).status == .unsupportedMediaType)
            #expect(
                try await post(
                    "/api/v1/devices/\(pk)/door-415", .patch, type: "application/json", #"{"nickname": "前门"}"#
                ).status == .ok)
            // Endpoints that take other bodies keep taking them: CSV imports whatever the header.
            let csv = "building,unit,room\n9号楼,1单元,101\n"
            #expect(
                try await post("/api/v1/communities/\(c)/households/import?dryRun=true", type: "text/csv", csv).status
                    == .ok)
            #expect(
                try await post("/api/v1/communities/\(c)/households/import?dryRun=true", type: nil, csv).status == .ok)
        }
    }

    @Test func jsonMediaTypes() {
        for json in [
            "application/json", "APPLICATION/JSON", "application/json; charset=utf-8",
            "application/json ;charset=UTF-8", " application/json",
            "application/problem+json", "application/merge-patch+json", "application/vnd.api+json; ext=x",
        ] {
            #expect(Request.isJSON(mediaType: json), "\(json)")
        }
        for other in [
            "application/x-www-form-urlencoded", "text/plain", "text/json", "text/csv; charset=utf-8",
            "application/jsonx", "application/+json",
            "application/json-seq", "multipart/form-data; boundary=x", "application/octet-stream", "json",
            "application/a/b+json",
        ] {
            #expect(!Request.isJSON(mediaType: other), "\(other)")
        }
    }
}
