import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import NIOCore
import Testing

@testable import LinliHTTP
@testable import LinliStorage

/// The streaming multipart parser: the same parts however the body is cut into pieces, and a
/// fault (400), never a crash, for a body that is not well-formed.
@Suite("Multipart, streamed")
struct MultipartTests {
    static let boundary = "----linliBoundary7MA4YWxkTrZu0gW"

    /// A form whose file holds what a naive parser trips on: CR LF, dashes, most of the boundary.
    static func body(file: [UInt8]) -> [UInt8] {
        var body: [UInt8] = []
        func add(_ s: String) { body += Array(s.utf8) }
        add("preamble to ignore\r\n--\(boundary)\r\n")
        add("Content-Disposition: form-data; name=\"_csrf\"\r\n\r\ntoken-123\r\n--\(boundary)\r\n")
        add("Content-Disposition: form-data; name=\"title\"\r\n\r\n漏水 leak\r\n--\(boundary)\r\n")
        add(
            "Content-Disposition: form-data; name=\"photo\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        body += file
        add("\r\n--\(boundary)--\r\nepilogue")
        return body
    }

    static let tricky: [UInt8] =
        Array("\r\n--".utf8) + Array("\r\n--\(boundary.dropLast())".utf8) + [0, 0xFF, 0x0D, 0x0A, 0x2D, 0x2D]
        + Array("--\(boundary)".utf8) + [0x0D]

    /// Events with runs of bytes joined, so that differently cut bodies compare.
    static func parse(_ pieces: [ArraySlice<UInt8>]) throws -> [MultipartParser.Event] {
        var parser = MultipartParser(boundary: boundary)
        var events: [MultipartParser.Event] = []
        for piece in pieces {
            for event in try parser.feed(piece) {
                if case let .bytes(more) = event, case let .bytes(sofar)? = events.last {
                    events[events.count - 1] = .bytes(sofar + more)
                } else {
                    events.append(event)
                }
            }
        }
        try parser.finish()
        return events
    }

    @Test func aBoundarySplitAtEveryPositionGivesTheSameParts() throws {
        let body = Self.body(file: Self.tricky)
        let whole = try Self.parse([body[...]])
        #expect(
            whole == [
                .begin(name: "_csrf", filename: nil, contentType: nil), .bytes(Array("token-123".utf8)), .end,
                .begin(name: "title", filename: nil, contentType: nil), .bytes(Array("漏水 leak".utf8)), .end,
                .begin(name: "photo", filename: "a.bin", contentType: "application/octet-stream"),
                .bytes(Self.tricky), .end,
            ])
        for cut in 0...body.count {
            #expect(try Self.parse([body[..<cut], body[cut...]]) == whole, "cut at \(cut)")
        }
        for (a, b) in [(1, 2), (30, 31), (100, 170), (body.count - 20, body.count - 3)] {
            #expect(try Self.parse([body[..<a], body[a..<b], body[b...]]) == whole)
        }
        #expect(try Self.parse(body.map { [$0][...] }) == whole, "one byte at a time")
    }

    @Test func anEmptyFileAndAnEmptyFormAreWellFormed() throws {
        let empty = Array("--\(Self.boundary)--\r\n".utf8)
        #expect(try Self.parse([empty[...]]).isEmpty)
        let body = Self.body(file: [])
        let events = try Self.parse([body[...]])
        #expect(
            events.suffix(2) == [
                .begin(name: "photo", filename: "a.bin", contentType: "application/octet-stream"), .end,
            ])
    }

    @Test func badBodiesAreFaultsNotCrashes() throws {
        let b = Self.boundary
        let bad: [(String, String)] = [
            ("no boundary at all", "just some text"),
            ("truncated in a part", "--\(b)\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhalf"),
            ("truncated in headers", "--\(b)\r\nContent-Disposition: form-data; na"),
            ("no closing delimiter", "--\(b)\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--\(b)"),
            ("junk after a delimiter", "--\(b)XX\r\n"),
            ("a part without a name", "--\(b)\r\nContent-Type: text/plain\r\n\r\nx\r\n--\(b)--"),
            ("headers without end", "--\(b)\r\n" + String(repeating: "X-Long: yes\r\n", count: 1000)),
            (
                "too many parts",
                String(
                    repeating: "--\(b)\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n", count: 60)
                    + "--\(b)--"
            ),
        ]
        for (why, text) in bad {
            let bytes = Array(text.utf8)
            #expect(throws: MultipartFault.self, "\(why)") { _ = try Self.parse([bytes[...]]) }
        }
        // Whatever the bytes, a fault or parts: cut a good body short anywhere, or flip a byte.
        let good = Self.body(file: Self.tricky)
        var generator = SystemRandomNumberGenerator()
        let closed = good.count - "\r\nepilogue".utf8.count  // up to the closing "--"
        for cut in 0..<closed {
            #expect(throws: MultipartFault.self, "cut at \(cut) of \(good.count)") {
                _ = try Self.parse([good[..<cut]])
            }
        }
        for _ in 0..<500 {
            var mangled = good
            mangled[Int.random(in: 0..<mangled.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            _ = try? Self.parse([mangled[...]])
        }
    }

    @Test func uploadsAreRemovedUnlessKept() throws {
        let folder = NSTemporaryDirectory() + "linli-uploads-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var path = ""
        do {
            let file = try UploadWriter.file(Array("hello".utf8), folder: folder)
            path = file.path
            #expect(FileManager.default.fileExists(atPath: path))
            #expect(
                file.size == 5 && file.sha256 == Digest.sha256(Array("hello".utf8))
                    && file.md5 == Digest.md5(Array("hello".utf8)))
        }
        #expect(!FileManager.default.fileExists(atPath: path), "a file nobody kept is gone")
        do {
            let writer = try UploadWriter(folder: folder)
            try writer.write([1, 2, 3])
        }
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: folder + "/incoming").isEmpty,
            "a body cut off part way leaves nothing")
        let kept = URL(fileURLWithPath: folder).appendingPathComponent("firmware/x/1.bin")
        do {
            let file = try UploadWriter.file([9, 8, 7], folder: folder)
            try file.keep(at: kept)
        }
        #expect(try Data(contentsOf: kept) == Data([9, 8, 7]))
    }

    /// A streamed body takes only a small share of the memory budget: a 10 MiB upload fits in a
    /// budget of 1 MiB, which a body read whole would not.
    @Test func aStreamedBodyTakesASmallShareOfTheBudget() async throws {
        let budget = BodyBudget(limit: 1 << 20)
        let size = 10 << 20
        func request() -> Request {
            var head = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/")
            head.headerFields[.contentLength] = String(size)
            return Request(head: head, body: .init(buffer: ByteBuffer(repeating: 7, count: size)))
        }
        var streamed = request()
        var seen = 0
        try await streamed.streamBody(upTo: 16 << 20, budget: budget) { seen += $0.readableBytes }
        #expect(seen == size)
        #expect(budget.inUse == 0, "given back")
        var whole = request()
        await #expect(throws: Problem.self) { _ = try await whole.readBody(upTo: 16 << 20, budget: budget) }
        var tooLarge = request()
        let status = await #expect(throws: Problem.self) {
            try await tooLarge.streamBody(upTo: 1 << 20, budget: budget) { _ in }
        }
        #expect(status?.status == .contentTooLarge)
    }
}
