import NIOCore
import Synchronization

/// Lets at most `limit` callers through at once; the others wait, in the order they came, and
/// go on as places free up. A waiting caller is suspended with a shallow stack, which is the
/// point: see `MQTTBrokerConfiguration.concurrentSignIns`.
final class TurnGate: Sendable {
    /// A caller suspended in `enter()`, or work handed over with `submit(_:)` that has no task yet.
    private enum Waiting {
        case caller(CheckedContinuation<Void, Never>)
        case work(@Sendable () async -> Void)
    }
    private struct State {
        var free: Int
        var waiting = CircularBuffer<Waiting>()
    }
    private let state: Mutex<State>

    init(limit: Int) { state = Mutex(State(free: limit)) }

    /// Returns once a place is free and taken. Pair with `leave()`.
    func enter() async {
        let entered = state.withLock { s -> Bool in
            guard s.free > 0 else { return false }
            s.free -= 1
            return true
        }
        if entered { return }
        await withCheckedContinuation { (turn: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.free > 0 {
                    s.free -= 1
                    return true
                }
                s.waiting.append(.caller(turn))
                return false
            }
            if now { turn.resume() }
        }
    }

    /// Runs `work` in a task of its own once a place is free, and frees the place after it. Until
    /// then only the closure waits, not a task: when every device drops at once, tens of
    /// thousands of sign-outs wait here, and a task each was most of that storm's memory.
    func submit(_ work: @escaping @Sendable () async -> Void) {
        let now = state.withLock { s -> Bool in
            guard s.free > 0 else {
                s.waiting.append(.work(work))
                return false
            }
            s.free -= 1
            return true
        }
        if now { run(work) }
    }

    private func run(_ work: @escaping @Sendable () async -> Void) {
        Task {
            await work()
            self.leave()
        }
    }

    /// Frees the place: the longest waiting caller or work takes it, if any.
    func leave() {
        let next = state.withLock { s -> Waiting? in
            if let next = s.waiting.popFirst() { return next }
            s.free += 1
            return nil
        }
        switch next {
        case let .caller(turn)?: turn.resume()
        case let .work(work)?: run(work)
        case nil: break
        }
    }

    /// Callers and work waiting for a place, for tests.
    var waiting: Int { state.withLock { $0.waiting.count } }
}
