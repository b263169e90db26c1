import Foundation
import Hummingbird
import LinliCore
import LinliStorage
import LinliThings

extension Request {
    /// Decodes a JSON body, answering malformed JSON with 400 and wrong or missing fields with 422
    /// naming the field, never with a 500; a body declared as another media type gets 415.
    package mutating func decodeJSON<T: Decodable>(
        _ type: T.Type, context: AppContext, limit: Int = BodyLimit.json
    ) async throws -> T {
        try requireJSONContentType()
        let buffer = try await readBody(upTo: limit)
        if buffer.readableBytes == 0 { throw Problem.badRequest("body", "is empty; expected a JSON object") }
        let data = Data(buffer: buffer)
        do {
            return try JSONValue.decode(T.self, from: data)
        } catch let DecodingError.dataCorrupted(ctx) where ctx.codingPath.isEmpty {
            // Text that is not JSON (invalid UTF-8 included), or a number an integer field
            // cannot hold, which Foundation reports the same way.
            throw Self.numberAtFault(T.self, in: data) ?? Problem.badRequest("body", "is not valid JSON")
        }
    }

    /// A JSON endpoint refuses a body whose Content-Type names another media type (a form, CSV,
    /// text) with 415, before reading it. `application/json` and any `application/*+json` pass,
    /// parameters (`; charset=utf-8`) and case aside. A request without Content-Type is read as
    /// JSON, as RFC 9110 §8.3 allows: the endpoint takes nothing else, and a body that is not JSON
    /// still gets 400.
    package func requireJSONContentType() throws {
        guard let value = headers[.contentType], !value.allSatisfy(\.isWhitespace) else { return }
        if !Self.isJSON(mediaType: value) { throw Problem.unsupportedMediaType(value, method: method) }
    }

    package static func isJSON(mediaType value: String) -> Bool {
        let essence = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0]
            .trimmingCharacters(in: .whitespaces).lowercased()
        if essence == "application/json" { return true }
        guard essence.hasPrefix("application/"), essence.hasSuffix("+json") else { return false }
        let subtype = essence.dropFirst("application/".count).dropLast("+json".count)
        return !subtype.isEmpty && !subtype.contains("/")
    }

    /// Foundation's decoder says "not valid JSON", with no path, when an integer field is given
    /// 10.5 or 1e300. When the body is JSON, the field is found by elimination:
    /// fractional and huge numbers are set to 0 one after another until the body decodes past
    /// that fault; the last one set is a field at fault. Runs only on that failure.
    package static func numberAtFault<T: Decodable>(_ type: T.Type, in data: Data) -> Problem? {
        guard var json = JSONValue.parse(data) else { return nil }
        var suspects: [[JSONPathStep]] = []
        func collect(_ value: JSONValue, _ path: [JSONPathStep]) {
            switch value {
            case .double: suspects.append(path)
            case let .array(items): for (i, item) in items.enumerated() { collect(item, path + [.index(i)]) }
            case let .object(members):
                for (key, member) in members.sorted(by: { $0.key < $1.key }) { collect(member, path + [.key(key)]) }
            default: break
            }
        }
        collect(json, [])
        for suspect in suspects.prefix(64) {
            json.set(.int(0), at: suspect[...])
            do {
                _ = try JSONValue.decode(T.self, from: json.serialized())
            } catch let DecodingError.dataCorrupted(ctx) where ctx.codingPath.isEmpty {
                continue
            } catch {}
            let name = suspect.map { step in
                switch step {
                case let .key(k): ".\(k)"
                case let .index(i): "[\(i)]"
                }
            }.joined().drop { $0 == "." }
            return .invalid([FieldIssue(String(name), "must be an integer that fits in 64 bits")])
        }
        return nil
    }

    /// Decodes an `application/x-www-form-urlencoded` body into a dictionary of its fields.
    package mutating func formFields(context: AppContext, limit: Int = BodyLimit.json) async throws -> [String: String]
    {
        let buffer = try await readBody(upTo: limit)
        return Self.parseForm(String(buffer: buffer))
    }

    package static func parseForm(_ body: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s)
            }
            let key = decode(parts[0])
            let value = parts.count > 1 ? decode(parts[1]) : ""
            if let existing = fields[key] { fields[key] = existing + "," + value } else { fields[key] = value }
        }
        return fields
    }
}

/// Reads query parameters, collecting every problem before answering 400.
package struct QueryReader {
    package let request: Request
    package var issues: [FieldIssue] = []

    package init(_ request: Request) { self.request = request }

    package func raw(_ name: String) -> String? { request.uri.queryParameters.get(name) }

    package mutating func string(_ name: String, max: Int = 100) -> String? {
        guard let value = raw(name)?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if value.count > max {
            issues.append(FieldIssue(name, "must be at most \(max) characters"))
            return nil
        }
        return value
    }

    package mutating func int(_ name: String, in range: ClosedRange<Int>, default fallback: Int) -> Int {
        guard let text = raw(name), !text.isEmpty else { return fallback }
        guard let value = Int(text) else {
            issues.append(FieldIssue(name, "must be a whole number"))
            return fallback
        }
        if !range.contains(value) {
            issues.append(FieldIssue(name, "must be between \(range.lowerBound) and \(range.upperBound)"))
            return fallback
        }
        return value
    }

    package mutating func oneOf<E: RawRepresentable & CaseIterable>(_ name: String, _ type: E.Type) -> E?
    where E.RawValue == String {
        guard let text = raw(name), !text.isEmpty else { return nil }
        guard let value = E(rawValue: text) else {
            issues.append(FieldIssue(name, "must be one of \(E.allCases.map(\.rawValue).joined(separator: ", "))"))
            return nil
        }
        return value
    }

    package mutating func bool(_ name: String) -> Bool {
        guard let text = raw(name), !text.isEmpty else { return false }
        switch text.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default:
            issues.append(FieldIssue(name, "must be true or false"))
            return false
        }
    }

    package mutating func page() -> PageRequest {
        PageRequest(
            limit: int("limit", in: 1...PageRequest.maxLimit, default: 50),
            offset: int("offset", in: 0...PageRequest.maxOffset, default: 0))
    }

    package mutating func sort(allowed: [String: String], default fallback: String) -> ListOrder {
        do {
            return try ListOrder(raw("sort"), allowed: allowed, default: fallback)
        } catch let failure {
            issues += failure.issues
            return try! ListOrder(nil, allowed: allowed, default: fallback)
        }
    }

    package func check() throws {
        if !issues.isEmpty {
            throw Problem(
                .badRequest, type: "invalid-query", title: "The query has invalid parameters",
                detail: issues.map { "\($0.field) \($0.reason)" }.joined(separator: "; "), errors: issues)
        }
    }
}

package enum JSON {
    package static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        // Keys in declaration order: sorting them cost a fifth of a listing's time.
        e.outputFormatting = [.withoutEscapingSlashes]
        return e
    }()

    package static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try encoder.encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// A list of items in the same envelope as a paged listing.
package struct Items<T: Encodable & Sendable>: Encodable, Sendable {
    package var items: [T]
    package var total: Int
    package init(_ items: [T]) {
        self.items = items
        self.total = items.count
    }
}

package enum JSONPathStep { case key(String), index(Int) }

extension JSONValue {
    /// Replaces the value at `path` (which must exist); used to try a body with one value changed.
    package mutating func set(_ value: JSONValue, at path: ArraySlice<JSONPathStep>) {
        guard let step = path.first else {
            self = value
            return
        }
        switch (self, step) {
        case (.object(var members), let .key(k)):
            members[k]?.set(value, at: path.dropFirst())
            self = .object(members)
        case (.array(var items), let .index(i)) where items.indices.contains(i):
            items[i].set(value, at: path.dropFirst())
            self = .array(items)
        default:
            break
        }
    }
}
