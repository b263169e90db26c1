import Foundation
import LinliCore

#if canImport(Glibc)
    import Glibc
    private let systemWrite = Glibc.write
#elseif canImport(Darwin)
    import Darwin
    private let systemWrite = Darwin.write
#endif

/// An uploaded file (a request body, or one part of a multipart form) as it lies in a temporary
/// file of the uploads folder's `incoming`, with its size and digests taken while it arrived.
/// `keep(at:)` moves it into place (a rename on the same file system); one never kept is removed
/// when the last reference goes, so a refused upload leaves nothing behind.
public final class UploadedFile: Sendable {
    public let path: String
    public let size: Int
    public let sha256: String
    public let md5: String
    /// The first bytes, by which its type is told (a photo's magic numbers).
    public let head: [UInt8]

    init(path: String, size: Int, sha256: String, md5: String, head: [UInt8]) {
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.md5 = md5
        self.head = head
    }

    /// Moves the file to `url`, making its folder first.
    public func keep(at url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard rename(path, url.path) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
        }
    }

    /// The whole file; for the small ones a caller must read (tests, the demo), not for uploads.
    public func bytes() throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    deinit {
        // Gone already when it was kept.
        unlink(path)
    }
}

/// Writes an upload to a new temporary file as its pieces arrive, hashing them on the way.
/// The writes are plain blocking `write(2)`s of one piece each (at most the socket's read size)
/// to the local disk, short enough for the task that reads the body.
public final class UploadWriter {
    public static let headBytes = 16
    private let path: String
    private var descriptor: Int32
    private var size = 0
    private var digest = Digest.Streaming()
    private var head: [UInt8] = []

    /// A new file in `folder/incoming` (made if needed), readable by this user only.
    public init(folder: String) throws {
        let incoming = URL(fileURLWithPath: folder).appendingPathComponent("incoming")
        try FileManager.default.createDirectory(at: incoming, withIntermediateDirectories: true)
        path = incoming.appendingPathComponent(UUID().uuidString + ".part").path
        descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if descriptor < 0 { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
    }

    public var written: Int { size }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        if head.count < Self.headBytes { head += bytes.prefix(Self.headBytes - head.count) }
        digest.update(bytes)
        var offset = 0
        while offset < bytes.count {
            let n = systemWrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
            }
            offset += n
        }
        size += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Closes the file and hands it over; the writer is done.
    public func finish() throws -> UploadedFile {
        let fd = descriptor
        descriptor = -1
        // On disk before anyone is told it is kept: an upload answered with an id survives a
        // power cut, like every other acknowledged write.
        guard fsync(fd) == 0, close(fd) == 0 else {
            unlink(path)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        let (sha256, md5) = digest.finish()
        return UploadedFile(path: path, size: size, sha256: sha256, md5: md5, head: head)
    }

    /// Removes what a previous process left in `folder/incoming` (an upload cut off by a crash):
    /// called once as the server starts, before any upload can begin.
    public static func clearIncoming(folder: String) {
        let incoming = URL(fileURLWithPath: folder).appendingPathComponent("incoming")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: incoming.path)) ?? []
        for name in names where name.hasSuffix(".part") {
            unlink(incoming.appendingPathComponent(name).path)
        }
    }

    /// Bytes already in memory as an upload (the demo's and tests' files).
    public static func file(_ bytes: [UInt8], folder: String) throws -> UploadedFile {
        let writer = try UploadWriter(folder: folder)
        try writer.write(bytes)
        return try writer.finish()
    }

    deinit {
        // Abandoned before `finish`: a body refused or cut off part way.
        if descriptor >= 0 {
            close(descriptor)
            unlink(path)
        }
    }
}
