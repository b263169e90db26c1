import Foundation
import Hummingbird
import LinliCore
import LinliStorage
import Mustache

/// What every console page shows around its content.
struct Frame {
    var title: String
    var user: String?
    var csrf: String?
    var resident = false
    var canAudit = false
    var canImport = false
    var canDevices = false
    var canAlarms = false
    var canNotices = false
    var canWorkOrders = false
    var community: Community?

    init(title: String, context: AppContext, community: Community? = nil) {
        self.title = title
        self.community = community
        if let caller = context.caller {
            user = caller.displayName
            csrf = context.session?.csrfToken
            resident = caller.isResidentOnly
            canAudit = caller.can(.viewAudit)
            canImport = community.map { caller.scope(for: .importData).coversCommunity($0.id) } ?? false
            canDevices = caller.can(.viewDevices)
            canAlarms = caller.can(.viewAlarms)
            canNotices = caller.can(.publishNotices)
            canWorkOrders = caller.can(.viewWorkOrders)
        }
    }
}

/// Server-rendered pages from the Mustache templates in Resources/templates (escaped by default).
public struct Pages: Sendable {
    let library: MustacheLibrary

    public init() throws {
        guard let base = Bundle.module.resourceURL else {
            throw ServerConfiguration.Invalid(key: "resources", reason: "bundle not found")
        }
        let folder = [base.appendingPathComponent("Resources/templates"), base.appendingPathComponent("templates")]
            .first { FileManager.default.fileExists(atPath: $0.path) }
        guard let folder else {
            throw ServerConfiguration.Invalid(key: "resources", reason: "templates are missing from the build")
        }
        var library = MustacheLibrary()
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) where file.hasSuffix(".mustache") {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            try library.register(text, named: String(file.dropLast(".mustache".count)))
        }
        self.library = library
    }

    func render(_ template: String, _ object: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        guard let html = library.render(Self.droppingNils(object), withTemplate: template) else {
            throw ServerConfiguration.Invalid(key: "template", reason: "\(template) is missing")
        }
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// A page's values may be optional: an absent one is left out, so a section on it stays closed
    /// (an `Optional` stored as `Any` would otherwise render as "nil").
    static func droppingNils(_ object: Any) -> Any {
        guard let dictionary = object as? [String: Any] else { return object }
        var result: [String: Any] = [:]
        for (key, value) in dictionary {
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional {
                if let child = mirror.children.first { result[key] = child.value }
            } else {
                result[key] = value
            }
        }
        return result
    }

    func errorPage(_ problem: Problem, context: AppContext) throws -> Response {
        var response = try render(
            "error", ["frame": Frame(title: problem.title, context: context), "problem": problem] as [String: Any],
            status: problem.status)
        response.headers.append(contentsOf: problem.responseHeaders)
        return response
    }

    func apiReference() throws -> Response {
        let document = try Resources.text("openapi.yaml")
        struct Operation {
            var method: String
            var methodClass: String
            var path: String
            var summary: String
        }
        var operations: [Operation] = []
        var inPaths = false
        var path = ""
        var method = ""
        for line in document.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" {
                inPaths = true
                continue
            }
            if inPaths, !line.hasPrefix(" "), !line.isEmpty { inPaths = false }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":") { path = String(line.dropFirst(2).dropLast()) }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("    "), !line.hasPrefix("     "),
                ["get:", "post:", "patch:", "put:", "delete:"].contains(trimmed)
            {
                method = String(trimmed.dropLast())
            }
            if line.hasPrefix("      summary:"), !method.isEmpty {
                operations.append(
                    Operation(
                        method: method.uppercased(), methodClass: method, path: path,
                        summary: String(trimmed.dropFirst("summary:".count)).trimmingCharacters(in: .whitespaces)))
                method = ""
            }
        }
        return try render("apidocs", ["operations": operations])
    }
}
