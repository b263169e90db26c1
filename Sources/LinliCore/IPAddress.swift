import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An IP address as 16 bytes, IPv4 in its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`), so that one
/// range check covers both families.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(_ text: String) {
        var text = text
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        if let zone = text.firstIndex(of: "%") { text = String(text[..<zone]) }  // fe80::1%eth0
        var v4 = in_addr()
        var v6 = in6_addr()
        if text.contains(":") {
            guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
        } else {
            // inet_pton takes only the dotted quad: no `0x7f.1`, no `2130706433`, no `127.1`.
            guard inet_pton(AF_INET, text, &v4) == 1 else { return nil }
            bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + withUnsafeBytes(of: &v4) { Array($0) }
        }
    }

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16)
        self.bytes = bytes
    }

    /// The IPv4 address inside: an IPv4 address, an IPv4-mapped IPv6 one, or one embedded by
    /// NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`), which reach that IPv4 address all the same.
    public var embeddedIPv4: [UInt8]? {
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return Array(bytes[12...])
        }
        if bytes[0..<12] == [0, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0] { return Array(bytes[12...]) }
        if bytes[0] == 0x20 && bytes[1] == 0x02 { return Array(bytes[2..<6]) }
        return nil
    }

    public var isIPv4: Bool { bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF }

    public var description: String {
        if isIPv4 { return bytes[12...].map(String.init).joined(separator: ".") }
        var copy = in6_addr()
        withUnsafeMutableBytes(of: &copy) { $0.copyBytes(from: bytes) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &copy, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A range of addresses in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or one address).
public struct IPAddressRange: Hashable, Sendable, CustomStringConvertible {
    public let base: IPAddress
    /// Prefix length over the 16-byte form (an IPv4 /8 is /104 here).
    public let prefix: Int
    public let description: String

    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let address = IPAddress(first) else { return nil }
        let width = address.isIPv4 ? 32 : 128
        var length = width
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...width).contains(n) else { return nil }
            length = n
        }
        base = address
        prefix = length + (address.isIPv4 ? 96 : 0)
        description = parts.count == 2 ? "\(address)/\(length)" : "\(address)"
    }

    public func contains(_ address: IPAddress) -> Bool {
        var left = prefix
        for i in 0..<16 where left > 0 {
            let bits = min(8, left)
            let mask: UInt8 = bits == 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if address.bytes[i] & mask != base.bytes[i] & mask { return false }
            left -= bits
        }
        return true
    }
}
