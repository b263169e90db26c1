import Foundation

/// A JSON value as devices send it, kept exact enough to validate: integers stay integers.
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses JSON text; nil when it is not JSON. The same values Foundation's `JSONDecoder` gives
    /// through `init(from:)` (a number without a fraction, or with one that is whole, is an
    /// integer when it fits Int64), without its cost: this runs for every message a device sends.
    public static func parse(_ data: Data) -> JSONValue? {
        data.withUnsafeBytes { parse(bytes: $0) }
    }

    /// The same, over bytes in place (a message's payload, without copying it first).
    public static func parse(bytes: UnsafeRawBufferPointer) -> JSONValue? {
        var parser = JSONParser(bytes: bytes)
        return parser.document()
    }

    /// Parses a document that must be one JSON object and hands its members to `member` in the
    /// order they come (duplicates included), without gathering them into a dictionary; false
    /// when the bytes are not one JSON object. For callers that want a few known members.
    public static func forEachMember(ofObject bytes: UnsafeRawBufferPointer, _ member: (String, JSONValue) -> Void)
        -> Bool
    {
        var parser = JSONParser(bytes: bytes)
        return parser.objectDocument(member)
    }

    /// JSON text with sorted keys and unescaped slashes, byte for byte what `JSONEncoder` with
    /// `[.sortedKeys, .withoutEscapingSlashes]` writes; `null` when a number is not finite.
    public func serialized() -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        guard JSONWriter.write(self, to: &out) else { return Data("null".utf8) }
        return Data(out)
    }

    public subscript(key: String) -> JSONValue? {
        if case let .object(o) = self { return o[key] }
        return nil
    }

    var number: Double? {
        switch self {
        case let .int(i): return Double(i)
        case let .double(d): return d
        case let .string(s): return Double(s)  // TSL writes specs numbers as strings
        default: return nil
        }
    }

    /// The string, when this is one.
    public var text: String? {
        if case let .string(s) = self { return s }
        return nil
    }
}

extension CodingUserInfoKey {
    /// The whole document, parsed once, that `JSONValue.decode(_:from:)` decodes from.
    static let jsonValueDocument = CodingUserInfoKey(rawValue: "LinliThings.JSONValue.document")!
}

extension JSONValue {
    /// Decodes `type` from JSON text with `JSONDecoder`, but every `JSONValue` in it is taken
    /// whole from one parse of the text; text `parse` refuses is a `dataCorrupted` error at the
    /// root, as JSONDecoder's. Through JSONDecoder alone a JSONValue is found by trying one type
    /// after another, and each failed try builds its coding path from the root, O(depth²): in a
    /// debug build a 1 KB value nested 500 deep took 1.7 s, a 13 KB TSL 3.3 s. This is linear.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        // JSONDecoder reads past a UTF-8 byte order mark, which Windows tools write; so must this.
        guard let document = parse(data.starts(with: [0xEF, 0xBB, 0xBF]) ? data.dropFirst(3) : data) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: [], debugDescription: "The given data was not valid JSON."))
        }
        let decoder = JSONDecoder()
        decoder.userInfo[.jsonValueDocument] = document
        return try decoder.decode(type, from: data)
    }

    /// The value a coding path leads to from this one; nil when it leads nowhere.
    func value(at path: [any CodingKey]) -> JSONValue? {
        var current = self
        for key in path {
            switch current {
            case let .object(members):
                guard let member = members[key.stringValue] else { return nil }
                current = member
            case let .array(items):
                guard let i = key.intValue, items.indices.contains(i) else { return nil }
                current = items[i]
            default:
                return nil
            }
        }
        return current
    }

    public init(from decoder: any Decoder) throws {
        // Within `decode(_:from:)` the value is already parsed: take it. The path is asked for
        // once per JSONValue field, not once per nested value.
        if let document = decoder.userInfo[.jsonValueDocument] as? JSONValue,
            let value = document.value(at: decoder.codingPath)
        {
            self = value
            return
        }
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case let .bool(b): try c.encode(b)
        case let .int(i): try c.encode(i)
        case let .double(d): try c.encode(d)
        case let .string(s): try c.encode(s)
        case let .array(a): try c.encode(a)
        case let .object(o): try c.encode(o)
        }
    }
}

/// A strict RFC 8259 reader over bytes, nesting at most 512 deep (as `JSONDecoder`).
struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    var i = 0
    var depth = 0
    static let maxDepth = 512

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func document() -> JSONValue? {
        skipSpace()
        guard let value = value() else { return nil }
        skipSpace()
        return i == bytes.count ? value : nil
    }

    mutating func objectDocument(_ member: (String, JSONValue) -> Void) -> Bool {
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{"), members(member) else { return false }
        skipSpace()
        return i == bytes.count
    }

    private mutating func skipSpace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private mutating func literal(_ word: StaticString, _ value: JSONValue) -> JSONValue? {
        let n = word.utf8CodeUnitCount
        guard bytes.count - i >= n else { return nil }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { return nil }
        i += n
        return value
    }

    private mutating func value() -> JSONValue? {
        guard i < bytes.count else { return nil }
        switch bytes[i] {
        case UInt8(ascii: "{"): return object()
        case UInt8(ascii: "["): return array()
        case UInt8(ascii: "\""): return string().map(JSONValue.string)
        case UInt8(ascii: "t"): return literal("true", .bool(true))
        case UInt8(ascii: "f"): return literal("false", .bool(false))
        case UInt8(ascii: "n"): return literal("null", .null)
        default: return number()
        }
    }

    private mutating func object() -> JSONValue? {
        var members: [String: JSONValue] = [:]
        // The first of duplicate keys wins, as in JSONDecoder.
        guard self.members({ key, value in if members[key] == nil { members[key] = value } }) else { return nil }
        return .object(members)
    }

    /// Reads an object from its `{` to its `}`, handing each member over in order; false when
    /// it is not one.
    private mutating func members(_ member: (String, JSONValue) -> Void) -> Bool {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { return false }
        i += 1  // {
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            return true
        }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), let key = string() else { return false }
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return false }
            i += 1
            skipSpace()
            guard let value = value() else { return false }
            member(key, value)
            skipSpace()
            guard i < bytes.count else { return false }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                skipSpace()
                // One trailing comma is let through, as JSONDecoder does.
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
                    i += 1
                    return true
                }
                continue
            }
            if bytes[i] == UInt8(ascii: "}") {
                i += 1
                return true
            }
            return false
        }
    }

    private mutating func array() -> JSONValue? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { return nil }
        i += 1  // [
        var items: [JSONValue] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
            return .array(items)
        }
        while true {
            skipSpace()
            guard let value = value() else { return nil }
            items.append(value)
            skipSpace()
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
                    i += 1
                    return .array(items)
                }
                continue
            }
            if bytes[i] == UInt8(ascii: "]") {
                i += 1
                return .array(items)
            }
            return nil
        }
    }

    private mutating func string() -> String? {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        var ascii = true
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<i])
                i += 1
                // ASCII (identifiers, ids, nearly every string a device sends) is valid as it is;
                // anything else is checked: invalid UTF-8 is not JSON.
                if ascii { return String(decoding: raw, as: UTF8.self) }
                return String(validating: raw, as: UTF8.self)
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { return nil }
            if b >= 0x80 { ascii = false }
            i += 1
        }
        guard i < bytes.count else { return nil }
        var scalars: [UInt8] = Array(bytes[start..<i])
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                return String(validating: scalars, as: UTF8.self)
            }
            if b < 0x20 { return nil }
            if b != UInt8(ascii: "\\") {
                scalars.append(b)
                i += 1
                continue
            }
            i += 1
            guard i < bytes.count else { return nil }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): scalars.append(0x22)
            case UInt8(ascii: "\\"): scalars.append(0x5C)
            case UInt8(ascii: "/"): scalars.append(0x2F)
            case UInt8(ascii: "b"): scalars.append(0x08)
            case UInt8(ascii: "f"): scalars.append(0x0C)
            case UInt8(ascii: "n"): scalars.append(0x0A)
            case UInt8(ascii: "r"): scalars.append(0x0D)
            case UInt8(ascii: "t"): scalars.append(0x09)
            case UInt8(ascii: "u"):
                guard var code = hex4() else { return nil }
                if (0xD800...0xDBFF).contains(code) {
                    // A high surrogate must be followed by an escaped low one.
                    guard bytes.count - i >= 6, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        return nil
                    }
                    i += 2
                    guard let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(code) {
                    return nil
                }
                guard let scalar = Unicode.Scalar(code) else { return nil }
                scalars.append(contentsOf: UTF8.encode(scalar)!)
            default:
                return nil
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard bytes.count - i >= 4 else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[i]
            let digit: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
            i += 1
        }
        return value
    }

    private mutating func number() -> JSONValue? {
        let start = i
        func digit(_ k: Int) -> Bool {
            k < bytes.count && bytes[k] >= UInt8(ascii: "0") && bytes[k] <= UInt8(ascii: "9")
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard digit(i) else { return nil }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while digit(i) { i += 1 }
        }
        var integral = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            integral = false
            i += 1
            guard digit(i) else { return nil }
            while digit(i) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            integral = false
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digit(i) else { return nil }
            while digit(i) { i += 1 }
        }
        // As JSONDecoder: digits alone are an Int64 when they fit; a fraction or exponent that comes
        // out whole is one too.
        if integral, let n = Self.integer(bytes, start, i) { return .int(n) }
        let d: Double
        if let exact = Self.shortDecimal(bytes, start, i) {
            d = exact
        } else {
            guard
                let parsed = Double(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
            else { return nil }
            d = parsed
        }
        guard d.isFinite else { return nil }
        if !integral, let n = Int64(exactly: d) { return .int(n) }
        return .double(d)
    }

    /// Digits with an optional minus, as an Int64; nil when it does not fit.
    static func integer(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int64? {
        var k = start
        let negative = bytes[k] == UInt8(ascii: "-")
        if negative { k += 1 }
        var magnitude: UInt64 = 0
        while k < end {
            let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(bytes[k] &- UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            magnitude = sum
            k += 1
        }
        if negative {
            if magnitude == UInt64(Int64.max) + 1 { return Int64.min }
            return magnitude <= UInt64(Int64.max) ? -Int64(magnitude) : nil
        }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// A decimal such as `21.5` or `-3.25e2` without going through text, when the result is
    /// exactly what `Double(String)` gives: at most 15 significant digits and a power of ten up to
    /// 22, both exact in a Double, so one multiplication or division rounds once, correctly.
    /// Nil for anything else, which the caller parses the long way.
    static func shortDecimal(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Double? {
        var k = start
        let negative = bytes[k] == UInt8(ascii: "-")
        if negative { k += 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        var scale = 0
        var seenPoint = false
        while k < end {
            let b = bytes[k]
            if b == UInt8(ascii: ".") {
                seenPoint = true
            } else if b == UInt8(ascii: "e") || b == UInt8(ascii: "E") {
                break
            } else {
                if mantissa != 0 || b != UInt8(ascii: "0") { digits += 1 }
                if digits > 15 { return nil }
                mantissa = mantissa * 10 + UInt64(b &- UInt8(ascii: "0"))
                if seenPoint { scale -= 1 }
            }
            k += 1
        }
        if k < end {
            k += 1  // e
            var exponentNegative = false
            if bytes[k] == UInt8(ascii: "+") || bytes[k] == UInt8(ascii: "-") {
                exponentNegative = bytes[k] == UInt8(ascii: "-")
                k += 1
            }
            var exponent = 0
            while k < end {
                exponent = exponent * 10 + Int(bytes[k] &- UInt8(ascii: "0"))
                if exponent > 400 { return nil }
                k += 1
            }
            scale += exponentNegative ? -exponent : exponent
        }
        guard abs(scale) <= 22 else { return nil }
        var value = Double(mantissa)
        if scale < 0 { value /= powersOfTen[-scale] } else if scale > 0 { value *= powersOfTen[scale] }
        return negative ? -value : value
    }

    /// 1e0 … 1e22: every one exact in a Double.
    static let powersOfTen: [Double] = (0...22).map { n in (0..<n).reduce(1.0) { acc, _ in acc * 10 } }
}

/// Writes JSON as `JSONEncoder` does with sorted keys and unescaped slashes.
enum JSONWriter {
    /// False when a number is not finite (which JSON cannot hold).
    static func write(_ value: JSONValue, to out: inout [UInt8]) -> Bool {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case let .bool(b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case let .int(n): out.append(contentsOf: String(n).utf8)
        case let .double(d):
            guard d.isFinite else { return false }
            var text = d.description
            if text.hasSuffix(".0") { text.removeLast(2) }
            out.append(contentsOf: text.utf8)
        case let .string(s): string(s, to: &out)
        case let .array(items):
            out.append(UInt8(ascii: "["))
            for (k, item) in items.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                guard write(item, to: &out) else { return false }
            }
            out.append(UInt8(ascii: "]"))
        case let .object(members):
            out.append(UInt8(ascii: "{"))
            for (k, key) in members.keys.sorted().enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                string(key, to: &out)
                out.append(UInt8(ascii: ":"))
                guard write(members[key]!, to: &out) else { return false }
            }
            out.append(UInt8(ascii: "}"))
        }
        return true
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    static func string(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0..<0x20:
                out.append(contentsOf: [
                    0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 0xF)],
                ])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
