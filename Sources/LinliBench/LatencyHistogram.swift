/// Latencies in nanoseconds, counted in buckets whose width grows with the value: every power of two
/// is split into 32 equal steps, so a reported percentile is never more than 1/32 (about 3 %) above
/// a value that was really recorded. Fixed size (1,920 counters), no allocation when recording, and
/// two histograms merge by adding counts, so each event loop keeps its own and the run sums them.
public struct LatencyHistogram: Sendable, Equatable {
    static let stepBits = 5
    static let steps = 1 << stepBits
    /// Values below 32 get a bucket each; then 32 buckets for each power of two from 2^5 to 2^63.
    static let bucketCount = (64 - stepBits + 1) * steps

    private var counts: [UInt64]
    public private(set) var count: UInt64 = 0
    public private(set) var min: UInt64 = .max
    public private(set) var max: UInt64 = 0
    public private(set) var sum: UInt64 = 0

    public init() { counts = Array(repeating: 0, count: Self.bucketCount) }

    static func bucket(of value: UInt64) -> Int {
        if value < UInt64(steps) { return Int(value) }
        let power = 63 - value.leadingZeroBitCount  // at least stepBits
        let step = Int((value >> UInt64(power - stepBits)) & UInt64(steps - 1))
        return (power - stepBits + 1) * steps + step
    }

    /// The largest value that falls in `bucket` (HdrHistogram's "highest equivalent value").
    static func highestValue(inBucket bucket: Int) -> UInt64 {
        if bucket < steps { return UInt64(bucket) }
        let power = bucket / steps + stepBits - 1
        let step = UInt64(bucket % steps)
        let width = UInt64(1) << UInt64(power - stepBits)
        let lowest = (UInt64(steps) + step) << UInt64(power - stepBits)
        return lowest &+ (width - 1)
    }

    public mutating func record(_ nanoseconds: UInt64) {
        counts[Self.bucket(of: nanoseconds)] += 1
        count += 1
        sum &+= nanoseconds
        if nanoseconds < min { min = nanoseconds }
        if nanoseconds > max { max = nanoseconds }
    }

    public mutating func merge(_ other: LatencyHistogram) {
        guard other.count > 0 else { return }
        for i in counts.indices { counts[i] += other.counts[i] }
        count += other.count
        sum &+= other.sum
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
    }

    /// The value at or below which `percent` % of the recorded values lie; nil when empty.
    /// Reported as the top of its bucket, but never above the largest value recorded.
    public func percentile(_ percent: Double) -> UInt64? {
        guard count > 0 else { return nil }
        let wanted = Swift.max(1, UInt64((percent / 100 * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for (bucket, n) in counts.enumerated() where n > 0 {
            seen += n
            if seen >= wanted { return Swift.min(Swift.max(Self.highestValue(inBucket: bucket), min), max) }
        }
        return max
    }

    public var mean: Double? { count == 0 ? nil : Double(sum) / Double(count) }
}
