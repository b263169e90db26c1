/// Linli's OpenAPI document, put together from the assembly's base (the header, the shared
/// components, the system's paths) and each module's part, so that a module's routes are described
/// in its own folder. The merge is by lines of the YAML the parts are written in: a part holds only
/// `paths:` and `components:` (with its `schemas:`, `parameters:` … beneath), its entries are added
/// to the base's sections in the order the parts come, and a path or component named twice is an
/// error, at start. `tests/contract/check_routes.py` merges the same files the same way and checks
/// the routes against the result; the browser tests check the server serves exactly that.
public enum OpenAPIDocument {
    public struct Fault: Error, CustomStringConvertible {
        public var description: String
    }

    /// `parts` are (name, text) pairs; the name only says where a fault is.
    public static func assemble(base: String, parts: [(name: String, text: String)]) throws -> String {
        var sections = split(base)
        guard let pathsAt = sections.firstIndex(where: { $0.key == "paths" }),
            let componentsAt = sections.firstIndex(where: { $0.key == "components" })
        else { throw Fault(description: "openapi: the base document has no paths or no components") }
        var subsections = splitComponents(sections[componentsAt].body)
        var paths = Set(sections[pathsAt].body.filter(isPathKey))
        var components = Set(subsections.flatMap { sub in sub.body.filter(isEntryKey).map { sub.key + "/" + $0 } })
        for part in parts {
            for section in split(part.text) {
                switch section.key {
                case "paths":
                    for key in section.body.filter(isPathKey) where !paths.insert(key).inserted {
                        throw Fault(description: "openapi: \(part.name) describes\(key) again")
                    }
                    sections[pathsAt].body += section.body
                case "components":
                    for sub in splitComponents(section.body) {
                        for key in sub.body.filter(isEntryKey) where !components.insert(sub.key + "/" + key).inserted {
                            throw Fault(description: "openapi: \(part.name) defines \(sub.key)\(key) again")
                        }
                        if let at = subsections.firstIndex(where: { $0.key == sub.key }) {
                            subsections[at].body += sub.body
                        } else {
                            subsections.append(sub)
                        }
                    }
                case "":
                    continue  // its heading comment
                default:
                    throw Fault(
                        description: "openapi: \(part.name) may hold only paths and components, not \(section.key)")
                }
            }
        }
        sections[componentsAt].body = subsections.flatMap { ($0.key.isEmpty ? [] : ["  \($0.key):"]) + $0.body }
        var text = sections.flatMap { ($0.key.isEmpty ? [] : ["\($0.key):"]) + $0.body }.joined(separator: "\n")
        while text.hasSuffix("\n") { text.removeLast() }
        return text + "\n"
    }

    private struct Section {
        var key: String
        var body: [Substring]
    }

    /// Top-level keys (`paths:` at the start of a line) with the lines beneath them; what comes
    /// before the first key is a section without a key.
    private static func split(_ text: String) -> [Section] {
        var sections = [Section(key: "", body: [])]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            // A top-level scalar (`openapi: 3.1.0`) stays a line of the section before it.
            if let first = line.first, first.isLetter, line.hasSuffix(":") {
                sections.append(Section(key: String(line.dropLast()), body: []))
            } else {
                sections[sections.count - 1].body.append(line)
            }
        }
        return sections
    }

    private static func splitComponents(_ body: [Substring]) -> [Section] {
        var subsections = [Section(key: "", body: [])]
        for line in body {
            if line.hasPrefix("  "), !line.hasPrefix("   "), line.hasSuffix(":") {
                subsections.append(Section(key: String(line.dropFirst(2).dropLast()), body: []))
            } else {
                subsections[subsections.count - 1].body.append(line)
            }
        }
        return subsections
    }

    private static func isPathKey(_ line: Substring) -> Bool { line.hasPrefix("  /") && line.hasSuffix(":") }

    private static func isEntryKey(_ line: Substring) -> Bool {
        line.hasPrefix("    ") && !line.hasPrefix("     ") && line.hasSuffix(":") && !line.hasPrefix("    #")
    }
}
