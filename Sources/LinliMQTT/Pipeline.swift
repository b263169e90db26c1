import Synchronization

/// What the broker waits for before it routes a received message and, for QoS 1 and 2,
/// acknowledges it: nothing, or work such as making it durable. A connection goes on reading
/// while that work runs; acknowledgements still leave in the order the messages came
/// (MQTT-4.6.0-2, -3).
public struct PublishCompletion: Sendable {
    let work: (@Sendable () async throws -> Void)?

    /// Nothing left to do: route and acknowledge at once (still after earlier messages).
    public static let done = PublishCompletion(work: nil)

    /// Route and acknowledge once `work` returns; if it throws, the connection closes without
    /// acknowledging this message or any later one.
    public static func after(_ work: @escaping @Sendable () async throws -> Void) -> PublishCompletion {
        PublishCompletion(work: work)
    }
}

/// A connection's received messages between the reader, which calls the publish hook in order and
/// pushes, and the completer, which awaits each completion in the same order, then routes and
/// acknowledges. At most `window` messages are in between; the reader waits when it is full, which
/// leaves the rest of the client's bytes in the socket (TCP back-pressure).
final class PublishPipeline: Sendable {
    struct Entry: Sendable {
        var message: Publish
        var completion: PublishCompletion
        /// False for a QoS 2 duplicate: acknowledged again, not routed again.
        var route: Bool
    }

    private struct State {
        var entries: [Entry] = []
        var head = 0
        var finished = false
        var failed = false
        var consumer: CheckedContinuation<Entry?, Never>?
        var producer: CheckedContinuation<Bool, Never>?

        var count: Int { entries.count - head }

        mutating func popFirst() -> Entry? {
            guard head < entries.count else { return nil }
            let entry = entries[head]
            head += 1
            if head > 64, head * 2 > entries.count {
                entries.removeFirst(head)
                head = 0
            }
            return entry
        }
    }

    let window: Int
    private let state = Mutex(State())

    init(window: Int) { self.window = max(1, window) }

    /// Adds a message; waits while `window` are already in between. False when the completer has
    /// given up (a completion failed): the connection is closing.
    func push(_ entry: Entry) async -> Bool {
        enum Step { case handed(CheckedContinuation<Entry?, Never>), queued, full, refused }
        let step = state.withLock { s -> Step in
            if s.failed || s.finished { return .refused }
            if let consumer = s.consumer {
                s.consumer = nil
                return .handed(consumer)
            }
            s.entries.append(entry)
            return s.count >= window ? .full : .queued
        }
        switch step {
        case let .handed(consumer):
            consumer.resume(returning: entry)
            return true
        case .queued:
            return true
        case .refused:
            return false
        case .full:
            // Wait for room (the entry is already queued). The completer wakes us when it takes one.
            return await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let resumeNow: Bool? = state.withLock { s in
                    if s.failed { return false }
                    if s.count < window { return true }
                    s.producer = c
                    return nil
                }
                if let resumeNow { c.resume(returning: resumeNow) }
            }
        }
    }

    /// The next message in order, waiting for one; nil once finished and empty.
    func next() async -> Entry? {
        enum Step { case entry(Entry, CheckedContinuation<Bool, Never>?), end, wait }
        let step = state.withLock { s -> Step in
            if let entry = s.popFirst() {
                let producer = s.count < window ? s.producer : nil
                if producer != nil { s.producer = nil }
                return .entry(entry, producer)
            }
            return s.finished ? .end : .wait
        }
        switch step {
        case let .entry(entry, producer):
            producer?.resume(returning: true)
            return entry
        case .end:
            return nil
        case .wait:
            return await withCheckedContinuation { (c: CheckedContinuation<Entry?, Never>) in
                enum Now { case entry(Entry, CheckedContinuation<Bool, Never>?), end, parked }
                let now = state.withLock { s -> Now in
                    if let entry = s.popFirst() {
                        let producer = s.producer
                        s.producer = nil
                        return .entry(entry, producer)
                    }
                    if s.finished { return .end }
                    s.consumer = c
                    return .parked
                }
                switch now {
                case let .entry(entry, producer):
                    producer?.resume(returning: true)
                    c.resume(returning: entry)
                case .end:
                    c.resume(returning: nil)
                case .parked:
                    break
                }
            }
        }
    }

    /// No more messages will come: the completer finishes what is queued, then ends.
    func finish() {
        let consumer = state.withLock { s -> CheckedContinuation<Entry?, Never>? in
            s.finished = true
            defer { s.consumer = nil }
            return s.consumer
        }
        consumer?.resume(returning: nil)
    }

    /// The completer gave up: a waiting reader is told so, and later pushes are refused.
    func fail() {
        let producer = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            s.failed = true
            s.entries.removeAll()
            s.head = 0
            defer { s.producer = nil }
            return s.producer
        }
        producer?.resume(returning: false)
    }
}
