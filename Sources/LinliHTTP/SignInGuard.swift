import Crypto
import Foundation
import Logging
import Metrics
import Synchronization

/// Slows down, and for one client locks, repeated failed sign-ins — without letting anyone lock
/// an account's owner out (OWASP ASVS 2.2.1, NIST SP 800-63B 5.2.2).
///
/// Two kinds of key. An `attempt` key is one account tried from one place: an address, or a
/// browser that has signed in to that account before (its device cookie). From its third failure
/// it waits 2^(n-3) seconds before the next try; the `lockAfter`th locks it for `lockDuration`. A
/// success clears it. A `spread` key is what guessing spreads over: one account from everywhere,
/// or one address across accounts. It is only ever slowed (from `spreadAfter` failures, doubling
/// up to `spreadLimit`), never locked, and a browser known to the account skips it: ten wrong
/// passwords from somewhere else, or from behind the same NAT, cost the owner nothing. Failures
/// older than `window` are forgotten.
public actor LoginThrottle {
    public enum Key: Hashable, Sendable, CustomStringConvertible {
        /// One account from one address.
        case attempt(String)
        /// One account from one browser it knows (counted as an attempt key).
        case browser(String)
        case spread(String)
        public var description: String {
            switch self {
            case let .attempt(key): "attempt " + key
            case let .browser(key): "browser " + key
            case let .spread(key): "spread " + key
            }
        }
    }

    package struct Entry {
        package var failures: Int
        package var notBefore: ContinuousClock.Instant
        package var last: ContinuousClock.Instant
    }
    private var entries: [Key: Entry] = [:]
    package let lockAfter: Int
    package let lockDuration: Duration
    package let spreadAfter: Int
    package let spreadLimit: Duration
    package let window: Duration
    package let logger: Logger

    public init(
        lockAfter: Int = 10, lockDuration: Duration = .seconds(15 * 60), spreadAfter: Int = 20,
        spreadLimit: Duration = .seconds(60), window: Duration = .seconds(15 * 60), logger: Logger
    ) {
        self.lockAfter = lockAfter
        self.lockDuration = lockDuration
        self.spreadAfter = spreadAfter
        self.spreadLimit = spreadLimit
        self.window = window
        self.logger = logger
    }

    /// Places each account signed in from (`via account from address`), and when last.
    private var knownPlaces: [String: ContinuousClock.Instant] = [:]
    /// How long a place stays known after its last successful sign-in.
    package let knownFor: Duration = .seconds(30 * 86_400)

    /// The keys of one sign-in: `via` names the door (web, mqtt), so that failures at one do not
    /// count at the other. A client known to the account — a browser with a device cookie the
    /// account gave (`knownBrowser`), or an address it signed in from before — has its own key
    /// alone: what others spread over the account does not hold it back.
    public func keys(via: String, account: String, remote: String?, knownBrowser: String? = nil) -> [Key] {
        if let knownBrowser { return [.browser("\(via) \(account) in \(knownBrowser)")] }
        let place = remote ?? "-"
        let pair = "\(via) \(account) from \(place)"
        if let last = knownPlaces[pair], ContinuousClock.now - last < knownFor { return [.attempt(pair)] }
        return [.attempt(pair), .spread("\(via) account \(account)"), .spread("\(via) address \(place)")]
    }

    /// Seconds to wait before another attempt is allowed for any of `keys`, or nil.
    public func retryAfter(_ keys: [Key]) -> Int? {
        let now = ContinuousClock.now
        let waits = keys.compactMap { entries[$0] }.filter { $0.notBefore > now }.map { now.duration(to: $0.notBefore) }
        guard let longest = waits.max() else { return nil }
        return max(1, Int(longest.components.seconds) + 1)
    }

    public func failed(_ keys: [Key]) {
        let now = ContinuousClock.now
        if entries.count > 100_000 {
            entries = entries.filter { $0.value.notBefore > now || now - $0.value.last < window }
        }
        for key in keys {
            var entry = entries[key] ?? Entry(failures: 0, notBefore: now, last: now)
            if now - entry.last > window, entry.notBefore <= now { entry.failures = 0 }
            entry.failures += 1
            entry.last = now
            switch key {
            case .attempt, .browser:
                if entry.failures >= lockAfter {
                    entry.notBefore = now + lockDuration
                    logger.warning(
                        "sign-in locked for one client after repeated failures",
                        metadata: ["key": "\(key)", "failures": "\(entry.failures)"])
                } else if entry.failures >= 3 {
                    entry.notBefore = now + .seconds(1 << min(entry.failures - 3, 10))
                }
            case .spread:
                if entry.failures >= spreadAfter {
                    let doubling = Duration.seconds(1 << min(entry.failures - spreadAfter, 20))
                    entry.notBefore = now + min(doubling, spreadLimit)
                    if entry.failures == spreadAfter {
                        logger.warning(
                            "sign-ins slowed: failures spread over many tries",
                            metadata: ["key": "\(key)", "failures": "\(entry.failures)"])
                    }
                }
            }
            entries[key] = entry
        }
    }

    /// A success clears the client's own key, and makes its place known to the account; what is
    /// spread stays (the guessing goes on elsewhere).
    public func succeeded(_ keys: [Key]) {
        let now = ContinuousClock.now
        if knownPlaces.count > 100_000 { knownPlaces = knownPlaces.filter { now - $0.value < knownFor } }
        for key in keys {
            switch key {
            case let .attempt(pair):
                entries.removeValue(forKey: key)
                knownPlaces[pair] = now
            case .browser: entries.removeValue(forKey: key)
            case .spread: break
            }
        }
    }
}

/// Checks passwords against their bcrypt hashes for sign-ins, cheaply when repeated and never
/// more at once than the machine has cores.
///
/// bcrypt of cost 10 costs tens of milliseconds of CPU by design. An integration's client signs in
/// again at every reconnect, and after a restart all of them at once; anyone who can reach a door
/// can send wrong passwords as fast as they like. So: after a successful check the process keeps a
/// keyed digest (HMAC-SHA256 under a secret of its own, made at start) of the account, its stored
/// hash and the password — never the password — and a later sign-in with the same password is
/// checked against it in microseconds. The stored hash is in the digest, so a changed password
/// (a new hash, on whichever node changed it) no longer matches. Checks that do need bcrypt take
/// one of `concurrent` places; up to `waiting` more wait their turn (a short while: a few rounds of
/// bcrypt), and any beyond are refused at once with `Busy` (the door answers "server unavailable").
/// Sign-ins of one account with one password that arrive while its check is under way (the
/// cameras of one NVR reconnecting after a restart) wait for that check's answer, not for a place
/// of their own.
public final class PasswordChecks: Sendable {
    public struct Busy: Error, CustomStringConvertible {
        public var description: String { "too many password checks under way" }
    }

    /// One core fewer than the machine has (one at least): a flood of wrong passwords leaves a core
    /// for the devices and everything else.
    public static let shared = PasswordChecks(concurrent: ProcessInfo.processInfo.activeProcessorCount - 1)

    private struct Waiting {
        var inside = 0
        var queue: [CheckedContinuation<Bool, Never>] = []
    }

    let concurrent: Int
    let waiting: Int
    private let secret = SymmetricKey(size: .bits256)
    private let verified = Mutex<[String: Data]>([:])
    private let places = Mutex(Waiting())
    /// Checks under way by digest, with the sign-ins waiting for their answer.
    private let underWay = Mutex<[Data: [CheckedContinuation<Result<Bool, any Error>?, Never>]]>([:])
    /// Sign-ins waiting on one check at most; more are refused as `Busy`.
    static let followersPerCheck = 1_000
    private let rememberedCounter = Counter(
        label: "linli_password_checks_total", dimensions: [("result", "remembered")])
    private let hashedCounter = Counter(label: "linli_password_checks_total", dimensions: [("result", "hashed")])
    private let busyCounter = Counter(label: "linli_password_checks_total", dimensions: [("result", "busy")])
    private let counts = Mutex((remembered: 0, hashed: 0, busy: 0))
    /// Checks answered from memory, with bcrypt, and refused, since the start.
    public var remembered: Int { counts.withLock { $0.remembered } }
    public var hashed: Int { counts.withLock { $0.hashed } }
    public var busy: Int { counts.withLock { $0.busy } }

    public init(concurrent: Int, waiting: Int? = nil) {
        self.concurrent = max(1, concurrent)
        self.waiting = waiting ?? 8 * max(1, concurrent)
    }

    /// Whether `password` is the one `hash` was made from. `account` names whose it is (a door and
    /// a username), for remembering a success; nil for a check that must not be remembered (the
    /// decoy of an unknown username).
    public func verify(_ password: String, hash: String, account: String?) async throws -> Bool {
        let digest = account.map {
            Data(HMAC<SHA256>.authenticationCode(for: Data("\($0)\0\(hash)\0\(password)".utf8), using: secret))
        }
        if let account, let digest, let known = verified.withLock({ $0[account] }), Self.same(known, digest) {
            rememberedCounter.increment()
            counts.withLock { $0.remembered += 1 }
            return true
        }
        guard let digest, account != nil else { return try await hashed(password, hash: hash, remember: nil) }
        // The same account and password being checked already: its answer is this one's too.
        let turn = await withCheckedContinuation { (wait: CheckedContinuation<Result<Bool, any Error>?, Never>) in
            let now: Result<Bool, any Error>?? = underWay.withLock { checks in
                guard var followers = checks[digest] else {
                    checks[digest] = []
                    return .some(nil)  // this one checks
                }
                guard followers.count < Self.followersPerCheck else { return .some(.failure(Busy())) }
                followers.append(wait)
                checks[digest] = followers
                return nil  // answered when the check under way ends
            }
            if let now { wait.resume(returning: now) }
        }
        if let turn {
            if case .failure = turn {
                busyCounter.increment()
                counts.withLock { $0.busy += 1 }
            }
            return try turn.get()
        }
        let outcome: Result<Bool, any Error>
        do { outcome = .success(try await hashed(password, hash: hash, remember: (account!, digest))) } catch {
            outcome = .failure(error)
        }
        let followers = underWay.withLock { $0.removeValue(forKey: digest) ?? [] }
        if !followers.isEmpty, case .success = outcome {
            rememberedCounter.increment(by: followers.count)
            counts.withLock { $0.remembered += followers.count }
        }
        for follower in followers { follower.resume(returning: outcome) }
        return try outcome.get()
    }

    /// A check with bcrypt, in one of the places; remembered when it succeeds and `remember` says
    /// under which account.
    private func hashed(_ password: String, hash: String, remember: (account: String, digest: Data)?) async throws
        -> Bool
    {
        guard await enter() else {
            busyCounter.increment()
            counts.withLock { $0.busy += 1 }
            throw Busy()
        }
        defer { leave() }
        hashedCounter.increment()
        counts.withLock { $0.hashed += 1 }
        let ok = try await Passwords.verify(password, hash: hash)
        if ok, let (account, digest) = remember {
            verified.withLock {
                if $0.count >= 10_000 { $0.removeAll(keepingCapacity: true) }
                $0[account] = digest
            }
        }
        return ok
    }

    /// Forgets what was remembered for an account (its password was changed or it was disabled).
    public func forget(_ account: String) {
        _ = verified.withLock { $0.removeValue(forKey: account) }
    }

    private func enter() async -> Bool {
        await withCheckedContinuation { (turn: CheckedContinuation<Bool, Never>) in
            let answer: Bool? = places.withLock { state in
                if state.inside < concurrent {
                    state.inside += 1
                    return true
                }
                if state.queue.count >= waiting { return false }
                state.queue.append(turn)
                return nil
            }
            if let answer { turn.resume(returning: answer) }
        }
    }

    private func leave() {
        // The place passes to the first waiting, if any; it stays taken.
        let next = places.withLock { state -> CheckedContinuation<Bool, Never>? in
            if state.queue.isEmpty {
                state.inside -= 1
                return nil
            }
            return state.queue.removeFirst()
        }
        next?.resume(returning: true)
    }

    private static func same(_ a: Data, _ b: Data) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
