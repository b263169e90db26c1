import Foundation
import Hummingbird
import LinliCore
import Mustache

/// What every console page shows around its content.
package struct Frame {
    package var title: String
    package var user: String?
    package var csrf: String?
    package var resident = false
    package var canAudit = false
    package var canImport = false
    package var canDevices = false
    package var canAlarms = false
    package var canNotices = false
    package var canWorkOrders = false
    /// The community's places (overview, buildings, households, who has access), its people, vehicles
    /// and organisations: a department sees none but organisations, so its menu offers no dead end.
    package var canPlaces = false
    package var canPeople = false
    package var canVehicles = false
    package var canOrganisations = false
    package var community: Community?
    package var language: Language {
        didSet {
            lang = language.rawValue
            otherLanguage = language.other.rawValue
        }
    }
    // Stored, not computed: templates see only stored properties (Mustache reads them by reflection).
    /// The `lang` of the page's `<html>`.
    package var lang: String
    /// The header's language switch: where it goes back to, and the language it offers.
    package var target: String
    package var otherLanguage: String
    /// The resident's tab bar: which tab the page belongs to.
    package var tab = PortalTab()

    package struct PortalTab {
        package var home = false, reports = false, notices = false, inbox = false, account = false

        package init(path: String = "") {
            func under(_ prefix: String) -> Bool {
                path == prefix || path.hasPrefix(prefix + "/") || path.hasPrefix(prefix + "?")
            }
            reports = under("/app/reports")
            notices = under("/app/notices")
            inbox = under("/app/inbox")
            account = under("/app/account")
            home = !(reports || notices || inbox || account) && under("/app")
        }
    }

    /// A frame with nobody signed in; `LinliHTTP` fills in the caller's part from the request.
    package init(title: String, language: Language, target: String, community: Community? = nil) {
        self.title = title
        self.community = community
        self.language = language
        lang = language.rawValue
        otherLanguage = language.other.rawValue
        self.target = target
        tab = PortalTab(path: target)
    }
}

/// Server-rendered pages from the Mustache templates of the kernel and of every module, in one
/// library so that a module's page can use the kernel's layout and partials (escaped by default).
public struct Pages: Sendable {
    /// The templates once per language, each `{{t:key}}` already replaced by its text.
    package let libraries: [Language: MustacheLibrary]
    package let catalogue: Catalogue
    /// The pages' scripts and style sheets (`.js`, `.css` beside the templates), served at
    /// `/assets/{name}`. They are files rather than inline `<script>`/`<style>` so that the
    /// Content-Security-Policy can allow only this origin's files (`script-src 'self'`): a value
    /// that slipped through escaping could not run as script.
    package let assets: [String: Asset]

    package struct Asset: Sendable {
        package var contentType: String
        package var body: ByteBuffer
    }

    /// Every `.mustache` file in `folders`, named by its file name; a name given twice is an error,
    /// so that one module's page cannot silently replace another's.
    public init(folders: [URL]) throws {
        let catalogue = try Catalogue(folders: folders)
        var libraries: [Language: MustacheLibrary] = [:]
        for language in Language.allCases { libraries[language] = MustacheLibrary() }
        var seen: [String: URL] = [:]
        var assets: [String: Asset] = [:]
        var assetFolders: [String: URL] = [:]
        let types = ["js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"]
        for folder in folders {
            for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() {
                guard let type = types[(file as NSString).pathExtension] else { continue }
                if let earlier = assetFolders[file] {
                    throw MissingResource("a single asset \(file) (in \(earlier.path) and \(folder.path))")
                }
                assetFolders[file] = folder
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                assets[file] = Asset(contentType: type, body: ByteBuffer(string: text))
            }
            for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
            where file.hasSuffix(".mustache") {
                let name = String(file.dropLast(".mustache".count))
                if let earlier = seen[name] {
                    throw MissingResource("a single template \(name) (in \(earlier.path) and \(folder.path))")
                }
                seen[name] = folder
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                for language in Language.allCases {
                    try libraries[language]!.register(catalogue.localise(text, language, name: name), named: name)
                }
            }
        }
        self.libraries = libraries
        self.catalogue = catalogue
        self.assets = assets
    }

    /// One asset by its file name; nil for any other name (no path is ever read from the request).
    package func asset(_ name: String) -> Response? {
        guard let asset = assets[name] else { return nil }
        // Not versioned by name, so cached briefly: a new release's script is picked up within minutes.
        return Response(
            status: .ok, headers: [.contentType: asset.contentType, .cacheControl: "public, max-age=300"],
            body: .init(byteBuffer: asset.body))
    }

    /// Renders in the language of the object's `frame` (every page has one), else in Chinese.
    package func render(_ template: String, _ object: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        let language = ((object as? [String: Any])?["frame"] as? Frame)?.language ?? .standard
        let rendered = Catalogue.$rendering.withValue((catalogue, language)) {
            libraries[language]!.render(Self.droppingNils(object), withTemplate: template)
        }
        guard let html = rendered else {
            throw MissingResource("the template \(template)")
        }
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// A page's values may be optional: an absent one is left out, so a section on it stays closed
    /// (an `Optional` stored as `Any` would otherwise render as "nil").
    package static func droppingNils(_ object: Any) -> Any {
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

    package func apiReference(_ document: String) throws -> Response {
        struct Operation {
            package var method: String
            package var methodClass: String
            package var path: String
            package var summary: String
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
