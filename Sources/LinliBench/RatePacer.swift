/// How many messages are due at a steady rate, asked on every tick of a timer. Credit grows with the
/// time elapsed and is spent in whole messages; the fraction carries over, so over a run the count
/// matches the rate exactly whatever the tick length. Credit is capped (`maxBacklog` seconds' worth):
/// when the event loop or the server falls behind, the generator does not later fire a burst to
/// "catch up" — messages it could not send are simply not sent, and the run reports that.
public struct RatePacer: Sendable, Equatable {
    public let perSecond: Double
    public let maxCredit: Double
    private var credit: Double = 0
    private var lastNanos: UInt64?

    public init(perSecond: Double, maxBacklog seconds: Double = 0.1) {
        self.perSecond = perSecond
        maxCredit = Swift.max(1, perSecond * seconds)
    }

    /// Whole messages due at `now` (monotonic nanoseconds). The first call only starts the clock.
    public mutating func due(atNanos now: UInt64) -> Int {
        guard let last = lastNanos else {
            lastNanos = now
            return 0
        }
        lastNanos = now
        guard now > last else { return 0 }
        credit = Swift.min(credit + Double(now - last) / 1e9 * perSecond, maxCredit)
        let whole = credit.rounded(.down)
        credit -= whole
        return Int(whole)
    }
}

public enum RateSplit {
    /// Splits `total` into `parts` shares that differ by at most one, the larger ones first:
    /// devices over event loops, connections over generator processes.
    public static func shares(_ total: Int, parts: Int) -> [Int] {
        precondition(parts > 0 && total >= 0)
        let base = total / parts
        let extra = total % parts
        return (0..<parts).map { base + ($0 < extra ? 1 : 0) }
    }

    /// The part of `rate` one event loop paces: proportional to the devices connected on it, so
    /// every device posts at the same rate whichever loop it landed on.
    public static func loopRate(_ rate: Double, devicesOnLoop: Int, devicesConnected: Int) -> Double {
        devicesConnected == 0 ? 0 : rate * Double(devicesOnLoop) / Double(devicesConnected)
    }
}
