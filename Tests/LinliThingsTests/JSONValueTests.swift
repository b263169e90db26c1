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
        " { \"a\" : [ ] , \"b\" :\t{ } }\n", "5", "5.0", "5e2", "-0", "-0.0", "1.5", "1E-3", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809", "[1,]", "{\"a\":1,}", "[ 1 , ]", "12345678901234567890e-5", "0.30000000000000004", "1e300", "true", "null", "\"x\"",
        #""\u00e9\ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t \u0001""#, #"{"a":1,"a":2}"#, "[[[[[]]]]]", #"{"中文":"值","emoji":"😀"}"#,
        // Not JSON:
        "", " ", "01", "1.", ".5", "+1", "-", "1e", "1e999", "-1e999", "[,]", "[1,,]", "{,}", "{a:1}", "[1 2]", "tru", "nul", "\"open",
        "\"a\tb\"", #""\x""#, #""\u12""#, #""\ud800""#, #""\udc00""#, "{} {}", "[1]]", "{\"a\"}", "{\"a\":}",
    ]

    @Test func parsesWhatJSONDecoderParses() {
        for text in Self.documents {
            #expect(JSONValue.parse(Data(text.utf8)) == Self.foundationParse(text), "\(text)")
        }
        // Invalid UTF-8 inside a string, and nesting beyond 512.
        #expect(JSONValue.parse(Data([0x22, 0xFF, 0x22])) == nil)
        #expect(JSONValue.parse(Data((String(repeating: "[", count: 600) + String(repeating: "]", count: 600)).utf8)) == nil)
        #expect(JSONValue.parse(Data((String(repeating: "[", count: 100) + String(repeating: "]", count: 100)).utf8)) != nil)
    }

    @Test func writesWhatJSONEncoderWrites() {
        let values: [JSONValue] = [
            .null, .bool(true), .int(-42), .int(Int64.max),
            .double(1.0), .double(22.0), .double(21.5), .double(0.1), .double(1e20), .double(1e21), .double(1e-7), .double(-0.0),
            .double(123456789012345678.0), .double(1.5e300), .double(1e15), .double(1e16), .double(0.30000000000000004), .double(.nan),
            .string("q\"b\\s/\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é中😀\u{2028}"),
            .array([]), .object([:]), .array([.int(1), .array([.null]), .object(["k": .double(2.5)])]),
            .object(["a10": .int(1), "a9": .int(2), "B": .int(3), "a": .int(4), "_x": .int(5), "é": .int(6), "Z": .int(7), "aa": .int(8), "a_": .int(9)]),
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
}
