import NIOCore
import Synchronization

/// Lets at most `limit` callers through at once; the others wait, in the order they came, and
/// go on as places free up. A waiting caller is suspended with a shallow stack, which is the
/// point: see `MQTTBrokerConfiguration.concurrentSignIns`.
final class TurnGate: Sendable {
    private struct State {
        var free: Int
        var waiting = CircularBuffer<CheckedContinuation<Void, Never>>()
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
                if s.free > 0 { s.free -= 1; return true }
                s.waiting.append(turn)
                return false
            }
            if now { turn.resume() }
        }
    }

    /// Frees the place: the longest waiting caller takes it, if any.
    func leave() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let next = s.waiting.popFirst() { return next }
            s.free += 1
            return nil
        }
        next?.resume()
    }

    /// Callers waiting for a place, for tests.
    var waiting: Int { state.withLock { $0.waiting.count } }
}
