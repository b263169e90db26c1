import NIOCore
import Synchronization

/// What the broker waits for before it routes a received message and, for QoS 1 and 2,
/// acknowledges it: nothing, or work such as making it durable. A connection goes on reading
/// while that work runs; acknowledgements still leave in the order the messages came
/// (MQTT-4.6.0-2, -3).
public struct PublishCompletion: Sendable {
    enum Work: Sendable {
        case none
        case task(@Sendable () async throws -> Void)
        case notify(@Sendable (_ done: @escaping @Sendable ((any Error)?) -> Void) -> Void)
    }

    let work: Work
    /// Written to the publisher just before the acknowledgement, once the work is done: the
    /// answer a device expects to its post, without a subscription and without a turn on the
    /// broker's shared state.
    let reply: Publish?

    /// Nothing left to do: route and acknowledge at once (still after earlier messages).
    public static let done = PublishCompletion(work: .none, reply: nil)

    /// Route and acknowledge once `work` returns; if it throws, the connection closes without
    /// acknowledging this message or any later one.
    public static func after(_ work: @escaping @Sendable () async throws -> Void) -> PublishCompletion {
        PublishCompletion(work: .task(work), reply: nil)
    }

    /// Route and acknowledge (after sending `reply` to the publisher) once the callback that
    /// `register` is handed is called — from any thread, once — with nil; with an error the
    /// connection closes without acknowledging this message or any later one. For work that
    /// finishes elsewhere and says so, such as a group commit: nothing waits in a task meanwhile.
    public static func whenNotified(reply: Publish? = nil,
                                    _ register: @escaping @Sendable (_ done: @escaping @Sendable ((any Error)?) -> Void) -> Void) -> PublishCompletion {
        PublishCompletion(work: .notify(register), reply: reply)
    }

    /// Done at once, with a reply for the publisher first.
    public static func replying(_ reply: Publish) -> PublishCompletion {
        PublishCompletion(work: .none, reply: reply)
    }
}

/// Completions of publishes, posted from other threads (a group commit that finished, a task
/// that returned) and handled on one event loop in one go: a commit of 500 posts wakes each loop
/// once, not 500 times, and each connection then flushes once for all its acknowledgements.
final class LoopMailbox: Sendable {
    struct Letter: Sendable {
        let connection: NIOLoopBound<MQTTConnection>
        let sequence: UInt64
        let error: (any Error)?
    }

    private struct Box {
        var letters: [Letter] = []
        var spare: [Letter] = []
        var scheduled = false
    }

    let loop: any EventLoop
    private let box = Mutex(Box())

    init(loop: any EventLoop) { self.loop = loop }

    func post(_ letter: Letter) {
        let schedule = box.withLock { b -> Bool in
            b.letters.append(letter)
            if b.scheduled { return false }
            b.scheduled = true
            return true
        }
        if schedule { loop.execute { self.deliver() } }
    }

    /// On the loop: hands every letter to its connection, then flushes each connection once.
    private func deliver() {
        var letters = box.withLock { b -> [Letter] in
            b.scheduled = false
            var taken = b.spare
            swap(&taken, &b.letters)
            return taken
        }
        var touched: [MQTTConnection] = []
        for letter in letters {
            let connection = letter.connection.value
            connection.completed(letter.sequence, error: letter.error)
            if !connection.flushQueued {
                connection.flushQueued = true
                touched.append(connection)
            }
        }
        for connection in touched {
            connection.flushQueued = false
            connection.flushOutput()
        }
        // Keep the array's storage for the next round instead of allocating it again.
        letters.removeAll(keepingCapacity: true)
        box.withLock { if $0.spare.capacity < letters.capacity { $0.spare = letters } }
    }
}

/// One mailbox per event loop, made on first use.
final class LoopMailboxes: Sendable {
    private let byLoop = Mutex<[ObjectIdentifier: LoopMailbox]>([:])

    func mailbox(for loop: any EventLoop) -> LoopMailbox {
        byLoop.withLock { all in
            let key = ObjectIdentifier(loop)
            if let existing = all[key] { return existing }
            let made = LoopMailbox(loop: loop)
            all[key] = made
            return made
        }
    }
}
