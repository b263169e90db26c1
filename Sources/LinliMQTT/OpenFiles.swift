import Foundation
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The process's limit on open file descriptors (RLIMIT_NOFILE). Every connection holds one.
public enum OpenFileLimit {
    public struct Limits: Sendable, Equatable, CustomStringConvertible {
        public var soft: Int
        public var hard: Int
        public var description: String { "soft \(soft), hard \(hard)" }
    }

    #if os(Linux)
        private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
        private static let resource = RLIMIT_NOFILE
    #endif

    private static func clamp(_ value: rlim_t) -> Int { value > rlim_t(Int.max) ? Int.max : Int(value) }

    public static func current() -> Limits? {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return nil }
        return Limits(soft: clamp(limit.rlim_cur), hard: clamp(limit.rlim_max))
    }

    /// Raises the soft limit to the hard limit, which needs no privilege, and returns the limits in
    /// force afterwards. Where the hard limit is "unlimited" and the kernel refuses that (macOS), the
    /// soft limit stays as it was.
    @discardableResult
    public static func raiseToHard() -> Limits? {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            _ = setrlimit(resource, &raised)
        }
        return current()
    }

    /// File descriptors open in this process now (Linux: /proc/self/fd), nil where unknown.
    public static func openNow() -> Int? {
        #if os(Linux)
            // The directory listing holds one descriptor of its own while it runs.
            return (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")).map { max(0, $0.count - 1) }
        #else
            return nil
        #endif
    }
}

/// How many sockets the broker's listeners may hold open together. A process that runs out of file
/// descriptors fails in places far from the broker — SQLite cannot open its journal, the Swift
/// runtime's thread-pool monitor cannot read /proc and aborts the process — so the broker stops
/// short of the limit: it closes a connection it accepted beyond the budget at once, before it
/// costs anything more than the moment it was open.
final class SocketBudget: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)

    init(limit: Int) { self.limit = max(0, limit) }

    /// The budget for a process with `fileLimit` descriptors, `alreadyOpen` of them in use, keeping
    /// `reserve` free for everything else (database files, HTTP clients, the runtime).
    static func limit(configured: Int?, fileLimit: Int?, alreadyOpen: Int?, reserve: Int) -> Int {
        var budget = configured ?? Int.max
        if let fileLimit, fileLimit < Int.max / 2 {
            budget = min(budget, fileLimit - (alreadyOpen ?? 0) - reserve)
        }
        return max(0, budget)
    }

    var count: Int { open.load(ordering: .relaxed) }

    /// Takes a place for one more socket; false when none is left.
    func take() -> Bool {
        var current = open.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = open.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release() { open.subtract(1, ordering: .relaxed) }

    /// Counts one refusal; returns how many there have been, to log the first and then every so often.
    func refuse() -> Int { refused.add(1, ordering: .relaxed).newValue }
}

/// First in a listener's pipeline: admits accepted sockets while the budget lasts and closes the
/// rest straight away; logs accept errors (EMFILE, ENFILE, ECONNABORTED…) instead of letting them
/// end the listener. I/O errors go on to NIO's accept back-off, which pauses accepting for a moment
/// and swallows them; anything else stops here, because an error reaching the end of the pipeline
/// would finish the stream of connections and with it the listener.
final class ListenerGuard: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let budget: SocketBudget
    private let logger: Logger
    private var lastErrorLog: NIODeadline = .distantPast

    init(budget: SocketBudget, logger: Logger) {
        self.budget = budget
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        guard budget.take() else {
            child.close(promise: nil)
            let n = budget.refuse()
            if n == 1 || n % 1_000 == 0 {
                logger.warning(
                    "connection closed: the broker holds as many sockets as the open-file limit allows",
                    metadata: ["sockets": "\(budget.limit)", "refused": "\(n)"])
            }
            return
        }
        let budget = self.budget
        child.closeFuture.whenComplete { _ in budget.release() }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let now = NIODeadline.now()
        if now - lastErrorLog > .seconds(10) {
            lastErrorLog = now
            logger.error(
                "MQTT listener: accepting a connection failed; listening on",
                metadata: ["error": "\(error)", "sockets": "\(budget.count)"])
        }
        if error is IOError { context.fireErrorCaught(error) }
    }
}
