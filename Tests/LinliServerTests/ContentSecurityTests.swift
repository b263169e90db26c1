import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliHouseholdImport
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliDevices
@testable import LinliHTTP
@testable import LinliLinkage
@testable import LinliMessaging
@testable import LinliServer
@testable import LinliWorkOrders

/// The Content-Security-Policy allows no inline script or style: the templates must hold none,
/// and the files they name instead must be served.
@Suite("Content-Security-Policy")
struct ContentSecurityTests {
    static var templateFolders: [URL] {
        get throws {
            [
                try Pages.kernelTemplates, try CommunityModule.templates, try HouseholdImportModule.templates,
                try DevicesModule.templates,
                try WorkOrdersModule.templates, try MessagingModule.templates, try LinkageModule.templates,
            ]
        }
    }

    @Test func noTemplateHoldsInlineScriptStyleOrHandlers() throws {
        // What a strict policy refuses: inline <script> (one with src= is a file), <style>, style
        // attributes, on… handlers and javascript: addresses.
        let refused = [
            #"<script(?![^>]*\bsrc=)[^>]*>"#, #"<style\b"#, #"\sstyle\s*="#, #"\son[a-z]+\s*="#, #"javascript:"#,
        ].map { try! Regex($0).ignoresCase() }
        var found: [String] = []
        var count = 0
        for folder in try Self.templateFolders {
            for file in try FileManager.default.contentsOfDirectory(atPath: folder.path)
            where file.hasSuffix(".mustache") {
                count += 1
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                for pattern in refused where text.contains(pattern) { found.append(file) }
            }
        }
        #expect(count > 30, "the templates were read")
        #expect(found.isEmpty, "inline script or style in \(found)")
    }

    @Test func pagesCarryThePolicyAndTheirScriptsAreServed() async throws {
        try await withApp { client, fixture in
            let login = try await client.execute(uri: "/login", method: .get) { $0 }
            let policy = try #require(login.headers[HTTPField.Name("Content-Security-Policy")!])
            for directive in [
                "default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'", "base-uri 'self'",
                "form-action 'self'", "frame-ancestors 'none'",
            ] {
                #expect(policy.contains(directive))
            }
            #expect(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"))
            #expect(login.headers[.xContentTypeOptions] == "nosniff")
            #expect(login.headers[HTTPField.Name("Referrer-Policy")!] == "same-origin")
            // Every /assets/… a page names is there, for anyone (the login page needs its style sheet).
            var named: Set<String> = []
            for folder in try Self.templateFolders {
                for file in try FileManager.default.contentsOfDirectory(atPath: folder.path)
                where file.hasSuffix(".mustache") {
                    let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                    for match in text.matches(of: /\/assets\/([a-z0-9-]+\.(?:js|css))/) {
                        named.insert(String(match.1))
                    }
                }
            }
            #expect(named.isSuperset(of: ["linli.css", "linli.js", "alarms.js", "overview.js", "apidocs.css"]))
            for name in named {
                let response = try await client.execute(uri: "/assets/\(name)", method: .get) { $0 }
                #expect(response.status == .ok, "\(name)")
                #expect(
                    response.headers[.contentType]?.hasPrefix(name.hasSuffix(".js") ? "text/javascript" : "text/css")
                        == true)
                #expect(!response.text.contains("{{"), "\(name) is served as it is, not a template")
            }
            let missing = try await client.execute(uri: "/assets/..%2Flayout.mustache", method: .get) { $0.status }
            #expect(missing == .notFound)
            let template = try await client.execute(uri: "/assets/layout.mustache", method: .get) { $0.status }
            #expect(template == .notFound, "templates are not assets")
            _ = fixture
        }
    }
}
