import Foundation
import Testing

@testable import LinliThings

/// JSONValue's own reader and writer against Foundation's JSONDecoder and JSONEncoder, which they
/// replace on the path of every device message: the same values in, the same bytes out.
@Suite("JSONValue reads and writes as Foundation does")
struct JSONValueTests {
    static func foundationParse(_ text: String) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    static func foundationSerialize(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }

    static let documents = [
        #"{"id":"123","version":"1.0","params":{"Temperature":21.5,"Humidity":40,"CO2":512,"Status":true},"method":"thing.event.property.post"}"#,
        #"{"id":7,"params":{"a":{"value":5.0,"time":1700000000000},"b":[1,2.5,-0,"x",null,false],"c":{}},"sys":{"ack":1}}"#,
        " { \"a\" : [ ] , \"b\" :\t{ } }\n", "5", "5.0", "5e2", "-0", "-0.0", "1.5", "1E-3", "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809", "[1,]", "{\"a\":1,}", "[ 1 , ]", "12345678901234567890e-5",
        "0.30000000000000004", "1e300", "true", "null", "\"x\"",
        #""\u00e9\ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t \u0001""#, #"{"a":1,"a":2}"#, "[[[[[]]]]]",
        #"{"中文":"值","emoji":"😀"}"#,
        // Not JSON:
        "", " ", "01", "1.", ".5", "+1", "-", "1e", "1e999", "-1e999", "[,]", "[1,,]", "{,}", "{a:1}", "[1 2]", "tru",
        "nul", "\"open",
        "\"a\tb\"", #""\x""#, #""\u12""#, #""\ud800""#, #""\udc00""#, "{} {}", "[1]]", "{\"a\"}", "{\"a\":}",
    ]

    @Test func parsesWhatJSONDecoderParses() {
        for text in Self.documents {
            #expect(JSONValue.parse(Data(text.utf8)) == Self.foundationParse(text), "\(text)")
        }
        // Invalid UTF-8 inside a string, and nesting beyond 512.
        #expect(JSONValue.parse(Data([0x22, 0xFF, 0x22])) == nil)
        #expect(
            JSONValue.parse(Data((String(repeating: "[", count: 600) + String(repeating: "]", count: 600)).utf8)) == nil
        )
        #expect(
            JSONValue.parse(Data((String(repeating: "[", count: 100) + String(repeating: "]", count: 100)).utf8)) != nil
        )
    }

    @Test func writesWhatJSONEncoderWrites() {
        let values: [JSONValue] = [
            .null, .bool(true), .int(-42), .int(Int64.max),
            .double(1.0), .double(22.0), .double(21.5), .double(0.1), .double(1e20), .double(1e21), .double(1e-7),
            .double(-0.0),
            .double(123456789012345678.0), .double(1.5e300), .double(1e15), .double(1e16), .double(0.30000000000000004),
            .double(.nan),
            .string("q\"b\\s/\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é中😀\u{2028}"),
            .array([]), .object([:]), .array([.int(1), .array([.null]), .object(["k": .double(2.5)])]),
            .object([
                "a10": .int(1), "a9": .int(2), "B": .int(3), "a": .int(4), "_x": .int(5), "é": .int(6), "Z": .int(7),
                "aa": .int(8), "a_": .int(9),
            ]),
            .object(["inner": .object(["bad": .double(.infinity)])]),
        ]
        for value in values {
            #expect(String(decoding: value.serialized(), as: UTF8.self) == Self.foundationSerialize(value), "\(value)")
        }
        for text in Self.documents {
            guard let value = Self.foundationParse(text) else { continue }
            #expect(String(decoding: value.serialized(), as: UTF8.self) == Self.foundationSerialize(value), "\(text)")
        }
    }

    /// Numbers are read without text in between when that gives the same Double as
    /// `Double(String)`: compared with reading through text over many short and long decimals,
    /// and with Foundation for those of up to 15 digits. (Foundation reads a decimal that comes out
    /// whole beyond 2^53, such as `1234567890123456.78e3` or `-7.57e18`, digit for digit; we read
    /// it through a Double, as before.)
    @Test func numbersReadAsFoundationReadsThem() {
        func throughText(_ text: String) -> JSONValue? {
            let integral = !text.contains(where: { ".eE".contains($0) })
            if integral, let n = Int64(text) { return .int(n) }
            guard let d = Double(text), d.isFinite else { return nil }
            if !integral, let n = Int64(exactly: d) { return .int(n) }
            return .double(d)
        }
        var generator = SystemRandomNumberGenerator()
        var texts = [
            "0.1", "0.05", "-0.5", "21.5", "99.99", "1e22", "1e23", "1.7976931348623157e308", "5e-324",
            "123456789012345.6",
            "1234567890123456.7", "0.000001", "4.35", "1.000000000000000000", "-12.5E+3", "7E-22", "7E-23",
            "100000000000000000000000",
        ]
        for _ in 0..<20_000 {
            let digits = Int.random(in: 1...18, using: &generator)
            var text = Int.random(in: 0...1, using: &generator) == 0 ? "" : "-"
            text += String(Int.random(in: 1...9, using: &generator))
            for _ in 1..<digits { text += String(Int.random(in: 0...9, using: &generator)) }
            let point = Int.random(in: 0...digits, using: &generator)
            if point > 0, point < digits { text.insert(".", at: text.index(text.endIndex, offsetBy: -point)) }
            if Int.random(in: 0...3, using: &generator) == 0 {
                text += "e" + String(Int.random(in: -30...30, using: &generator))
            }
            texts.append(text)
        }
        for text in texts {
            let parsed = JSONValue.parse(Data(text.utf8))
            #expect(parsed == throughText(text), "\(text)")
            // Whole numbers beyond 2^53 are where the two roads part (see above).
            if case let .int(n)? = parsed, n.magnitude > 1 << 53 { continue }
            if text.filter(\.isNumber).count <= 15 { #expect(parsed == Self.foundationParse(text), "\(text)") }
        }
    }

    struct Input: Decodable, Equatable {
        var name: String
        var tsl: JSONValue?
        var values: [JSONValue]
        var nested: [String: [JSONValue]]?
        var count: Int?
    }

    /// `JSONValue.decode` takes JSONValues from its own parse: they must be the values JSONDecoder
    /// finds at the same place, and everything else, errors included, JSONDecoder's.
    @Test func decodesWhatJSONDecoderDecodes() throws {
        let inputs = [
            #"{"name": "d", "tsl": {"a": [1, 2.5, "x", null, true, {"b": {}}]}, "values": [[], {"c": -0}, 1e300], "nested": {"k": [1, [2]]}, "count": 3}"#,
            #"{"name": "d", "tsl": null, "values": [], "name": "first wins"}"#,
            #"{"name": "d", "values": [5.0, "\u00e9"], "count": 4.0}"#,
            "\u{FEFF}" + #"{"name": "after a byte order mark", "tsl": [1], "values": [{}]}"#,
        ]
        for text in inputs {
            #expect(
                try JSONValue.decode(Input.self, from: Data(text.utf8))
                    == JSONDecoder().decode(Input.self, from: Data(text.utf8)), "\(text)")
        }
        func fault(_ text: String, _ decode: (Data) throws -> Input) -> String {
            do {
                _ = try decode(Data(text.utf8))
                return "none"
            } catch let error as DecodingError {
                switch error {
                case let .typeMismatch(_, c), let .valueNotFound(_, c), let .dataCorrupted(c):
                    return "\(c.codingPath.map(\.stringValue))"
                case let .keyNotFound(key, c): return "\(c.codingPath.map(\.stringValue)) \(key.stringValue)"
                @unknown default: return "unknown"
                }
            } catch { return "\(error)" }
        }
        for text in [
            #"{"name": 1, "values": []}"#, #"{"values": []}"#, #"{"name": "d", "values": {}}"#,
            #"{"name": "d", "values": [], "count": 1.5}"#, "[]", "{",
        ] {
            #expect(
                fault(text) { try JSONValue.decode(Input.self, from: $0) }
                    == fault(text) { try JSONDecoder().decode(Input.self, from: $0) }, "\(text)")
        }
        #expect(throws: DecodingError.self) {
            try JSONValue.decode(Input.self, from: Data([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]))
        }
    }

    @Test func decodesValuesNestedToTheLimitAndNoFurther() throws {
        struct Desired: Decodable { var values: JSONValue }
        func nested(_ depth: Int) -> Data {
            Data(
                (#"{"values": "# + String(repeating: "[", count: depth) + "7" + String(repeating: "]", count: depth)
                    + "}").utf8)
        }
        var value = try JSONValue.decode(Desired.self, from: nested(511)).values
        var depth = 0
        while case let .array(items) = value, items.count == 1 {
            value = items[0]
            depth += 1
        }
        #expect(depth == 511 && value == .int(7))
        #expect(throws: DecodingError.self, "the object and 512 arrays nest 513 deep") {
            try JSONValue.decode(Desired.self, from: nested(512))
        }
    }

    @Test func membersOfAnObjectInOrder() {
        var seen: [String] = []
        let ok = #"{"b":1,"a":{"x":[2]},"b":3,}"#.utf8.withContiguousStorageIfAvailable { bytes in
            JSONValue.forEachMember(ofObject: UnsafeRawBufferPointer(bytes)) { key, value in
                seen.append("\(key)=\(value)")
            }
        }
        #expect(ok == true)
        #expect(
            seen == [
                "b=int(1)", "a=object([\"x\": LinliThings.JSONValue.array([LinliThings.JSONValue.int(2)])])",
                "b=int(3)",
            ])
        for bad in ["[1]", "{\"a\":1} x", "{\"a\"}", "", "{"] {
            let result = bad.utf8.withContiguousStorageIfAvailable {
                JSONValue.forEachMember(ofObject: UnsafeRawBufferPointer($0)) { _, _ in }
            }
            #expect(result == false, "\(bad)")
        }
    }
}
