import Testing

@testable import LinliCore

@Suite("CSV files as uploaded")
struct CSVTests {
    /// 烟感 as GBK, the way a spreadsheet on a Chinese desktop saves it by default.
    static let gbk: [UInt8] = [0xD1, 0xCC, 0xB8, 0xD0]

    @Test func bytesThatAreNotUTF8AreRefusedWithTheirLine() throws {
        let file =
            Array("productKey,deviceName,nickname\r\n".utf8) + Array("pk,smoke-1,\"two\nlines\"\n".utf8)
            + Array("pk,smoke-2,".utf8) + Self.gbk + [0x0A]
        #expect(throws: CSV.ParseError.invalidUTF8(line: 4)) { try CSV.parse(utf8: file) }
        #expect(throws: CSV.ParseError.invalidUTF8(line: 1)) { try CSV.parse(utf8: Self.gbk) }
        // A UTF-16 surrogate written as UTF-8.
        #expect(throws: CSV.ParseError.invalidUTF8(line: 1)) { try CSV.text(utf8: [0x61, 0xED, 0xA0, 0x80]) }
        let utf8 = Array("\u{FEFF}productKey,deviceName,nickname\r\npk,smoke-1,烟感\r\n".utf8)
        #expect(
            try CSV.parse(utf8: utf8).map(\.fields) == [
                ["productKey", "deviceName", "nickname"], ["pk", "smoke-1", "烟感"],
            ])
    }

    @Test func faultsReadAsSentences() {
        #expect(throws: CSV.ParseError.unterminatedQuote(line: 2)) { try CSV.parse("a,b\n1,\"2\n3\n") }
        #expect(CSV.ParseError.unterminatedQuote(line: 2).description == "line 2: a quoted field is not closed")
        #expect(
            CSV.ParseError.invalidUTF8(line: 3).description
                == "line 3: holds bytes that are not UTF-8 (save the file as UTF-8)")
    }
}
