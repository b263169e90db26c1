import Synchronization

/// Small writes that many callers make at once, committed together. Each caller waits for the
/// transaction that holds its item, so what returns is durable, as with a transaction of its own;
/// but while one transaction commits, the items that arrive queue for the next, and a burst of a
/// thousand callers costs a few transactions instead of a thousand. Items are written in the order
/// they came. This is how devices' online and offline changes are stored: when a community's
/// network comes back, every device signs in within seconds.
public final class CommitQueue<Item: Sendable>: Sendable {
    /// Writes a batch in one transaction.
    public typealias Writer = @Sendable ([Item]) async throws -> Void

    private struct Waiting {
        var item: Item
        var done: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var waiting: [Waiting] = []
        var writing = false
    }
    private let state = Mutex(State())
    let maxBatch: Int

    public init(maxBatch: Int = 512) { self.maxBatch = max(1, maxBatch) }

    /// Returns once the item is committed. The writer of the caller that finds the queue idle
    /// writes everything queued until it is empty again (all callers pass the same writer).
    public func commit(_ item: Item, writer: @escaping Writer) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            let starts = state.withLock { state in
                state.waiting.append(Waiting(item: item, done: done))
                defer { state.writing = true }
                return !state.writing
            }
            if starts { Task { await self.drain(writer) } }
        }
    }

    private func drain(_ writer: Writer) async {
        while let batch = next() {
            do {
                try await writer(batch.map(\.item))
                for waiting in batch { waiting.done.resume() }
            } catch {
                guard batch.count > 1 else {
                    batch[0].done.resume(throwing: error)
                    continue
                }
                // One item that cannot be written must not fail the others with it.
                for waiting in batch {
                    do {
                        try await writer([waiting.item])
                        waiting.done.resume()
                    } catch {
                        waiting.done.resume(throwing: error)
                    }
                }
            }
        }
    }

    private func next() -> [Waiting]? {
        state.withLock { state in
            guard !state.waiting.isEmpty else {
                state.writing = false
                return nil
            }
            guard state.waiting.count > maxBatch else {
                defer { state.waiting = [] }
                return state.waiting
            }
            defer { state.waiting.removeFirst(maxBatch) }
            return Array(state.waiting.prefix(maxBatch))
        }
    }
}

/// The outcome of one group commit, shared by every item in it: those waiting for many items wait
/// once per commit (by task or by callback), and learn together whether it was stored.
public final class CommitOutcome: Sendable {
    public init() {}

    private enum Waiter {
        case task(CheckedContinuation<Void, any Error>)
        case callback(@Sendable ((any Error)?) -> Void)
    }
    private enum Outcome {
        case pending([Waiter])
        case stored
        case failed(any Error)
    }
    private let outcome = Mutex(Outcome.pending([]))

    public func wait() async throws {
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Void, any Error>) in
            if let now = add(.task(waiter)) { waiter.resume(with: now) }
        }
    }

    public func whenDone(_ done: @escaping @Sendable ((any Error)?) -> Void) {
        guard let now = add(.callback(done)) else { return }
        switch now {
        case .success: done(nil)
        case let .failure(error): done(error)
        }
    }

    /// Adds a waiter while the batch is pending; otherwise returns its outcome.
    private func add(_ waiter: Waiter) -> Result<Void, any Error>? {
        outcome.withLock { o -> Result<Void, any Error>? in
            switch o {
            case var .pending(waiters):
                o = .stored  // moves the array out, so appending does not copy it
                waiters.append(waiter)
                o = .pending(waiters)
                return nil
            case .stored: return .success(())
            case let .failed(error): return .failure(error)
            }
        }
    }

    public func complete(_ result: Result<Void, any Error>) {
        let waiters = outcome.withLock { o -> [Waiter] in
            guard case let .pending(waiters) = o else { return [] }
            switch result {
            case .success: o = .stored
            case let .failure(error): o = .failed(error)
            }
            return waiters
        }
        let error: (any Error)? = if case let .failure(e) = result { e } else { nil }
        for waiter in waiters {
            switch waiter {
            case let .task(continuation): continuation.resume(with: result)
            case let .callback(done): done(error)
            }
        }
    }
}
