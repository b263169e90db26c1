import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import Testing
@testable import LinliServer

@Suite("HTTP methods and media types")
struct HTTPSemanticsTests {
    // MARK: 405

    @Test func aPathServedUnderOtherMethodsAnswers405WithAllow() async throws {
        try await withApp { client, fixture in
            func ask(_ method: HTTPRequest.Method, _ uri: String, _ headers: HTTPFields = [:]) async throws -> (status: HTTPResponse.Status, allow: String?, type: String?, problem: [String: Any]) {
                try await client.execute(uri: uri, method: method, headers: headers) { r in
                    (r.status, r.headers[.allow], r.headers[.contentType], (try? r.json()) ?? [:])
                }
            }
            let collection = try await ask(.delete, "/api/v1/communities")
            #expect(collection.status == .methodNotAllowed && collection.allow == "GET, POST")
            #expect(collection.type == "application/problem+json")
            #expect(collection.problem["type"] as? String == "https://linli.dev/problems/method-not-allowed")
            #expect(collection.problem["status"] as? Int == 405)
            #expect((collection.problem["detail"] as? String)?.contains("GET, POST") == true)
            // PUT where only PATCH is, with a parameter in the path; signed in or not, the same.
            let household = "/api/v1/households/\(fixture.residentHousehold)"
            #expect(try await ask(.put, household).allow == "GET, PATCH")
            let signedIn = try await ask(.put, household, fixture.bearer("manager"))
            #expect(signedIn.status == .methodNotAllowed && signedIn.allow == "GET, PATCH")
            #expect(try await ask(.get, "/api/v1/tokens/\(UUID().uuidString.lowercased())").allow == "DELETE")
            #expect(try await ask(.post, "/api/v1/devices/pk1/dn1").allow == "GET, PATCH")
            // A trailing slash is the same path to the router, and so here.
            #expect(try await ask(.delete, "/api/v1/communities/").allow == "GET, POST")
            // Paths served under no method stay 404, deeper or beside a real one.
            for (method, uri) in [(HTTPRequest.Method.get, "/api/v1/nothing"), (.delete, "/api/v1/nothing"), (.post, household + "/nothing"),
                                  (.get, "/api/v1/communities/x/nothing"), (.put, "/nowhere")] {
                let answer = try await ask(method, uri)
                #expect(answer.status == .notFound && answer.allow == nil, "\(method) \(uri)")
                #expect(answer.problem["type"] as? String == "https://linli.dev/problems/not-found")
            }
            // HEAD and OPTIONS were never routed (404 everywhere); on a served path they now say what is.
            let head = try await ask(.head, "/healthz")
            #expect(head.status == .methodNotAllowed && head.allow == "GET")
            #expect(try await ask(.options, "/api/v1/communities").allow == "GET, POST")
            #expect(try await ask(.options, "/nowhere").status == .notFound)
            // Open311's paths, and the metrics name the route, not "NotFound".
            #expect(try await ask(.delete, "/open311/v2/requests.json").allow == "GET, POST")
            let metrics = try await client.execute(uri: "/metrics", method: .get) { $0.text }
            let line = metrics.split(separator: "\n").first { $0.contains("\"/api/v1/households/{id}\"") && $0.contains("\"PUT\"") && $0.contains("\"405\"") }
            #expect(line != nil, "\(metrics)")
        }
    }

    @Test func consolePagesAnswer405AsAPage() async throws {
        try await withApp { client, _ in
            let session = try await WebTests.signIn(client, "manager")
            // A GET on a form's target: no CSRF token needed, and the answer is the console's page.
            let page = try await client.execute(uri: "/console/rules/\(UUID().uuidString.lowercased())/delete", method: .get, headers: [.cookie: session.cookie]) { $0 }
            #expect(page.status == .methodNotAllowed && page.headers[.allow] == "POST")
            #expect(page.headers[.contentType]?.hasPrefix("text/html") == true && page.text.contains("Method not allowed"))
            let anonymous = try await client.execute(uri: "/console", method: .delete) { $0 }
            #expect(anonymous.status == .methodNotAllowed && anonymous.headers[.allow] == "GET")
            #expect(try await client.execute(uri: "/logout", method: .get) { $0.headers[.allow] } == "POST")
            // The pages themselves are untouched.
            #expect(try await client.execute(uri: "/console", method: .get, headers: [.cookie: session.cookie]) { $0.status } == .ok)
            #expect(try await client.execute(uri: "/login", method: .get) { $0.status } == .ok)
        }
    }

    /// Every route the server registers: another method on its path answers 405 listing exactly
    /// the methods registered for that path, so the table and the router agree.
    @Test func everyRegisteredPathListsItsMethods() async throws {
        try await withApp { client, fixture in
            var byPath: [String: Set<HTTPRequest.Method>] = [:]
            for route in buildRouter(fixture.services).routes { byPath[route.path.description, default: []].insert(route.method) }
            #expect(byPath.count > 100)
            for (pattern, methods) in byPath {
                let uri = "/" + pattern.split(separator: "/").map { $0.hasPrefix("{") || $0.hasPrefix("*") ? "sample-1" : String($0) }.joined(separator: "/")
                let other = try #require([HTTPRequest.Method.put, .patch, .delete, .post, .get].first { !methods.contains($0) })
                let allow = try await client.execute(uri: uri, method: other) { r in
                    #expect(r.status == .methodNotAllowed, "\(other) \(uri)")
                    return r.headers[.allow] ?? ""
                }
                #expect(Set(allow.components(separatedBy: ", ").compactMap { HTTPRequest.Method($0) }) == methods, "\(pattern): \(allow)")
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
            ("/img/cat.jpg", "POST"), ("/img/cat.png", nil), ("/x/any/y", "GET"), ("/x/any/z", nil), ("/doc-7", "DELETE"), ("/dog-7", nil),
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
                    let (status, header) = try await client.execute(uri: path, method: method) { ($0.status, $0.headers[.allow]) }
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
}
