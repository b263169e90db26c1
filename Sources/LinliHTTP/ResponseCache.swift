import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliStorage
import NIOCore
import Synchronization

/// Recently computed API answers, per caller and URL, for the reads that dashboards, guard posts and
/// integrations repeat all day. An entry serves only while no write has committed in this process
/// since it was made, and for at most `lifetime` (which bounds staleness from other nodes sharing a
/// PostgreSQL database). A request with `Cache-Control: no-cache` always goes to the database.
package final class ResponseCache: Sendable {
    package struct Entry: Sendable {
        package var status: HTTPResponse.Status
        package var contentType: String
        package var body: ByteBuffer
        package var version: UInt64
        package var until: ContinuousClock.Instant
    }

    private let entries = Mutex<[String: Entry]>([:])
    package let lifetime: Duration
    package let maxEntries: Int
    package let maxBodyBytes: Int

    package init(lifetime: Duration = .seconds(2), maxEntries: Int = 2_000, maxBodyBytes: Int = 256 * 1024) {
        self.lifetime = lifetime
        self.maxEntries = maxEntries
        self.maxBodyBytes = maxBodyBytes
    }

    package func get(_ key: String, version: UInt64) -> Entry? {
        let now = ContinuousClock.now
        return entries.withLock { map in
            guard let entry = map[key] else { return nil }
            guard entry.version == version, entry.until > now else {
                map[key] = nil
                return nil
            }
            return entry
        }
    }

    package func put(_ key: String, _ entry: Entry) {
        guard entry.body.readableBytes <= maxBodyBytes else { return }
        entries.withLock { map in
            if map.count >= maxEntries { map.removeAll(keepingCapacity: true) }
            map[key] = entry
        }
    }

    /// The listings and single reads worth remembering. Not the event stream, not the audit trail,
    /// not anything about accounts or tokens.
    package static func isCacheable(_ path: Substring) -> Bool {
        guard path.hasPrefix("/api/v1/") else { return false }
        let rest = path.dropFirst("/api/v1/".count)
        return ["communities", "buildings", "households", "people", "organisations"].contains { rest.hasPrefix($0) }
            && !rest.hasSuffix("/export") && !rest.hasSuffix("/stream")
    }
}

package struct ResponseCacheMiddleware: RouterMiddleware {
    package typealias Context = AppContext
    package let cache: ResponseCache
    package let changes: ChangeCounter
    package init(cache: ResponseCache, changes: ChangeCounter) {
        self.cache = cache
        self.changes = changes
    }

    package func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response)
        async throws -> Response
    {
        guard request.method == .get, let caller = context.caller, ResponseCache.isCacheable(request.uri.path[...])
        else {
            return try await next(request, context)
        }
        // Per account: what one caller may see is never served to another.
        let key = caller.accountId + " " + request.uri.description
        let version = changes.current
        let bypass = request.headers[.cacheControl]?.contains("no-cache") == true
        if !bypass, let hit = cache.get(key, version: version) {
            return Response(
                status: hit.status, headers: [.contentType: hit.contentType, .cacheControl: "private, no-cache"],
                body: .init(byteBuffer: hit.body))
        }
        var response = try await next(request, context)
        guard response.status == .ok, let contentType = response.headers[.contentType],
            contentType.hasPrefix("application/json")
        else { return response }
        // JSON answers are built in memory, so collecting the body costs a copy, not a wait.
        let collector = BodyCollector()
        try await response.body.write(CollectingWriter(collector: collector))
        response.body = .init(byteBuffer: collector.buffer)
        response.headers[.cacheControl] = "private, no-cache"
        cache.put(
            key,
            .init(
                status: response.status, contentType: contentType, body: collector.buffer, version: version,
                until: .now + cache.lifetime))
        return response
    }
}

/// Gathers a response body written by a handler. Used only within one request's task.
package final class BodyCollector {
    package var buffer = ByteBuffer()
}

package struct CollectingWriter: ResponseBodyWriter {
    package let collector: BodyCollector
    package mutating func write(_ buffer: ByteBuffer) async throws {
        var copy = buffer
        collector.buffer.writeBuffer(&copy)
    }
    package consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
