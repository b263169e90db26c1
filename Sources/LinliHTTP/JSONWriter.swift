import Hummingbird
import LinliStorage
import NIOCore

/// A value that writes its own JSON, field by field, straight into the response body.
///
/// For the listings read most (a page of households, of people): Foundation's `JSONEncoder`
/// builds a tree of boxed values through `Encodable`'s generic containers before writing a byte,
/// and that cost as much as the database query behind the page. A conforming type must write
/// exactly what its `Encodable` conformance would: the same keys, a `nil` optional left out, and
/// the same numbers (the tests compare the two).
package protocol JSONWritable: Encodable {
    func write(json: inout JSONWriter)
}

/// Writes JSON into bytes: commas go in by themselves, strings are escaped as `JSONEncoder` with
/// `.withoutEscapingSlashes` escapes them. An array of bytes, not a `ByteBuffer`: a page is a few
/// thousand small writes, and each of the buffer's checked its capacity and uniqueness (half the
/// writer's time in a profile).
package struct JSONWriter {
    package private(set) var bytes: [UInt8] = []
    /// Whether the next value is the first in its object or array (no comma before it).
    private var first = true

    package init(capacity: Int = 16_384) {
        bytes.reserveCapacity(capacity)
    }

    private mutating func put(_ byte: UInt8) { bytes.append(byte) }
    private mutating func put(_ text: String) { bytes.append(contentsOf: text.utf8) }
    private mutating func put(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private mutating func separate() {
        if first { first = false } else { put(UInt8(ascii: ",")) }
    }

    package mutating func object(_ body: (inout JSONWriter) -> Void) {
        separate()
        put(UInt8(ascii: "{"))
        first = true
        body(&self)
        put(UInt8(ascii: "}"))
        first = false
    }

    package mutating func array<S: Sequence>(_ elements: S, _ body: (inout JSONWriter, S.Element) -> Void) {
        separate()
        put(UInt8(ascii: "["))
        first = true
        for element in elements { body(&self, element) }
        put(UInt8(ascii: "]"))
        first = false
    }

    /// A member's name; its value comes next.
    package mutating func key(_ name: String) {
        separate()
        quoted(name)
        put(UInt8(ascii: ":"))
        first = true
    }

    package mutating func string(_ text: String) {
        separate()
        quoted(text)
    }

    private mutating func quoted(_ text: String) {
        put(UInt8(ascii: "\""))
        var plain = true
        for byte in text.utf8 where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            plain = false
            break
        }
        if plain {
            put(text)
        } else {
            for byte in text.utf8 { escape(byte) }
        }
        put(UInt8(ascii: "\""))
    }

    private mutating func escape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): put("\\\"")
        case UInt8(ascii: "\\"): put("\\\\")
        case 0x08: put("\\b")
        case 0x0C: put("\\f")
        case 0x0A: put("\\n")
        case 0x0D: put("\\r")
        case 0x09: put("\\t")
        case ..<0x20:
            let hex: StaticString = "0123456789abcdef"
            put("\\u00" as StaticString)
            put(hex.utf8Start[Int(byte >> 4)])
            put(hex.utf8Start[Int(byte & 0x0F)])
        default: put(byte)
        }
    }

    package mutating func number(_ value: Int) {
        separate()
        put(String(value))
    }

    /// As `JSONEncoder` writes a `Double`: its description without a trailing `.0` (`69`, `85.5`).
    package mutating func number(_ value: Double) {
        separate()
        let text = value.description
        if text.hasSuffix(".0") { bytes.append(contentsOf: text.utf8.dropLast(2)) } else { put(text) }
    }

    package mutating func bool(_ value: Bool) {
        separate()
        if value { put("true") } else { put("false") }
    }

    // Members, as a synthesised `Encodable` writes them: an optional that is nil is left out.

    package mutating func member(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    package mutating func member(_ name: String, _ value: String?) {
        guard let value else { return }
        member(name, value)
    }

    package mutating func member(_ name: String, _ value: Int) {
        key(name)
        number(value)
    }

    package mutating func member(_ name: String, _ value: Double?) {
        guard let value else { return }
        key(name)
        number(value)
    }

    package mutating func member(_ name: String, _ value: Bool) {
        key(name)
        bool(value)
    }

    package mutating func member<T: RawRepresentable>(_ name: String, _ value: T) where T.RawValue == String {
        member(name, value.rawValue)
    }

    package mutating func member<T: JSONWritable>(_ name: String, _ values: [T]) {
        key(name)
        array(values) { json, value in value.write(json: &json) }
    }
}

extension Page: JSONWritable where Item: JSONWritable {
    package func write(json: inout JSONWriter) {
        json.object { json in
            json.member("items", items)
            json.member("total", total)
            json.member("limit", limit)
            json.member("offset", offset)
        }
    }
}

extension JSON {
    /// The response for a value that writes its own JSON (see `JSONWritable`).
    package static func response<T: JSONWritable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        var json = JSONWriter()
        value.write(json: &json)
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: json.bytes)))
    }
}
