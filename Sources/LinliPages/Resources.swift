import Foundation

/// A file a module carries that is missing from the build.
public struct MissingResource: Error, CustomStringConvertible {
    public var name: String
    public init(_ name: String) { self.name = name }
    public var description: String { "resources: \(name) is missing from the build" }
}

extension Bundle {
    /// A file or folder among a module's resources. On Linux, Foundation takes a bundle's
    /// `Resources` folder, if it has one, for its resource folder, so `Resources/x` is looked for as
    /// `x` there too.
    func resource(_ path: String) throws -> URL {
        guard let base = resourceURL else { throw MissingResource(path) }
        var candidates = [base.appendingPathComponent(path)]
        if path.hasPrefix("Resources/") { candidates.append(base.appendingPathComponent(String(path.dropFirst(10)))) }
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            throw MissingResource(path)
        }
        return found
    }

    /// A module's folder of resources (`Templates`, say), as SwiftPM copies it into the bundle.
    public func folder(_ path: String) throws -> URL { try resource(path) }

    /// A text file among a module's resources.
    public func text(_ path: String) throws -> String {
        try String(contentsOf: try resource(path), encoding: .utf8)
    }
}
