import Foundation
import LinliCore

/// The event log as an `AsyncSequence`, for in-process consumers (rules, notifications, webhooks).
///
/// A durable consumer starts after its saved checkpoint and calls `Store.acknowledge` once it has
/// handled an event: after a restart it resumes there, so delivery is at least once. Readers wake
/// when a write commits in this process and poll every `pollInterval` for other nodes' writes.
public struct EventSubscription: AsyncSequence, Sendable {
    public typealias Element = DomainEvent

    public enum Start: Sendable {
        /// After the consumer's saved checkpoint (the log's beginning for a new consumer).
        case checkpoint(consumer: String)
        /// After a given sequence number, without a checkpoint.
        case after(Int64)
    }

    let store: Store
    let start: Start
    let scope: Scope
    let batchSize: Int
    let pollInterval: Duration

    public func makeAsyncIterator() -> Iterator {
        Iterator(subscription: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let subscription: EventSubscription
        var cursor: Int64? = nil
        var buffer: ArraySlice<DomainEvent> = []

        public mutating func next() async throws -> DomainEvent? {
            let s = subscription
            if cursor == nil {
                switch s.start {
                case let .checkpoint(consumer):
                    cursor = try await s.store.read { db in try await EventLog.checkpoint(db, consumer: consumer) }
                case let .after(seq): cursor = seq
                }
            }
            while buffer.isEmpty {
                if Task.isCancelled { return nil }
                let from = cursor ?? 0
                let seen = await s.store.signal.generation
                let batch = try await s.store.read { db in
                    try await EventLog.read(db, after: from, limit: s.batchSize, scope: s.scope)
                }
                if batch.isEmpty {
                    await s.store.signal.wait(since: seen, timeout: s.pollInterval)
                } else {
                    buffer = batch[...]
                }
            }
            let event = buffer.removeFirst()
            cursor = event.seq
            return event
        }
    }
}

extension Store {
    public func events(
        from start: EventSubscription.Start, scope: Scope = .everything, batchSize: Int = 200,
        pollInterval: Duration = .seconds(1)
    ) -> EventSubscription {
        EventSubscription(store: self, start: start, scope: scope, batchSize: batchSize, pollInterval: pollInterval)
    }

    /// Records that `consumer` has handled every event up to and including `seq`.
    public func acknowledge(consumer: String, through seq: Int64) async throws {
        try await database.write { db in try await EventLog.saveCheckpoint(db, consumer: consumer, seq: seq) }
    }
}
