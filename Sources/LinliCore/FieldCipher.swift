import Crypto
import Foundation

/// Encrypts sensitive fields (identity card numbers) before they reach the database.
///
/// AES-256-GCM with a fresh nonce per value; the stored text is `v1:` followed by base64 of
/// nonce + ciphertext + tag. A keyed hash (HMAC-SHA256 with a key derived from the same secret) gives a
/// stable "blind index" so an exact number can be found without decrypting every row.
public struct FieldCipher: Sendable {
    private let encryptionKey: SymmetricKey
    private let indexKey: SymmetricKey
    private let tagKey: SymmetricKey

    public init(secret: Data) throws {
        guard secret.count >= 32 else { throw ValidationFailure("secret", "must be at least 32 bytes") }
        let master = SymmetricKey(data: secret)
        encryptionKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: master, info: Data("linli field encryption".utf8), outputByteCount: 32)
        indexKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: master, info: Data("linli blind index".utf8), outputByteCount: 32)
        tagKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: master, info: Data("linli tags".utf8), outputByteCount: 32)
    }

    /// A tag only this server can make for `value` (HMAC-SHA256, URL-safe base64 of 16 bytes),
    /// for things handed out and recognised later, such as a browser's device cookie. `purpose`
    /// keeps a tag made for one thing from passing for another.
    public func tag(_ value: String, purpose: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data((purpose + "\u{0}" + value).utf8), using: tagKey)
        return Data(mac).prefix(16).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func randomSecret() -> Data {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    public func encrypt(_ plaintext: String) throws -> String {
        let sealed = try AES.GCM.seal(Data(plaintext.utf8), using: encryptionKey)
        guard let combined = sealed.combined else { throw CipherError.sealFailed }
        return "v1:" + combined.base64EncodedString()
    }

    public func decrypt(_ stored: String) throws -> String {
        guard stored.hasPrefix("v1:"), let data = Data(base64Encoded: String(stored.dropFirst(3))) else {
            throw CipherError.unreadable
        }
        let box = try AES.GCM.SealedBox(combined: data)
        let plain = try AES.GCM.open(box, using: encryptionKey)
        guard let text = String(data: plain, encoding: .utf8) else { throw CipherError.unreadable }
        return text
    }

    public func blindIndex(_ value: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(value.uppercased().utf8), using: indexKey)
        return Data(mac).map { String(format: "%02x", $0) }.joined()
    }

    public enum CipherError: Error { case sealFailed, unreadable }
}

public enum Digest {
    /// Hex SHA-256, used for API tokens and session ids: only the hash is stored.
    public static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// A URL-safe random token of `bytes` random bytes.
    public static func randomToken(bytes: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        let data = Data((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) })
        return data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}
