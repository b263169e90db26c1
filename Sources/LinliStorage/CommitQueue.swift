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
