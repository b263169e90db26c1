import Crypto
import Foundation

/// Digests of files Linli hands out (firmware), as devices check them: lower-case hex.
extension Digest {
    public static func sha256(_ bytes: [UInt8]) -> String { hex(SHA256.hash(data: bytes)) }
    /// MD5 is broken for security; older device SDKs check it only against corruption in transit.
    public static func md5(_ bytes: [UInt8]) -> String { hex(Insecure.MD5.hash(data: bytes)) }

    /// Both digests of bytes that arrive in pieces (an upload streamed to disk), so a large
    /// file is hashed as it passes and never read back or held whole.
    public struct Streaming: Sendable {
        private var sha256 = SHA256()
        private var md5 = Insecure.MD5()
        public init() {}
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            sha256.update(bufferPointer: bytes)
            md5.update(bufferPointer: bytes)
        }
        /// Lower-case hex, as `Digest.sha256(_:)` and `Digest.md5(_:)` give them.
        public func finish() -> (sha256: String, md5: String) {
            (hex(sha256.finalize()), hex(md5.finalize()))
        }
    }

    fileprivate static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
