/// How the master picks the worker for a new connection (`--dispatch`).
package enum DispatchMode: String, Sendable, CaseIterable {
    /// The worker holding the fewest open connections (Swoole's dispatch_mode 2 is fd-modulo; this balances
    /// long-lived WebSocket connections better).
    case leastConnections = "least-connections"
    case roundRobin = "round-robin"
    /// The same client address always lands on the same worker (while the worker set is unchanged).
    case ipHash = "ip-hash"
}

/// Worker choice as a pure function of the table, so it is tested without processes (swoole's `TEST(server,
/// schedule)` does the same).
package struct Dispatcher: Sendable {
    package let mode: DispatchMode
    private var nextRoundRobin = 0

    package init(mode: DispatchMode) { self.mode = mode }

    /// - Parameters:
    ///   - load: open connections per worker id.
    ///   - available: whether each worker may take connections now (running, inbox not known full).
    ///   - clientHash: a hash of the client address, for ip-hash.
    /// - Returns: the chosen worker id, or nil when none is available.
    package mutating func choose(load: [Int], available: [Bool], clientHash: UInt64) -> Int? {
        let count = load.count
        guard count > 0, available.contains(true) else { return nil }
        switch mode {
        case .leastConnections:
            var best: Int?
            // Ties go round-robin so a burst of connections spreads over workers with equal load.
            for step in 0..<count {
                let id = (nextRoundRobin + step) % count
                guard available[id] else { continue }
                if best == nil || load[id] < load[best!] { best = id }
            }
            if let best { nextRoundRobin = (best + 1) % count }
            return best
        case .roundRobin:
            for step in 0..<count {
                let id = (nextRoundRobin + step) % count
                if available[id] {
                    nextRoundRobin = (id + 1) % count
                    return id
                }
            }
            return nil
        case .ipHash:
            let home = Int(clientHash % UInt64(count))
            for step in 0..<count where available[(home + step) % count] {
                return (home + step) % count
            }
            return nil
        }
    }
}
