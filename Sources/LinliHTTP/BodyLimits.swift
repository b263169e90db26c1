import Hummingbird
import Metrics
import Synchronization

/// How much of a request's body a route reads, and how much all requests together may hold
/// while their bodies arrive.
///
/// Each route reads what it needs and no more: a sign-in a few KiB, a JSON write 1 MiB, an upload
/// (a CSV import, a photo, a firmware package) 16 MiB. A body declared larger than its route's
/// limit is refused with 413 before a byte of it is read; one that turns out larger is refused as
/// it passes the limit. And all bodies being read at once share `BodyBudget.shared` (256 MiB by
/// default): a request that would take more waits for nobody and gets 503 with `Retry-After`, so
/// sockets that send most of a large body and stall cannot add up to the whole machine's memory.
/// Photos and firmware packages are streamed to disk as they arrive (`Request.bodyFile`,
/// `Request.multipart`) and take only `streamed` of the budget; a CSV import is read whole.
public enum BodyLimit {
    public static let signIn = 8 * 1024
    public static let json = 1 << 20
    public static let upload = 16 << 20
    /// What a body streamed to disk (a photo, a firmware package) takes of the memory budget:
    /// the piece or two in memory at a time, not its size.
    public static let streamed = 256 << 10
    /// A multipart form's text fields and part headers beside its file: a 16 MiB package still
    /// fits in a form.
    public static let formOverhead = 64 << 10

    /// The limit in words, for the 413's detail.
    static func words(_ bytes: Int) -> String {
        bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB"
    }
}

/// Bytes of request bodies being read, all requests together.
public final class BodyBudget: Sendable {
    public static let shared = BodyBudget(limit: 256 << 20)

    public let limit: Int
    private let taken = Atomic<Int>(0)
    private let refusals = Counter(label: "linli_http_bodies_refused_total", dimensions: [("reason", "memory")])

    public init(limit: Int) { self.limit = limit }

    public var inUse: Int { taken.load(ordering: .relaxed) }

    /// Takes `bytes` of the budget; false (and nothing taken) when they are not left.
    func take(_ bytes: Int) -> Bool {
        var current = taken.load(ordering: .relaxed)
        while current + bytes <= limit {
            let (done, now) = taken.compareExchange(expected: current, desired: current + bytes, ordering: .relaxed)
            if done { return true }
            current = now
        }
        refusals.increment()
        return false
    }

    func give(_ bytes: Int) { taken.subtract(bytes, ordering: .relaxed) }
}

extension Request {
    /// The body, read up to `limit` bytes (see `BodyLimit`).
    package mutating func readBody(upTo limit: Int, budget: BodyBudget = .shared) async throws -> ByteBuffer {
        let declared = headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > limit {
            throw Problem(
                .contentTooLarge, type: "too-large", title: "The request body is too large",
                detail: "This request takes at most \(BodyLimit.words(limit)); \(declared) bytes were declared.")
        }
        // A body of unknown length (chunked) counts as the most it may be.
        let share = max(declared ?? limit, 1)
        guard budget.take(share) else {
            throw Problem(
                .serviceUnavailable, type: "busy", title: "Too many large requests at once",
                detail: "Try again in a second.", retryAfter: 1)
        }
        defer { budget.give(share) }
        do {
            return try await collectBody(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw Problem(
                .contentTooLarge, type: "too-large", title: "The request body is too large",
                detail: "This request takes at most \(BodyLimit.words(limit)).")
        }
    }
}
