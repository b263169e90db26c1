import Foundation
import LinliCore
import Mustache

/// Every text a person reads on Linli's pages, in each language: one catalogue per language,
/// gathered from the `strings.{language}.json` files beside each module's templates (a flat object
/// of key → text). Templates say `{{t:key}}`, which is replaced by the text when the templates are
/// loaded, once per language; code says `catalogue.text(key, language)` for labels it makes
/// (a code's label, a page's title).
///
/// Loading refuses what would show a person a key or the wrong language: a key one language has
/// and another lacks, a key given by two modules, a template that names a key no catalogue has.
public struct Catalogue: Sendable {
    private var texts: [Language: [String: String]]

    package init(texts: [Language: [String: String]]) { self.texts = texts }

    /// The catalogues in `folders`; a folder without strings files adds nothing. A folder's catalogue
    /// may come in parts (`strings.zh-CN.json`, `strings.roster.zh-CN.json`), so that two pieces of
    /// work on one module add their texts without touching the same file; each part holds its keys
    /// in every language.
    public init(folders: [URL]) throws {
        var texts: [Language: [String: String]] = [:]
        var owner: [String: URL] = [:]
        for folder in folders {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            let parts = Set(
                names.compactMap { name -> String? in
                    guard name.hasPrefix("strings."), name.hasSuffix(".json") else { return nil }
                    let middle = name.dropFirst("strings.".count).dropLast(".json".count)
                    for language in Language.allCases where middle == language.rawValue { return "" }
                    for language in Language.allCases where middle.hasSuffix("." + language.rawValue) {
                        return String(middle.dropLast(language.rawValue.count + 1))
                    }
                    return nil
                })
            for part in parts.sorted() {
                var partKeys: [Language: Set<String>] = [:]
                func fileName(_ language: Language) -> String {
                    part.isEmpty ? "strings.\(language.rawValue).json" : "strings.\(part).\(language.rawValue).json"
                }
                for language in Language.allCases {
                    let file = folder.appendingPathComponent(fileName(language))
                    guard FileManager.default.fileExists(atPath: file.path) else { continue }
                    let object = try JSONSerialization.jsonObject(with: Data(contentsOf: file))
                    guard let entries = object as? [String: String] else {
                        throw CatalogueError("\(file.path) is not an object of key → text")
                    }
                    let stem = folder.appendingPathComponent(fileName(.standard))
                    for (key, text) in entries {
                        if let earlier = owner[key], earlier != stem {
                            throw CatalogueError("the key \(key) is in \(earlier.path) and in \(stem.path)")
                        }
                        owner[key] = stem
                        texts[language, default: [:]][key] = text
                    }
                    partKeys[language] = Set(entries.keys)
                }
                let all = partKeys.values.reduce(Set<String>()) { $0.union($1) }
                for language in Language.allCases {
                    let missing = all.subtracting(partKeys[language] ?? [])
                    if !missing.isEmpty {
                        throw CatalogueError(
                            "\(folder.path)/\(fileName(language)) lacks \(missing.sorted().joined(separator: ", "))")
                    }
                }
            }
        }
        self.texts = texts
    }

    public func contains(_ key: String) -> Bool { texts[.standard]?[key] != nil }

    /// The text of `key` in `language`, with each `{name}` in it replaced by `values[name]`. A key
    /// no catalogue has gives the key itself (a test walks every page, so none should reach one).
    public func text(_ key: String, _ language: Language, _ values: [String: String] = [:]) -> String {
        guard var text = texts[language]?[key] ?? texts[.standard]?[key] else { return key }
        for (name, value) in values { text = text.replacingOccurrences(of: "{\(name)}", with: value) }
        return text
    }

    /// The label of a code (`ownerOccupied`) under `prefix` (`occupancy`): the catalogue's
    /// `prefix.code`, else the code itself, so that a code added without its label still shows.
    public func label(_ prefix: String, _ code: String, _ language: Language) -> String {
        text(prefix + "." + code, language)
    }

    /// Replaces each `{{t:key}}` in a template with its text in `language`, escaped for HTML (a text
    /// may itself hold Mustache tags, `{{count}}`, which stay tags).
    package func localise(_ template: String, _ language: Language, name: String) throws -> String {
        var result = ""
        result.reserveCapacity(template.utf8.count)
        var rest = template[...]
        while let open = rest.range(of: "{{t:") {
            result += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw CatalogueError("the template \(name) has an unclosed {{t:")
            }
            let key = String(rest[open.upperBound..<close.lowerBound])
            guard let text = texts[language]?[key] else {
                throw CatalogueError("the template \(name) uses \(key), which no catalogue has")
            }
            result += Self.escaped(text)
            rest = rest[close.upperBound...]
        }
        result += rest
        return result
    }

    static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}

public struct CatalogueError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// A code that a page shows by its label: a template's `{{occupancy}}` renders the catalogue's
/// `{labelPrefix}.{rawValue}` in the page's language, so no page shows a code as it is stored.
public protocol PageCode: MustacheCustomRenderable, RawRepresentable where RawValue == String {
    static var labelPrefix: String { get }
}

extension PageCode {
    public var renderText: String {
        guard let rendering = Catalogue.rendering else { return rawValue }
        return rendering.catalogue.label(Self.labelPrefix, rawValue, rendering.language)
    }
    public var isNull: Bool { false }
}

extension Catalogue {
    /// The catalogue and language of the page being rendered (set by `Pages.render`).
    @TaskLocal package static var rendering: (catalogue: Catalogue, language: Language)?
}

extension Role: PageCode { public static var labelPrefix: String { "role" } }
extension Capability: PageCode { public static var labelPrefix: String { "capability" } }
