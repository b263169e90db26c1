import HTTPTypes
import LinliCore
import Logging
import Metrics
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The HTTP server's sockets, bounded. Every socket holds a file descriptor and a handler, and the
/// process shares its descriptors with the MQTT broker: 20,000 silent sockets used to take them all,
/// and `/healthz` and every device's CONNECT with them.
///
/// - At most `perAddress` sockets from one address (an IPv6 /64); one more closes that address's
///   oldest socket that is waiting (has no request under way). A configured reverse proxy's address
///   is not capped: its clients are many.
/// - At most `total` in all; one more closes the oldest waiting socket anywhere — an idle keep-alive
///   connection first, then one that never finished a request head. When every socket is serving a
///   request, up to `reserve` more are let in on probation: they may ask for `/healthz` or `/readyz`
///   and get 503 for anything else, so that a health check still answers under a flood.
/// - A request head must be complete within `headSeconds` of the socket's opening (or of the end of
///   the previous response, then within the idle time): bytes dripped one at a time do not move it.
package final class HTTPConnectionLimits: Sendable {
    package let total: Int
    package let perAddress: Int
    package let reserve: Int
    let exempt: [IPAddressRange]
    let logger: Logger

    enum Admission { case admitted, probation }

    struct Entry {
        var channel: any Channel
        var place: String
        var number: UInt64
        /// A request is under way (its head came, its response has not ended).
        var busy = false
        /// Served one request at least: an idle keep-alive connection when not busy.
        var served = false
        var probation = false
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var perPlace: [String: Int] = [:]
        var next: UInt64 = 0
        /// Sockets let in on probation: they hold none of the `total` places.
        var onProbation = 0
    }
    private let state = Mutex(State())
    private let refusedPerAddress = Counter(
        label: "linli_http_connections_refused_total", dimensions: [("reason", "per_address")])
    private let refusedTotal = Counter(label: "linli_http_connections_refused_total", dimensions: [("reason", "total")])
    private let open = Gauge(label: "linli_http_connections")

    package init(total: Int, perAddress: Int, reserve: Int = 16, exempt: [IPAddressRange] = [], logger: Logger) {
        self.total = max(1, total)
        self.perAddress = max(1, perAddress)
        self.reserve = max(0, reserve)
        self.exempt = exempt
        self.logger = logger
    }

    /// An address's place: itself for IPv4, its /64 for IPv6 (which one host usually holds whole).
    package static func place(_ address: SocketAddress?) -> (key: String, ip: IPAddress?) {
        guard let text = address?.ipAddress, let ip = IPAddress(text) else { return ("-", nil) }
        if ip.isIPv4 { return (ip.description, ip) }
        let groups = stride(from: 0, to: 8, by: 2).map {
            String(UInt16(ip.bytes[$0]) << 8 | UInt16(ip.bytes[$0 + 1]), radix: 16)
        }
        return (groups.joined(separator: ":") + "::/64", ip)
    }

    /// Takes a socket that has just opened; nil when it must be closed at once. Closes the sockets it
    /// pushes out.
    func admit(_ channel: any Channel) -> Admission? {
        let (place, ip) = Self.place(channel.remoteAddress)
        let capped = !(ip.map { ip in exempt.contains { $0.contains(ip) } } ?? false)
        var evicted: [any Channel] = []
        var refusal: String?
        let admission = state.withLock { s -> Admission? in
            if capped, s.perPlace[place, default: 0] >= perAddress {
                guard let oldest = Self.oldestWaiting(in: s.entries, place: place) else {
                    refusal = "per address"
                    return nil
                }
                evicted.append(Self.remove(oldest, from: &s))
            }
            var probation = false
            if s.entries.count - s.onProbation >= total {
                // Only a socket that holds one of the places makes room for a new one: a health
                // check's socket on probation that has gone idle does not, or the next request
                // would be let in as if the server had room.
                if let oldest = Self.oldestWaiting(in: s.entries, place: nil, onProbation: false) {
                    evicted.append(Self.remove(oldest, from: &s))
                } else if s.onProbation < reserve {
                    probation = true
                } else if let idle = Self.oldestWaiting(in: s.entries, place: nil, onProbation: true) {
                    evicted.append(Self.remove(idle, from: &s))
                    probation = true
                } else {
                    refusal = "total"
                    return nil
                }
            }
            s.next += 1
            s.entries[ObjectIdentifier(channel)] = Entry(
                channel: channel, place: place, number: s.next, probation: probation)
            s.perPlace[place, default: 0] += 1
            if probation { s.onProbation += 1 }
            return probation ? .probation : .admitted
        }
        for channel in evicted { channel.close(promise: nil) }
        if !evicted.isEmpty {
            logger.notice(
                "HTTP connections at their limit: closed the oldest waiting", metadata: ["closed": "\(evicted.count)"])
        }
        if let refusal {
            (refusal == "total" ? refusedTotal : refusedPerAddress).increment()
            logger.warning("HTTP connection refused: \(refusal) limit", metadata: ["address": "\(place)"])
        }
        record()
        return admission
    }

    /// The oldest socket with no request under way (of `place`, or anywhere): an idle keep-alive
    /// one before one that never sent a whole head.
    private static func oldestWaiting(
        in entries: [ObjectIdentifier: Entry], place: String?, onProbation: Bool? = nil
    ) -> ObjectIdentifier? {
        var best: (id: ObjectIdentifier, served: Bool, number: UInt64)?
        for (id, e) in entries
        where !e.busy && (place == nil || e.place == place) && (onProbation == nil || e.probation == onProbation) {
            if let b = best {
                if (e.served && !b.served) || (e.served == b.served && e.number < b.number) {
                    best = (id, e.served, e.number)
                }
            } else {
                best = (id, e.served, e.number)
            }
        }
        return best?.id
    }

    private static func remove(_ id: ObjectIdentifier, from s: inout State) -> any Channel {
        let entry = s.entries.removeValue(forKey: id)!
        if entry.probation { s.onProbation -= 1 }
        s.perPlace[entry.place]! -= 1
        if s.perPlace[entry.place] == 0 { s.perPlace[entry.place] = nil }
        return entry.channel
    }

    func busy(_ channel: any Channel, _ busy: Bool) {
        state.withLock { s in
            guard s.entries[ObjectIdentifier(channel)] != nil else { return }
            s.entries[ObjectIdentifier(channel)]!.busy = busy
            if !busy { s.entries[ObjectIdentifier(channel)]!.served = true }
        }
    }

    func leave(_ channel: any Channel) {
        state.withLock { s in
            if s.entries[ObjectIdentifier(channel)] != nil { _ = Self.remove(ObjectIdentifier(channel), from: &s) }
        }
        record()
    }

    package var count: Int { state.withLock { $0.entries.count } }

    private func record() { open.record(state.withLock { $0.entries.count }) }
}

/// One HTTP connection's place in `HTTPConnectionLimits`, its head deadline, and its probation.
package final class HTTPConnectionGate: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPRequestPart
    package typealias InboundOut = HTTPRequestPart
    package typealias OutboundIn = HTTPResponsePart
    package typealias OutboundOut = HTTPResponsePart

    private let limits: HTTPConnectionLimits
    private let headTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private var admitted = false
    private var probation = false
    private var refusing = false
    private var deadline: Scheduled<Void>?

    package init(limits: HTTPConnectionLimits, headSeconds: Int, idleSeconds: Int) {
        self.limits = limits
        headTimeout = .seconds(Int64(max(1, headSeconds)))
        idleTimeout = .seconds(Int64(max(1, idleSeconds)))
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    package func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !admitted else { return }
        admitted = true
        switch limits.admit(context.channel) {
        case nil:
            context.close(promise: nil)
        case .probation?:
            probation = true
            expect(context, within: headTimeout)
        case .admitted?:
            expect(context, within: headTimeout)
        }
    }

    /// The next request head must be in within `time`, whatever bytes come meanwhile.
    private func expect(_ context: ChannelHandlerContext, within time: TimeAmount) {
        deadline?.cancel()
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: time) { bound.value.close(promise: nil) }
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case let .head(head) = part {
            deadline?.cancel()
            deadline = nil
            limits.busy(context.channel, true)
            if probation, !["/healthz", "/readyz"].contains(head.path.map { String($0.prefix { $0 != "?" }) } ?? "") {
                refuse(context)
                return
            }
        }
        if refusing { return }
        context.fireChannelRead(data)
    }

    /// A connection on probation asked for more than a health check: 503, then the close.
    private func refuse(_ context: ChannelHandlerContext) {
        refusing = true
        var fields = HTTPFields()
        fields[.contentType] = "application/problem+json"
        fields[.retryAfter] = "5"
        fields[.connection] = "close"
        let body =
            #"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"The server holds as many connections as it may; try again shortly."}"#
        fields[.contentLength] = String(body.utf8.count)
        context.write(
            wrapOutboundOut(.head(HTTPResponse(status: .serviceUnavailable, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(string: body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            limits.busy(context.channel, false)
            // A keep-alive connection's next head comes within the idle time.
            expect(context, within: idleTimeout)
        }
        context.write(data, promise: promise)
    }

    package func channelInactive(context: ChannelHandlerContext) {
        end(context)
        context.fireChannelInactive()
    }

    package func handlerRemoved(context: ChannelHandlerContext) { end(context) }

    private func end(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if admitted { limits.leave(context.channel) }
        admitted = false
    }
}
