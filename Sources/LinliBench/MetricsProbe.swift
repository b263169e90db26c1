import NIOCore
import NIOPosix

/// `http://host:port/path` — enough URL for a Prometheus endpoint on the local network.
public struct HTTPTarget: Sendable, Equatable {
    public var endpoint: Endpoint
    public var path: String

    public static func parse(_ url: String) throws(BenchSettingsError) -> HTTPTarget {
        guard url.hasPrefix("http://") else {
            throw BenchSettingsError("--metrics-url must start with http:// (plain HTTP), got '\(url)'")
        }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        let endpoint =
            authority.contains(":")
            ? try Endpoint.parse(authority, option: "--metrics-url") : Endpoint(host: authority, port: 80)
        guard !endpoint.host.isEmpty else { throw BenchSettingsError("--metrics-url has no host: '\(url)'") }
        return HTTPTarget(endpoint: endpoint, path: path)
    }
}

/// One HTTP GET over a plain NIO socket (the package has no HTTP client, and this needs none):
/// `Connection: close`, read to the end, then split and de-chunk.
enum HTTPGet {
    struct Failure: Error, CustomStringConvertible { var description: String }

    static func fetch(_ target: HTTPTarget, timeout: TimeAmount = .seconds(10)) async throws -> String {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let done = loop.makePromise(of: ByteBuffer.self)
        let channel = try await ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CollectToEnd(done: done))
                }
            }
            .connect(host: target.endpoint.host, port: target.endpoint.port).get()
        let deadline = loop.scheduleTask(in: timeout) {
            done.fail(
                Failure(
                    description: "no answer from \(target.endpoint) within \(timeout.nanoseconds / 1_000_000_000) s"))
            channel.close(promise: nil)
        }
        let request =
            "GET \(target.path) HTTP/1.1\r\nHost: \(target.endpoint)\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        let bytes = try await done.futureResult.get()
        deadline.cancel()
        let response = try parseResponse(String(buffer: bytes))
        guard response.status == 200 else {
            throw Failure(description: "\(target.path) answered HTTP \(response.status)")
        }
        return response.body
    }

    /// Status and body of a whole HTTP/1.1 response; a chunked body is joined. Works on bytes:
    /// chunk sizes count bytes, and "\r\n" is one Character to Swift's String.
    static func parseResponse(_ text: String) throws -> (status: Int, body: String) {
        let bytes = Array(text.utf8)
        let crlf: [UInt8] = [13, 10]
        guard let headerEnd = find(crlf + crlf, in: bytes, from: 0) else {
            throw Failure(description: "the HTTP response has no end of headers")
        }
        let head = String(decoding: bytes[..<headerEnd], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = head.first?.split(separator: " ") ?? []
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]) else {
            throw Failure(description: "not an HTTP/1.x response")
        }
        var body = Array(bytes[(headerEnd + 4)...])
        let chunked = head.dropFirst().contains {
            $0.lowercased().hasPrefix("transfer-encoding:") && $0.lowercased().contains("chunked")
        }
        if chunked {
            var joined: [UInt8] = []
            var at = 0
            while let lineEnd = find(crlf, in: body, from: at),
                let size = Int(
                    String(decoding: body[at..<lineEnd], as: UTF8.self).split(separator: ";").first ?? "", radix: 16),
                size > 0,
                lineEnd + 2 + size <= body.count
            {
                joined += body[(lineEnd + 2)..<(lineEnd + 2 + size)]
                at = lineEnd + 2 + size + 2  // the chunk's own CRLF
            }
            body = joined
        }
        return (status, String(decoding: body, as: UTF8.self))
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= needle.count, start <= bytes.count - needle.count else { return nil }
        return (start...(bytes.count - needle.count)).first { bytes[$0..<$0 + needle.count].elementsEqual(needle) }
    }

    /// Gathers every byte until the peer closes.
    private final class CollectToEnd: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let done: EventLoopPromise<ByteBuffer>
        var received = ByteBuffer()
        init(done: EventLoopPromise<ByteBuffer>) { self.done = done }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var part = unwrapInboundIn(data)
            received.writeBuffer(&part)
        }
        func channelInactive(context: ChannelHandlerContext) { done.succeed(received) }
        func handlerRemoved(context: ChannelHandlerContext) { done.succeed(received) }
        func errorCaught(context: ChannelHandlerContext, error: Error) {
            done.fail(error)
            context.close(promise: nil)
        }
    }
}

/// One metric of a Prometheus text exposition: a summary's quantiles or a histogram's buckets,
/// each summed over label sets, with `_sum` and `_count`.
public struct PrometheusSeries: Sendable, Equatable {
    public var quantiles: [Double: Double] = [:]
    /// Cumulative counts by upper bound (`le`), +Inf included.
    public var buckets: [Double: Double] = [:]
    public var sum: Double = 0
    public var count: Double = 0

    /// Reads `name` from `text`; nil when no line names it.
    public static func parse(_ name: String, from text: String) -> PrometheusSeries? {
        var series = PrometheusSeries()
        var found = false
        for line in text.split(separator: "\n") where line.hasPrefix(name) && !line.hasPrefix("#") {
            let afterName = line.dropFirst(name.count)
            let suffixEnd = afterName.firstIndex(where: { $0 == "{" || $0 == " " }) ?? afterName.endIndex
            let suffix = afterName[..<suffixEnd]
            var labels: Substring = ""
            var rest = afterName[suffixEnd...]
            if rest.first == "{", let close = rest.firstIndex(of: "}") {
                labels = rest[rest.index(after: rest.startIndex)..<close]
                rest = rest[rest.index(after: close)...]
            }
            guard let value = rest.split(separator: " ").first.flatMap({ Double($0) }) else { continue }
            switch suffix {
            case "":
                guard let q = label("quantile", in: labels).flatMap(Double.init) else { continue }
                series.quantiles[q, default: 0] = max(series.quantiles[q] ?? 0, value)  // several label sets: the worst
            case "_bucket":
                guard let le = label("le", in: labels).flatMap(parseBound) else { continue }
                series.buckets[le, default: 0] += value
            case "_sum": series.sum += value
            case "_count": series.count += value
            default: continue  // another metric whose name starts with this one
            }
            found = true
        }
        return found ? series : nil
    }

    static func label(_ key: String, in labels: Substring) -> String? {
        for pair in labels.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].drop(while: { $0 == " " }) == key { return String(kv[1].filter { $0 != "\"" }) }
        }
        return nil
    }

    static func parseBound(_ text: String) -> Double? { text == "+Inf" ? .infinity : Double(text) }

    /// What happened between `earlier` and this scrape: counts and sums subtracted bucket by bucket.
    public func since(_ earlier: PrometheusSeries?) -> PrometheusSeries {
        guard let earlier else { return self }
        var delta = self
        for (le, n) in buckets { delta.buckets[le] = n - (earlier.buckets[le] ?? 0) }
        delta.sum -= earlier.sum
        delta.count -= earlier.count
        return delta
    }

    /// A quantile estimated from histogram buckets, interpolating linearly inside the bucket as
    /// Prometheus's `histogram_quantile` does; nil without buckets or observations.
    public func estimatedQuantile(_ q: Double) -> Double? {
        let bounds = buckets.keys.sorted()
        guard let total = bounds.last.flatMap({ buckets[$0] }), total > 0 else { return nil }
        let rank = q * total
        var lower = 0.0
        var below = 0.0
        for bound in bounds {
            let cumulative = buckets[bound] ?? 0
            if cumulative >= rank {
                if bound.isInfinite { return lower }  // above the highest finite bound: say that bound
                let inBucket = cumulative - below
                return inBucket <= 0 ? bound : lower + (bound - lower) * (rank - below) / inBucket
            }
            lower = bound
            below = cumulative
        }
        return lower
    }
}
