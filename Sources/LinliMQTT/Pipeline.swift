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
        case shared(any SharedCompletion)
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
    public static func whenNotified(
        reply: Publish? = nil,
        _ register: @escaping @Sendable (_ done: @escaping @Sendable ((any Error)?) -> Void) -> Void
    ) -> PublishCompletion {
        PublishCompletion(work: .notify(register), reply: reply)
    }

    /// Route and acknowledge (after sending `reply`) once `work` says it is done: like
    /// `whenNotified`, for work that finishes many messages at once, such as a group commit.
    /// The broker asks to be told once per event loop and piece of work, not once per message.
    public static func whenDone(of work: some SharedCompletion, reply: Publish? = nil) -> PublishCompletion {
        PublishCompletion(work: .shared(work), reply: reply)
    }

    /// Done at once, with a reply for the publisher first.
    public static func replying(_ reply: Publish) -> PublishCompletion {
        PublishCompletion(work: .none, reply: reply)
    }
}

/// Work that finishes for many messages together and says so once: a group commit, for one.
public protocol SharedCompletion: Sendable {
    /// The same for every message this work finishes, and for no other work while it is pending.
    var id: ObjectIdentifier { get }
    /// Calls `done` once, from any thread (at once when already done): nil when the work is done,
    /// else the error.
    func whenDone(_ done: @escaping @Sendable ((any Error)?) -> Void)
}

/// Completions of publishes, posted from other threads (a group commit that finished, a task
/// that returned) and handled on one event loop in one go: a commit of 500 posts wakes each loop
/// once, not 500 times, and each connection then flushes once for all its acknowledgements.
final class LoopMailbox: Sendable {
    enum Letter: Sendable {
        /// One message's work is done.
        case one(NIOLoopBound<MQTTConnection>, sequence: UInt64, error: (any Error)?)
        /// Shared work is done, for every message on this loop that waits for it.
        case shared(ObjectIdentifier, error: (any Error)?)
        /// A routed message is kept for the persistent sessions it went to.
        case stored(NIOLoopBound<MQTTConnection>, sequence: UInt64, error: (any Error)?)
    }

    private struct Box {
        var letters: [Letter] = []
        var spare: [Letter] = []
        var scheduled = false
    }

    /// The messages on this loop waiting for each piece of shared work, and the work itself (kept,
    /// so that its id stays its own until it is done). Touched only on the loop.
    private final class SharedWaits: @unchecked Sendable {
        var waiting: [ObjectIdentifier: (work: any SharedCompletion, messages: [(MQTTConnection, UInt64)])] = [:]
    }

    let loop: any EventLoop
    private let box = Mutex(Box())
    private let shared = SharedWaits()

    init(loop: any EventLoop) { self.loop = loop }

    /// On the loop: the message `sequence` of `connection` is done when `work` is. The first
    /// message of a piece of work asks it to say so; later ones only join the list.
    func wait(for work: some SharedCompletion, connection: MQTTConnection, sequence: UInt64) {
        loop.assertInEventLoop()
        let id = work.id
        if shared.waiting[id] != nil {
            shared.waiting[id]!.messages.append((connection, sequence))
            return
        }
        shared.waiting[id] = (work, [(connection, sequence)])
        work.whenDone { error in self.post(.shared(id, error: error)) }
    }

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
        func complete(_ connection: MQTTConnection, _ sequence: UInt64, _ error: (any Error)?) {
            connection.completed(sequence, error: error)
            if !connection.flushQueued {
                connection.flushQueued = true
                touched.append(connection)
            }
        }
        for letter in letters {
            switch letter {
            case let .one(connection, sequence, error):
                complete(connection.value, sequence, error)
            case let .stored(connection, sequence, error):
                let c = connection.value
                c.stored(sequence, error: error)
                if !c.flushQueued {
                    c.flushQueued = true
                    touched.append(c)
                }
            case let .shared(id, error):
                guard let (_, messages) = shared.waiting.removeValue(forKey: id) else { continue }
                for (connection, sequence) in messages { complete(connection, sequence, error) }
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
