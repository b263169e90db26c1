import Foundation
import Hummingbird
import LinliCore
import LinliStorage

/// `multipart/form-data` bodies (a form with a file), parsed without a library as they arrive:
/// the parser is fed the body's pieces as the socket gives them and says where each part begins,
/// what bytes it holds and where it ends, keeping back only what could be the start of a boundary
/// split between two pieces. So a 16 MiB photo or firmware package goes to disk piece by piece
/// (`Request.multipart(context:folder:)`) and is never held whole in memory.
package struct Multipart {
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
}

/// Why a body is not well-formed multipart: the client's fault, answered with 400.
package struct MultipartFault: Error, Equatable, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// The streaming parser: `feed` it the body's pieces in order, then `finish`.
package struct MultipartParser {
    package enum Event: Equatable {
        case begin(name: String, filename: String?, contentType: String?)
        case bytes([UInt8])
        case end
    }

    private enum State { case preamble, afterDelimiter, headers, body, done }

    /// A part's headers (its name, file name and type) are a few hundred bytes; more is refused.
    package static let maxHeaderBytes = 8 * 1024
    package static let maxParts = 50

    /// `--boundary`, as the first delimiter is written; later ones are preceded by CRLF.
    private let delimiter: [UInt8]
    private let bodyDelimiter: [UInt8]
    private var pending: [UInt8] = []
    private var state = State.preamble
    private var parts = 0

    package init(boundary: String) {
        delimiter = Array("--\(boundary)".utf8)
        bodyDelimiter = [0x0D, 0x0A] + delimiter
    }

    package var isDone: Bool { state == .done }

    package mutating func feed(_ chunk: some Sequence<UInt8>) throws(MultipartFault) -> [Event] {
        pending.append(contentsOf: chunk)
        var events: [Event] = []
        var at = 0
        scan: while true {
            switch state {
            case .preamble:
                // Anything before the first delimiter is a preamble, which RFC 2046 says to ignore.
                if let i = Self.find(delimiter, in: pending, from: at) {
                    at = i + delimiter.count
                    state = .afterDelimiter
                } else {
                    at = max(at, pending.count - (delimiter.count - 1))
                    break scan
                }
            case .afterDelimiter:
                guard pending.count - at >= 2 else { break scan }
                let (a, b) = (pending[at], pending[at + 1])
                if a == 0x2D, b == 0x2D {
                    // "--" after a delimiter ends the body; what follows is an epilogue.
                    state = .done
                    at = pending.count
                    break scan
                }
                guard a == 0x0D, b == 0x0A else {
                    throw MultipartFault("a boundary is followed by neither CRLF nor --")
                }
                at += 2
                state = .headers
            case .headers:
                guard let i = Self.find([0x0D, 0x0A, 0x0D, 0x0A], in: pending, from: at) else {
                    if pending.count - at > Self.maxHeaderBytes + 3 {
                        throw MultipartFault("a part's headers are longer than 8 KiB")
                    }
                    break scan
                }
                if i - at > Self.maxHeaderBytes { throw MultipartFault("a part's headers are longer than 8 KiB") }
                let headers = String(decoding: pending[at..<i], as: UTF8.self)
                var name: String? = nil
                var filename: String? = nil
                var contentType: String? = nil
                for line in headers.components(separatedBy: "\r\n") {
                    let lower = line.lowercased()
                    if lower.hasPrefix("content-disposition:") {
                        name = Multipart.parameter("name", in: line)
                        filename = Multipart.parameter("filename", in: line)
                    } else if lower.hasPrefix("content-type:") {
                        contentType = line.dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces)
                    }
                }
                guard let name else { throw MultipartFault("a part has no Content-Disposition name") }
                parts += 1
                if parts > Self.maxParts { throw MultipartFault("there are more than \(Self.maxParts) parts") }
                events.append(.begin(name: name, filename: filename, contentType: contentType))
                at = i + 4
                state = .body
            case .body:
                if let i = Self.find(bodyDelimiter, in: pending, from: at) {
                    if i > at { events.append(.bytes(Array(pending[at..<i]))) }
                    events.append(.end)
                    at = i + bodyDelimiter.count
                    state = .afterDelimiter
                } else {
                    // All but the tail that could be the beginning of a delimiter cut in two.
                    let safe = pending.count - (bodyDelimiter.count - 1)
                    if safe > at {
                        events.append(.bytes(Array(pending[at..<safe])))
                        at = safe
                    }
                    break scan
                }
            case .done:
                at = pending.count
                break scan
            }
        }
        pending.removeFirst(at)
        return events
    }

    /// The body has ended: it must have ended with the closing delimiter.
    package func finish() throws(MultipartFault) {
        guard state == .done else {
            throw MultipartFault(
                state == .preamble ? "there is no boundary line" : "the body ends before the closing boundary")
        }
    }

    package static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, from <= haystack.count - needle.count else { return nil }
        return haystack.withUnsafeBufferPointer { hay in
            needle.withUnsafeBufferPointer { needle in
                let first = needle[0]
                var i = from
                let last = hay.count - needle.count
                while i <= last {
                    if hay[i] == first {
                        var j = 1
                        while j < needle.count, hay[i + j] == needle[j] { j += 1 }
                        if j == needle.count { return i }
                    }
                    i += 1
                }
                return nil
            }
        }
    }
}

/// A multipart form as read: its text fields in memory, its files on disk (temporary until a
/// handler keeps them; see `UploadedFile`). The first part of a name counts, as a browser sends one.
package struct MultipartForm: Sendable {
    package var fields: [String: String] = [:]
    package var files: [String: UploadedFile] = [:]

    /// A text field, trimmed; empty when absent.
    package func field(_ name: String) -> String {
        fields[name]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    /// A file part that holds bytes (a browser sends an empty one for a file input left empty).
    package func file(_ name: String) -> UploadedFile? {
        files[name].flatMap { $0.size > 0 ? $0 : nil }
    }

    /// A text field is a form's value (a title, a version), not a file: this much is plenty.
    package static let maxFieldBytes = 64 * 1024
}

extension Request {
    /// Reads the body piece by piece, refusing it (413) once it passes `limit` or when its
    /// declared length does; it holds only `BodyLimit.streamed` of the memory budget, since no
    /// more than a piece or two is in memory at a time.
    package mutating func streamBody(
        upTo limit: Int, budget: BodyBudget = .shared, _ each: (ByteBuffer) throws -> Void
    ) async throws {
        let declared = headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > limit {
            throw Problem(
                .contentTooLarge, type: "too-large", title: "The request body is too large",
                detail: "This request takes at most \(BodyLimit.words(limit)); \(declared) bytes were declared.")
        }
        let share = min(max(declared ?? limit, 1), BodyLimit.streamed)
        guard budget.take(share) else {
            throw Problem(
                .serviceUnavailable, type: "busy", title: "Too many large requests at once",
                detail: "Try again in a second.", retryAfter: 1)
        }
        defer { budget.give(share) }
        var total = 0
        for try await chunk in body {
            total += chunk.readableBytes
            if total > limit {
                throw Problem(
                    .contentTooLarge, type: "too-large", title: "The request body is too large",
                    detail: "This request takes at most \(BodyLimit.words(limit)).")
            }
            try each(chunk)
        }
    }

    /// The raw body written to a temporary file in `folder` as it arrives, hashed on the way.
    package mutating func bodyFile(folder: String, upTo limit: Int) async throws -> UploadedFile {
        let writer = try UploadWriter(folder: folder)
        try await streamBody(upTo: limit) { chunk in
            try chunk.withUnsafeReadableBytes { try writer.write($0) }
        }
        return try writer.finish()
    }

    /// A multipart form, its files streamed to temporary files in `folder`; 400 naming what is
    /// wrong when it is not well-formed. When the CSRF check has read it already, the form it read.
    ///
    /// `verify` sees the text fields before the first file's bytes are written (or at the end when
    /// there is no file): the CSRF check refuses there, so a forged post writes nothing to disk
    /// (the page's forms put `_csrf` first).
    package mutating func multipart(
        context: AppContext, folder: String, limit: Int = BodyLimit.upload + BodyLimit.formOverhead,
        verify: ((MultipartForm) throws -> Void)? = nil
    ) async throws -> MultipartForm {
        if let form = context.multipartForm { return form }
        guard let boundary = Multipart.boundary(headers[.contentType]) else {
            throw Problem.badRequest("body", "is not multipart/form-data")
        }
        var parser = MultipartParser(boundary: boundary)
        var form = MultipartForm()
        var verify = verify
        var name = ""
        var text: [UInt8]? = nil
        var writer: UploadWriter? = nil
        func handle(_ events: [MultipartParser.Event]) throws {
            for event in events {
                switch event {
                case let .begin(partName, filename, _):
                    name = partName
                    if filename != nil {
                        if let check = verify {
                            verify = nil
                            try check(form)
                        }
                        writer = try UploadWriter(folder: folder)
                    } else {
                        text = []
                    }
                case let .bytes(bytes):
                    if let writer {
                        try writer.write(bytes)
                    } else if text != nil {
                        if text!.count + bytes.count > MultipartForm.maxFieldBytes {
                            throw Problem(
                                .contentTooLarge, type: "too-large", title: "A form field is too large",
                                detail: "\(name) is longer than 64 KiB.",
                                errors: [FieldIssue(name, "must be at most 64 KiB")])
                        }
                        text! += bytes
                    }
                case .end:
                    if let file = writer {
                        let done = try file.finish()
                        if form.files[name] == nil { form.files[name] = done }
                    } else if let bytes = text, form.fields[name] == nil {
                        form.fields[name] = String(decoding: bytes, as: UTF8.self)
                    }
                    writer = nil
                    text = nil
                }
            }
        }
        do {
            try await streamBody(upTo: limit) { chunk in
                try chunk.withUnsafeReadableBytes { try handle(parser.feed($0)) }
            }
            try parser.finish()
        } catch let fault as MultipartFault {
            throw Problem.badRequest("body", "is not well-formed multipart/form-data: \(fault.description)")
        }
        if let check = verify { try check(form) }
        return form
    }
}
