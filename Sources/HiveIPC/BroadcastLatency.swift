import Atomics

/// The histogram of one worker's broadcast write latency, in the worker's registry record: fixed-size words,
/// written by the worker (atomic increments, since two processes share an id for a moment during a reload), read by
/// `/metrics`. Buckets in seconds, like every Prometheus latency.
package enum BroadcastLatency {
    /// Upper bounds of the buckets, in nanoseconds (0.1 ms … 1 s); slower observations count only in the total.
    package static let bounds: [UInt64] = [100_000, 500_000, 1_000_000, 5_000_000, 10_000_000, 50_000_000, 250_000_000,
                                          1_000_000_000]

    /// What the registry holds for one worker: per-bucket counts (not cumulative), the count and the sum.
    package struct Snapshot: Sendable, Equatable {
        package var buckets: [UInt64]
        package var count: UInt64
        package var sumNanoseconds: UInt64

        /// Cumulative counts per bound, as Prometheus's `_bucket{le=...}` wants them.
        package var cumulative: [UInt64] {
            var total: UInt64 = 0
            return buckets.map { total &+= $0; return total }
        }
    }
}

extension SharedRegistry {
    /// Records one broadcast's write latency for `worker`.
    @inline(__always)
    package func observeBroadcastLatency(worker: Int, nanoseconds: UInt64) {
        increment(worker: worker, .broadcastLatencyCount)
        increment(worker: worker, .broadcastLatencySum, by: nanoseconds)
        guard let bucket = BroadcastLatency.bounds.firstIndex(where: { nanoseconds <= $0 }) else { return }
        latencyBucket(worker: worker, bucket).wrappingIncrement(ordering: .relaxed)
    }

    package func broadcastLatency(worker: Int) -> BroadcastLatency.Snapshot {
        BroadcastLatency.Snapshot(
            buckets: BroadcastLatency.bounds.indices.map { latencyBucket(worker: worker, $0).load(ordering: .relaxed) },
            count: self.worker(worker, .broadcastLatencyCount).load(ordering: .relaxed),
            sumNanoseconds: self.worker(worker, .broadcastLatencySum).load(ordering: .relaxed)
        )
    }

    private func latencyBucket(worker: Int, _ index: Int) -> UnsafeAtomic<UInt64> {
        self.worker(worker, .broadcastLatencyBuckets, word: index)
    }
}
