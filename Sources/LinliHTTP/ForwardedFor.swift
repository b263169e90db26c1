import Hummingbird
import LinliCore

/// The client's address behind a reverse proxy. Only a peer in `trusted-proxies` is believed:
/// from anyone else `X-Forwarded-For` is a header the client wrote itself, and taking it would let
/// every request choose the address its sign-in failures are counted against. From a trusted
/// peer, the list is read from its end (the entry that proxy added) back past further trusted
/// proxies; the first address that is not one is the client.
package struct ForwardedForMiddleware: RouterMiddleware {
    package typealias Context = AppContext
    package let proxies: [IPAddressRange]

    package init(proxies: [IPAddressRange]) { self.proxies = proxies }

    package static func client(peer: String?, forwardedFor header: String?, proxies: [IPAddressRange]) -> String? {
        guard let peer, !proxies.isEmpty, let header,
            let peerAddress = IPAddress(peer), proxies.contains(where: { $0.contains(peerAddress) })
        else { return peer }
        var client = peer
        for entry in header.split(separator: ",").reversed() {
            let text = entry.trimmingCharacters(in: .whitespaces)
            guard let address = IPAddress(text) else { break }  // a list we cannot read ends the trust
            client = address.description
            if !proxies.contains(where: { $0.contains(address) }) { break }
        }
        return client
    }

    package func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response)
        async throws -> Response
    {
        guard !proxies.isEmpty else { return try await next(request, context) }
        var context = context
        let header = request.headers[values: .init("X-Forwarded-For")!].joined(separator: ",")
        context.remoteAddress = Self.client(
            peer: context.remoteAddress, forwardedFor: header.isEmpty ? nil : header, proxies: proxies)
        return try await next(request, context)
    }
}
