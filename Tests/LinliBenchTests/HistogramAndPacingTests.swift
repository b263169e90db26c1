import Testing

@testable import LinliBench

@Suite("Latency histogram")
struct LatencyHistogramTests {
    @Test func percentilesOfOneToTenThousandAreWithinTheBucketError() {
        var h = LatencyHistogram()
        for v in 1...10_000 { h.record(UInt64(v) * 1_000) }  // 1 µs … 10 ms
        #expect(h.count == 10_000)
        #expect(h.min == 1_000)
        #expect(h.max == 10_000_000)
        for (p, exact) in [(50.0, 5_000_000.0), (90, 9_000_000), (99, 9_900_000), (100, 10_000_000)] {
            let got = Double(h.percentile(p)!)
            // Reported at the top of its bucket: never below the true value, at most 1/32 above it.
            #expect(got >= exact && got <= exact * (1 + 1.0 / 32), "p\(p) = \(got), exact \(exact)")
        }
        #expect(h.mean! == 5_000_500)
    }

    @Test func smallValuesAreExactAndPercentilesNeverLeaveTheRecordedRange() {
        var h = LatencyHistogram()
        for v: UInt64 in [3, 3, 3, 7] { h.record(v) }
        #expect(h.percentile(50) == 3)
        #expect(h.percentile(75) == 3)
        #expect(h.percentile(76) == 7)
        #expect(h.percentile(0) == 3)

        var one = LatencyHistogram()
        one.record(1_234_567)
        #expect(one.percentile(1) == 1_234_567)  // clamped to what was recorded, not the bucket's top
        #expect(one.percentile(99.9) == 1_234_567)
        #expect(LatencyHistogram().percentile(50) == nil)
    }

    @Test func everyValueFallsInABucketWhoseTopIsNotBelowIt() {
        var v: UInt64 = 1
        while v < UInt64.max / 3 {
            for x in [v, v + 1, v * 3 / 2] {
                let bucket = LatencyHistogram.bucket(of: x)
                #expect(bucket < LatencyHistogram.bucketCount)
                let top = LatencyHistogram.highestValue(inBucket: bucket)
                #expect(top >= x && Double(top - x) <= Double(x) / 32 + 1, "\(x) → bucket \(bucket), top \(top)")
            }
            v *= 2
        }
        #expect(LatencyHistogram.bucket(of: .max) == LatencyHistogram.bucketCount - 1)
    }

    @Test func mergingEqualsRecordingEverythingInOne() {
        var a = LatencyHistogram()
        var b = LatencyHistogram()
        var all = LatencyHistogram()
        for v in stride(from: UInt64(100), to: 1_000_000, by: 997) {
            if v % 2 == 0 { a.record(v) } else { b.record(v) }
            all.record(v)
        }
        a.merge(b)
        #expect(a == all)
    }
}

@Suite("Pacing arithmetic")
struct PacingTests {
    @Test func creditAccumulatesFractionsSoTheCountMatchesTheRateExactly() {
        var pacer = RatePacer(perSecond: 60_000)
        #expect(pacer.due(atNanos: 1_000) == 0)  // starts the clock
        var total = 0
        var now: UInt64 = 1_000
        for _ in 0..<1_000 {  // one second in 1 ms ticks
            now += 1_000_000
            total += pacer.due(atNanos: now)
        }
        #expect(total == 60_000)
    }

    @Test func aRateBelowOnePerTickStillArrivesOnAverage() {
        var pacer = RatePacer(perSecond: 250)  // one message every 4 ticks of 1 ms
        _ = pacer.due(atNanos: 0)
        let counts = (1...8).map { pacer.due(atNanos: UInt64($0) * 1_000_000) }
        #expect(counts.reduce(0, +) == 2)
        #expect(counts.allSatisfy { $0 <= 1 })
    }

    @Test func aStallDoesNotTurnIntoABurstBeyondTheBacklogCap() {
        var pacer = RatePacer(perSecond: 10_000, maxBacklog: 0.1)
        _ = pacer.due(atNanos: 0)
        // Five seconds without a tick would owe 50,000 messages; only 0.1 s worth is sent.
        #expect(pacer.due(atNanos: 5_000_000_000) == 1_000)
        #expect(pacer.due(atNanos: 5_000_000_000) == 0)  // no time passed
        #expect(pacer.due(atNanos: 4_000_000_000) == 0)  // a clock going backwards owes nothing
    }

    @Test func sharesSplitEvenlyAndAddUp() {
        #expect(RateSplit.shares(20_000, parts: 2) == [10_000, 10_000])
        #expect(RateSplit.shares(10, parts: 3) == [4, 3, 3])
        #expect(RateSplit.shares(2, parts: 4) == [1, 1, 0, 0])
        #expect(RateSplit.loopRate(60_000, devicesOnLoop: 500, devicesConnected: 1_000) == 30_000)
        #expect(RateSplit.loopRate(60_000, devicesOnLoop: 0, devicesConnected: 0) == 0)
        #expect(RateSplit.loopRate(1_000, devicesOnLoop: 1, devicesConnected: 4) == 250)
    }
}

@Suite("In-flight window")
struct InflightWindowTests {
    @Test func holdsAtMostTheLimitAndReturnsSendTimes() {
        var w = InflightWindow(limit: 3)
        #expect(w.reserve(sentAt: 10) == 1)
        #expect(w.reserve(sentAt: 20) == 2)
        #expect(w.reserve(sentAt: 30) == 3)
        #expect(w.reserve(sentAt: 40) == nil)  // full
        #expect(w.acknowledge(2) == 20)
        #expect(w.acknowledge(2) == nil)  // twice: not in flight any more
        #expect(w.acknowledge(0) == nil)
        #expect(w.count == 2)
        #expect(w.reserve(sentAt: 50) == 4)
    }

    @Test func idsWrapAfter65535WithoutZeroAndNeverReuseAnIdStillInFlight() {
        var w = InflightWindow(limit: 2)  // ring of 2 slots
        var last: UInt16 = 0
        for _ in 0..<65_535 {
            last = w.reserve(sentAt: 1)!
            #expect(w.acknowledge(last) == 1)
        }
        #expect(last == 65_535)
        #expect(w.reserve(sentAt: 2) == 1)  // not 0
        // 1 stays unacknowledged; 2 comes and goes; 3 would share 1's slot, so it waits.
        #expect(w.reserve(sentAt: 3) == 2)
        #expect(w.acknowledge(2) == 3)
        #expect(w.reserve(sentAt: 4) == nil)
        #expect(w.acknowledge(1) == 2)
        #expect(w.reserve(sentAt: 5) == 3)
    }
}
