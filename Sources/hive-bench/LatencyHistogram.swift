/// A log-linear histogram of nanosecond latencies: exact below 256 ns, then 128 sub-buckets per power of two (at most
/// 0.8 % relative error), about 7,300 counters in all. Fixed memory however many deliveries there are (a 30,000-client
/// run records millions), cheap to record on an event loop, and mergeable across generator processes (they send
/// their non-empty buckets in their JSON result). Min, max and the sum are kept exactly.
struct LatencyHistogram: Sendable {
    static let subBits = 7
    static let linear = 256
    static let bucketCount = linear + (63 - 8 + 1) * (1 << subBits)

    private(set) var counts: [UInt64] = Array(repeating: 0, count: bucketCount)
    private(set) var count: UInt64 = 0
    private(set) var sum: Double = 0
    private(set) var min: UInt64 = .max
    private(set) var max: UInt64 = 0
    /// Receive time before the payload's publish time: impossible with one monotonic clock, so a bug if ever non-zero.
    private(set) var negative: UInt64 = 0

    @inline(__always)
    static func index(_ value: UInt64) -> Int {
        if value < UInt64(linear) { return Int(value) }
        let exponent = 63 - value.leadingZeroBitCount  // >= 8
        let sub = Int((value >> UInt64(exponent - subBits)) & UInt64((1 << subBits) - 1))
        return linear + (exponent - 8) * (1 << subBits) + sub
    }

    /// The middle of a bucket: what a percentile that falls in it reports.
    static func representative(_ index: Int) -> Double {
        if index < linear { return Double(index) }
        let exponent = (index - linear) / (1 << subBits) + 8
        let sub = (index - linear) % (1 << subBits)
        let width = Double(UInt64(1) << UInt64(exponent - subBits))
        let low = Double(UInt64(1) << UInt64(exponent)) + Double(sub) * width
        return low + width / 2
    }

    @inline(__always)
    mutating func record(sent: UInt64, received: UInt64) {
        if received < sent {
            negative &+= 1
            record(0)
        } else {
            record(received - sent)
        }
    }

    @inline(__always)
    mutating func record(_ value: UInt64) {
        counts[Self.index(value)] &+= 1
        count &+= 1
        sum += Double(value)
        if value < min { min = value }
        if value > max { max = value }
    }

    mutating func merge(_ other: LatencyHistogram) {
        for i in 0..<counts.count where other.counts[i] != 0 { counts[i] &+= other.counts[i] }
        count &+= other.count
        sum += other.sum
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
        negative &+= other.negative
    }

    /// The value at quantile q (0...1), clamped to the exact min and max.
    func quantile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = Swift.max(1, UInt64((q * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c != 0 {
            seen += c
            if seen >= rank {
                return Swift.min(Swift.max(Self.representative(i), Double(min)), Double(max))
            }
        }
        return Double(max)
    }

    /// Percentiles in microseconds, for the report.
    var summary: LatencySummary {
        func us(_ v: Double?) -> Double? { v.map { ($0 / 1000 * 10).rounded() / 10 } }
        return LatencySummary(
            samples: count,
            minUs: count > 0 ? us(Double(min)) : nil,
            p50Us: us(quantile(0.50)),
            p90Us: us(quantile(0.90)),
            p99Us: us(quantile(0.99)),
            p999Us: us(quantile(0.999)),
            maxUs: count > 0 ? us(Double(max)) : nil,
            meanUs: count > 0 ? us(sum / Double(count)) : nil,
            negative: negative
        )
    }

    /// Sparse form for a shard's JSON result: only non-empty buckets.
    var wire: WireHistogram {
        var buckets: [[UInt64]] = []
        for (i, c) in counts.enumerated() where c != 0 { buckets.append([UInt64(i), c]) }
        return WireHistogram(buckets: buckets, count: count, sum: sum, min: count > 0 ? min : 0, max: max, negative: negative)
    }

    init() {}

    init(_ wire: WireHistogram) {
        for pair in wire.buckets where pair.count == 2 && pair[0] < UInt64(Self.bucketCount) {
            counts[Int(pair[0])] &+= pair[1]
        }
        count = wire.count
        sum = wire.sum
        min = wire.count > 0 ? wire.min : .max
        max = wire.max
        negative = wire.negative
    }
}

struct WireHistogram: Codable, Sendable {
    var buckets: [[UInt64]]
    var count: UInt64
    var sum: Double
    var min: UInt64
    var max: UInt64
    var negative: UInt64
}

struct LatencySummary: Codable, Sendable {
    var samples: UInt64
    var minUs: Double?
    var p50Us: Double?
    var p90Us: Double?
    var p99Us: Double?
    var p999Us: Double?
    var maxUs: Double?
    var meanUs: Double?
    /// Deliveries whose receive time was before their publish time (must be 0).
    var negative: UInt64
}
