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

/// `multipart/form-data` bodies (a form with a file), parsed without a library: the parts between
/// the boundary lines, each with its name, file name, content type and bytes.
package struct Multipart {
    package struct Part {
        package var name: String
        package var filename: String?
        package var contentType: String?
        package var data: [UInt8]
        package var text: String { String(decoding: data, as: UTF8.self) }
    }

    /// The boundary from a `Content-Type: multipart/form-data; boundary=…` header.
    package static func boundary(_ contentType: String?) -> String? {
        guard let contentType, contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let kv = parameter.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].lowercased() == "boundary" {
                let value = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                return value.isEmpty || value.count > 200 ? nil : value
            }
        }
        return nil
    }

    /// The parts; nil when the body is not well-formed multipart with this boundary.
    package static func parse(_ body: [UInt8], boundary: String) -> [Part]? {
        let delimiter = Array("--\(boundary)".utf8)
        var parts: [Part] = []
        guard var start = find(delimiter, in: body, from: 0) else { return nil }
        while true {
            var cursor = start + delimiter.count
            // "--" after a delimiter ends the body.
            if cursor + 1 < body.count, body[cursor] == 0x2D, body[cursor + 1] == 0x2D { return parts }
            guard cursor + 1 < body.count, body[cursor] == 0x0D, body[cursor + 1] == 0x0A else { return nil }
            cursor += 2
            guard let headerEnd = find([0x0D, 0x0A, 0x0D, 0x0A], in: body, from: cursor) else { return nil }
            let headers = String(decoding: body[cursor..<headerEnd], as: UTF8.self)
            let contentStart = headerEnd + 4
            guard let next = find([0x0D, 0x0A] + delimiter, in: body, from: contentStart) else { return nil }
            var name: String? = nil
            var filename: String? = nil
            var contentType: String? = nil
            for line in headers.components(separatedBy: "\r\n") {
                let lower = line.lowercased()
                if lower.hasPrefix("content-disposition:") {
                    name = parameter("name", in: line)
                    filename = parameter("filename", in: line)
                } else if lower.hasPrefix("content-type:") {
                    contentType = line.dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces)
                }
            }
            guard let name else { return nil }
            parts.append(
                Part(name: name, filename: filename, contentType: contentType, data: Array(body[contentStart..<next])))
            start = next + 2
            if parts.count > 50 { return nil }
        }
    }

    /// `name="photo"` out of `Content-Disposition: form-data; name="photo"; filename="a.jpg"`.
    package static func parameter(_ key: String, in line: String) -> String? {
        for piece in line.split(separator: ";").dropFirst() {
            let kv = piece.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].lowercased() == key {
                return kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    package static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, from <= haystack.count - needle.count else { return nil }
        var i = from
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == needle[0], Array(haystack[i..<i + needle.count]) == needle { return i }
            i += 1
        }
        return nil
    }
}

extension Request {
    /// The parts of a multipart form, or a 400.
    package mutating func multipart(context: AppContext) async throws -> [Multipart.Part] {
        guard let boundary = Multipart.boundary(headers[.contentType]) else {
            throw Problem.badRequest("body", "is not multipart/form-data")
        }
        let buffer = try await readBody(upTo: BodyLimit.upload)
        guard let parts = Multipart.parse(Array(buffer: buffer), boundary: boundary) else {
            throw Problem.badRequest("body", "is not well-formed multipart/form-data")
        }
        return parts
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
