/// RFC 4180 CSV: quoted fields may hold commas, quotes ("") and line breaks. Accepts a UTF-8 byte
/// order mark and CRLF or LF line ends, since property offices export from spreadsheets.
public enum CSV {
    public struct Row: Sendable, Equatable {
        /// 1-based line number where the record starts in the file, for error reports.
        public var line: Int
        public var fields: [String]
    }

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case unterminatedQuote(line: Int)
        case invalidUTF8(line: Int)

        /// A sentence for the person who made the file: problem details show it as it is.
        public var description: String {
            switch self {
            case let .unterminatedQuote(line): "line \(line): a quoted field is not closed"
            case let .invalidUTF8(line): "line \(line): holds bytes that are not UTF-8 (save the file as UTF-8)"
            }
        }
    }

    /// Parses a file as uploaded; see `text(utf8:)`.
    public static func parse(utf8 bytes: some Collection<UInt8>) throws(ParseError) -> [Row] {
        try parse(text(utf8: bytes))
    }

    /// The text of an uploaded file. Bytes that are not UTF-8 (a sheet saved as GBK, say) are
    /// refused with the line they are on rather than read as U+FFFD, which would store names
    /// nobody wrote.
    public static func text(utf8 bytes: some Collection<UInt8>) throws(ParseError) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        // Not UTF-8: decode again only to find the line of the first bad byte.
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var line = 1
        while case let .scalarValue(scalar) = decoder.decode(&iterator) {
            if scalar == "\n" { line += 1 }
        }
        throw .invalidUTF8(line: line)
    }

    public static func parse(_ text: String) throws(ParseError) -> [Row] {
        var rows: [Row] = []
        var field = ""
        var fields: [String] = []
        var inQuotes = false
        var line = 1
        var recordStart = 1
        var afterQuote = false
        var scalars = text.unicodeScalars[...]
        if scalars.first == "\u{FEFF}" { scalars = scalars.dropFirst() }
        var iterator = scalars.makeIterator()
        var pending: Unicode.Scalar? = nil

        func endRecord() {
            fields.append(field)
            field = ""
            if !(fields.count == 1 && fields[0].isEmpty) {
                rows.append(Row(line: recordStart, fields: fields))
            }
            fields = []
        }

        while let c = pending ?? iterator.next() {
            pending = nil
            if inQuotes {
                if c == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" {
                            field.unicodeScalars.append("\"")
                        } else {
                            inQuotes = false
                            afterQuote = true
                            pending = next
                        }
                    } else {
                        inQuotes = false
                    }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"" where field.isEmpty && !afterQuote:
                inQuotes = true
            case ",":
                fields.append(field)
                field = ""
                afterQuote = false
            case "\r":
                continue
            case "\n":
                endRecord()
                afterQuote = false
                line += 1
                recordStart = line
            default:
                field.unicodeScalars.append(c)
            }
        }
        if inQuotes { throw .unterminatedQuote(line: recordStart) }
        if !field.isEmpty || !fields.isEmpty { endRecord() }
        return rows
    }

    public static func escape(_ value: String) -> String {
        // A leading = + - @ would run as a formula in a spreadsheet: prefix it with a quote.
        var v = value
        if let first = v.first, "=+-@".contains(first), Double(v) == nil { v = "'" + v }
        if v.contains(",") || v.contains("\"") || v.contains("\n") || v.contains("\r") {
            return "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return v
    }

    public static func write(_ rows: [[String]]) -> String {
        rows.map { $0.map(escape).joined(separator: ",") }.joined(separator: "\r\n") + "\r\n"
    }
}
