import Foundation
import SQLKit
import Synchronization
import Testing

@testable import LinliStorage

@Suite("Commits shared by callers, and column names")
struct CommitQueueTests {
    /// What a writer was given, batch by batch.
    final class Log: Sendable {
        let batches = Mutex<[[Int]]>([])
        let failed = Mutex<[Int]>([])
    }

    @Test func callersArrivingTogetherShareCommitsInTheOrderTheyCame() async throws {
        let queue = CommitQueue<Int>(maxBatch: 64)
        let log = Log()
        let writer: CommitQueue<Int>.Writer = { batch in
            log.batches.withLock { $0.append(batch) }
            try await Task.sleep(for: .milliseconds(5))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<300 { group.addTask { try await queue.commit(i, writer: writer) } }
            try await group.waitForAll()
        }
        let batches = log.batches.withLock { $0 }
        #expect(Set(batches.joined()) == Set(0..<300) && batches.joined().count == 300, "each item written once")
        #expect(batches.count < 300, "items that came while a commit ran share the next")
        #expect(batches.allSatisfy { $0.count <= 64 })
        // A caller that comes after the queue has gone idle starts it again.
        try await queue.commit(300, writer: writer)
        #expect(log.batches.withLock { $0.last } == [300])
    }

    @Test func anItemThatCannotBeWrittenFailsAloneNotItsBatch() async throws {
        struct Refused: Error {}
        let queue = CommitQueue<Int>()
        let log = Log()
        let writer: CommitQueue<Int>.Writer = { batch in
            try await Task.sleep(for: .milliseconds(5))
            if batch.contains(13) { throw Refused() }
            log.batches.withLock { $0.append(batch) }
        }
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask {
                    do { try await queue.commit(i, writer: writer) } catch { log.failed.withLock { $0.append(i) } }
                }
            }
        }
        #expect(log.failed.withLock { $0 } == [13])
        #expect(Set(log.batches.withLock { $0 }.joined()) == Set(0..<40).subtracting([13]))
    }

    @Test func fieldNamesBecomeTheirColumns() {
        let cases = [
            "id": "id", "communityId": "community_id", "lastSeenAt": "last_seen_at", "tslJson": "tsl_json",
            "deviceID": "device_id", "lastURLSeen": "last_url_seen", "URL": "url", "pm25Level": "pm25_level",
            "already_snake": "already_snake", "": "",
        ]
        for (field, column) in cases {
            #expect(SQLRowDecoder.KeyDecodingStrategy.snakeCased(field) == column, "\(field)")
        }
    }
}
