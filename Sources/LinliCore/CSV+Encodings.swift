import Foundation

#if canImport(CoreFoundation)
    import CoreFoundation
#endif

/// Sheets as property offices save them: Excel on a Chinese Windows writes CSV in GBK (a subset
/// of GB 18030), elsewhere UTF-8, with or without a byte order mark.
extension CSV {
    public enum Encoding: String, Sendable, Equatable {
        case utf8 = "UTF-8"
        case gb18030 = "GB18030"
    }

    /// GB 18030-2000 as Foundation names it (`kCFStringEncodingGB_18030_2000`, 0x0632); it reads
    /// GBK and GB2312 as well, both being its subsets.
    static let gb18030 = String.Encoding(
        rawValue: UInt(CFStringConvertEncodingToNSStringEncoding(CFStringEncoding(0x0632))))

    /// The text of a spreadsheet file: UTF-8 when the bytes are valid UTF-8 (a BOM is dropped by
    /// the parser), else GB 18030. Bytes that are neither are refused with the line of the first
    /// byte that is not UTF-8.
    public static func text(spreadsheet bytes: [UInt8]) throws(ParseError) -> (text: String, encoding: Encoding) {
        if let text = String(validating: bytes, as: UTF8.self) { return (text, .utf8) }
        if let text = String(data: Data(bytes), encoding: gb18030), !text.unicodeScalars.contains("\u{FFFD}") {
            return (text, .gb18030)
        }
        return (try self.text(utf8: bytes), .utf8)
    }

    /// The byte order mark that makes Excel read a CSV file as UTF-8.
    public static let byteOrderMark = "\u{FEFF}"
}

extension CSV.ParseError {
    /// The line of the file the fault is on.
    public var line: Int {
        switch self {
        case let .unterminatedQuote(line), let .invalidUTF8(line): line
        }
    }
}
