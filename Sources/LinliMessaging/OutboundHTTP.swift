import Foundation
import LinliCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Where webhooks that people set up (rules' webhook actions) may go.
///
/// Anyone who may write a rule names the URL, so without a check Linli would POST on their behalf
/// to whatever the server can reach and they cannot: the cloud's metadata service at
/// 169.254.169.254, Linli's own API on 127.0.0.1, the database, the property office's LAN. So a
/// webhook may not reach a loopback, link-local, private, shared (carrier NAT), multicast or
/// reserved address — checked on the addresses the name resolves to, at the moment of sending,
/// and again on every redirect, and the connection goes to the very address that was checked (a
/// name that resolves elsewhere a moment later changes nothing). An administrator may allow hosts
/// or ranges in the configuration (`webhook-allow`), for a receiver on the community's own network.
public struct WebhookAddresses: Sendable, Equatable {
    public var allowedRanges: [IPAddressRange]
    public var allowedHosts: Set<String>

    public init(allowedRanges: [IPAddressRange] = [], allowedHosts: Set<String> = []) {
        self.allowedRanges = allowedRanges
        self.allowedHosts = allowedHosts
    }

    /// From `webhook-allow`: a comma-separated list of addresses, CIDR ranges and host names.
    public init(allow text: String) throws(ValidationFailure) {
        var ranges: [IPAddressRange] = []
        var hosts: Set<String> = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            if let range = IPAddressRange(item) {
                ranges.append(range)
            } else if item.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }), !item.contains("/") {
                hosts.insert(item.lowercased())
            } else {
                throw ValidationFailure("webhook-allow", "\(item) is neither an address, a CIDR range nor a host name")
            }
        }
        self.init(allowedRanges: ranges, allowedHosts: hosts)
    }

    private static let refused: [(IPAddressRange, String)] = [
        ("0.0.0.0/8", "a 'this network' address"), ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", "a private address"), ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"), ("100.64.0.0/10", "a shared (carrier NAT) address"),
        ("169.254.0.0/16", "a link-local address"), ("192.0.0.0/24", "reserved for protocol assignments"),
        ("198.18.0.0/15", "reserved for benchmarking"), ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"), ("::1/128", "a loopback address"),
        ("::/96", "the unspecified or an IPv4-compatible address"), ("fc00::/7", "a private (unique local) address"),
        ("fe80::/10", "a link-local address"), ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    ].map { (IPAddressRange($0.0)!, $0.1) }

    /// Why a webhook may not go to `address` reached as `host`; nil when it may.
    public func refusal(host: String, address: IPAddress) -> String? {
        if allowedHosts.contains(host.lowercased()) || allowedRanges.contains(where: { $0.contains(address) }) {
            return nil
        }
        // An IPv6 form of an IPv4 address (mapped, NAT64, 6to4) reaches that IPv4 address.
        let seen =
            [address]
            + (address.embeddedIPv4.map { [IPAddress(bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + $0)] } ?? [])
        for candidate in seen {
            if let (_, why) = Self.refused.first(where: { $0.0.contains(candidate) }) {
                return "\(address) is \(why)"
            }
        }
        return nil
    }

    /// Why a URL given for a webhook is refused before anything is sent: its host is an address
    /// that may not be reached, or a name that resolves to one now. A name that does not resolve
    /// now is let through (it is checked again at every sending).
    public func refusal(url: URL) async -> String? {
        guard let host = url.host, !host.isEmpty else { return "has no host" }
        let port = url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80)
        guard let addresses = try? await OutboundHTTP.resolve(host, port: port) else { return nil }
        for address in addresses {
            if let why = refusal(host: host, address: address) { return why }
        }
        return nil
    }
}

/// POSTs for webhooks, on SwiftNIO: the name resolved and each address checked before the
/// connection, which then goes to the checked address (TLS still verifies the name), and
/// redirects followed by hand (at most three, each checked the same way).
package enum OutboundHTTP {
    package struct Outcome: Sendable {
        package var status: Int?
        package var error: String?
        /// The target was refused before any connection (`WebhookAddresses`).
        package var refused: Bool
    }

    private static let tls: NIOSSLContext? = try? NIOSSLContext(configuration: .makeClientConfiguration())

    /// The addresses `host` resolves to (an address literal is itself).
    package static func resolve(_ host: String, port: Int) async throws -> [IPAddress] {
        if let literal = IPAddress(host) { return [literal] }
        return try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_family = AF_UNSPEC
            var list: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
                throw OutboundError("\(host) cannot be resolved")
            }
            defer { freeaddrinfo(first) }
            var found: [IPAddress] = []
            var node: UnsafeMutablePointer<addrinfo>? = first
            while let n = node {
                if let sa = n.pointee.ai_addr {
                    if n.pointee.ai_family == AF_INET {
                        let v4 = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                        let bytes = withUnsafeBytes(of: v4) { Array($0) }
                        found.append(IPAddress(bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + bytes))
                    } else if n.pointee.ai_family == AF_INET6 {
                        let v6 = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                        found.append(IPAddress(bytes: withUnsafeBytes(of: v6) { Array($0) }))
                    }
                }
                node = n.pointee.ai_next
            }
            if found.isEmpty { throw OutboundError("\(host) has no address") }
            return found
        }
    }

    package struct OutboundError: Error, CustomStringConvertible {
        package var description: String
        init(_ description: String) { self.description = description }
    }

    /// POSTs `body` to `url` with `headers`; `addresses` checks every target (nil: none, for the
    /// administrator's own SMS gateway).
    package static func post(
        _ url: URL, body: Data, headers: [(String, String)], addresses: WebhookAddresses?,
        timeout: TimeAmount = .seconds(10)
    ) async -> Outcome {
        var url = url
        for _ in 0...3 {
            guard let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), let host = url.host,
                !host.isEmpty
            else { return Outcome(status: nil, error: "not an http or https URL", refused: true) }
            let port = url.port ?? (scheme == "https" ? 443 : 80)
            let resolved: [IPAddress]
            do { resolved = try await resolve(host, port: port) } catch {
                return Outcome(status: nil, error: "\(error)", refused: false)
            }
            if let addresses {
                for address in resolved {
                    if let why = addresses.refusal(host: host, address: address) {
                        return Outcome(status: nil, error: "refused: \(why)", refused: true)
                    }
                }
            }
            let head: HTTPResponseHead
            do {
                head = try await exchange(
                    url, host: host, address: resolved[0], port: port, secure: scheme == "https", body: body,
                    headers: headers, timeout: timeout)
            } catch {
                return Outcome(status: nil, error: "\(error)", refused: false)
            }
            let status = Int(head.status.code)
            if [301, 302, 307, 308].contains(status), let location = head.headers.first(name: "location"),
                let next = URL(string: location, relativeTo: url)?.absoluteURL
            {
                url = next
                continue
            }
            return Outcome(status: status, error: (200..<300).contains(status) ? nil : "HTTP \(status)", refused: false)
        }
        return Outcome(status: nil, error: "more than three redirects", refused: false)
    }

    private static func exchange(
        _ url: URL, host: String, address: IPAddress, port: Int, secure: Bool, body: Data, headers: [(String, String)],
        timeout: TimeAmount
    ) async throws -> HTTPResponseHead {
        let socket = try SocketAddress(ipAddress: "\(address)", port: port)
        let group = MultiThreadedEventLoopGroup.singleton
        if secure, tls == nil { throw OutboundError("TLS is not available") }
        let promise = group.next().makePromise(of: HTTPResponseHead.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if secure, let tls {
                            try sync.addHandler(
                                NIOSSLClientHandler(context: tls, serverHostname: IPAddress(host) == nil ? host : nil))
                        }
                        try sync.addHTTPClientHandlers()
                        try sync.addHandler(ResponseHeadHandler(promise: promise))
                    }
                }
                .connect(to: socket).get()
        } catch {
            // No connection, so no handler to answer: the promise must not be left unanswered
            // (a debug build stops at a leaked promise).
            promise.fail(error)
            throw error
        }
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            promise.fail(OutboundError("no answer within \(timeout.nanoseconds / 1_000_000_000) s"))
            channel.close(promise: nil)
        }
        defer {
            deadline.cancel()
            channel.close(promise: nil)
        }
        var path = url.path.isEmpty ? "/" : url.path
        if let query = url.query { path += "?" + query }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        let defaultPort = secure ? 443 : 80
        head.headers.add(
            name: "Host", value: (host.contains(":") ? "[\(host)]" : host) + (port == defaultPort ? "" : ":\(port)"))
        head.headers.add(name: "Content-Length", value: String(body.count))
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        return try await promise.futureResult.get()
    }
}

/// Hands over the response's head, the only part a webhook's sender reads.
private final class ResponseHeadHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let promise: EventLoopPromise<HTTPResponseHead>

    init(promise: EventLoopPromise<HTTPResponseHead>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case let .head(head) = unwrapInboundIn(data) { promise.succeed(head) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(OutboundHTTP.OutboundError("the connection closed before an answer"))
        context.fireChannelInactive()
    }
}
