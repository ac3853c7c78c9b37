/// The master's watch over each worker's event loop, as a pure function of time and answers (tested with a fake
/// clock, like `Dispatcher`). The master sends a `healthCheck` into each watched worker's inbox every `interval`;
/// the worker answers `healthy` from its event loop, so a loop that is blocked (a hook stuck in a syscall, a busy
/// loop, SIGSTOP) stays silent. A check unanswered for `timeout`: unresponsive (no new connections). Unanswered for
/// twice that: killed, and the ordinary reap path restarts it.
package struct WorkerHealth: Sendable {
    package enum Action: Equatable, Sendable {
        /// Send `healthCheck(sequence)` to the worker's inbox.
        case check(worker: Int, sequence: UInt64)
        /// No answer for `timeout`: pass it over for new connections.
        case unresponsive(worker: Int, pid: Int32, silentFor: UInt64)
        /// An unresponsive worker answered again.
        case recovered(worker: Int, pid: Int32, silentFor: UInt64)
        /// No answer for twice `timeout`: kill it (SIGKILL; the reap path restarts it).
        case kill(worker: Int, pid: Int32, silentFor: UInt64)
    }

    private struct Watch {
        let pid: Int32
        /// When the watch began: answers to checks sent before it (to an earlier process) do not count.
        let since: UInt64
        /// Send times of the checks not answered yet, oldest first. The worker answers in order, so an answer
        /// settles every check up to its own. Bounded: a worker is killed once the oldest waited twice the timeout.
        var unanswered: [UInt64] = []
        var unresponsive = false
        var killed = false
    }

    /// Nanoseconds a check may stay unanswered before the worker is unresponsive (twice that: killed).
    package let timeout: UInt64
    /// Nanoseconds between checks (and ticks): a fifth of the timeout, at least 100 ms.
    package let interval: UInt64
    private var watches: [Watch?]
    private var lastTick: UInt64 = 0
    /// Monotonic ns at which `tick` is due next.
    package private(set) var nextTick: UInt64 = 0

    package init(workers: Int, timeout: UInt64) {
        self.timeout = max(timeout, 1)
        self.interval = max(timeout / 5, 100_000_000)
        self.watches = Array(repeating: nil, count: workers)
    }

    /// Checks every watched worker and says what to do. `watched[id]` is the pid of a worker whose loop must answer
    /// (running or unresponsive), 0 for one that is not watched now (starting, retiring, restarting, stopping): a
    /// new pid starts a fresh watch.
    package mutating func tick(now: UInt64, watched: [Int32]) -> [Action] {
        // The master itself did not run for a whole timeout (suspended, or the machine slept): it read no answers,
        // so the silence says nothing about the workers. Everyone gets a fresh period instead of being killed.
        let masterWasAway = lastTick > 0 && now > lastTick && now - lastTick > timeout
        lastTick = now
        nextTick = now + interval
        var actions: [Action] = []
        for id in watches.indices {
            let pid = id < watched.count ? watched[id] : 0
            guard pid > 0 else {
                watches[id] = nil
                continue
            }
            if watches[id]?.pid != pid { watches[id] = Watch(pid: pid, since: now) }
            guard var watch = watches[id], !watch.killed else { continue }
            if masterWasAway { watch.unanswered.removeAll() }
            // How long the oldest unanswered check has waited: "did not answer within the timeout", counted from
            // when the question was asked, not from the last answer.
            let waited = watch.unanswered.first.map { now > $0 ? now - $0 : 0 } ?? 0
            if waited >= 2 * timeout {
                watch.killed = true
                actions.append(.kill(worker: id, pid: pid, silentFor: waited))
            } else {
                if waited >= timeout && !watch.unresponsive {
                    watch.unresponsive = true
                    actions.append(.unresponsive(worker: id, pid: pid, silentFor: waited))
                }
                watch.unanswered.append(now)
                actions.append(.check(worker: id, sequence: now))
            }
            watches[id] = watch
        }
        return actions
    }

    /// A `healthy` answer arrived. Returns `.recovered` when it ends an unresponsive spell.
    package mutating func answered(worker id: Int, pid: Int32, sequence: UInt64, now: UInt64) -> Action? {
        guard id >= 0, id < watches.count, var watch = watches[id], watch.pid == pid, !watch.killed,
            sequence >= watch.since, sequence <= now
        else { return nil }
        let silent = watch.unanswered.first.map { now > $0 ? now - $0 : 0 } ?? 0
        watch.unanswered.removeAll { $0 <= sequence }
        // Back only when no check still left waits past the timeout (their answers are usually right behind).
        let stillLate = watch.unanswered.first.map { now > $0 && now - $0 >= timeout } ?? false
        guard watch.unresponsive && !stillLate else {
            watches[id] = watch
            return nil
        }
        watch.unresponsive = false
        watches[id] = watch
        return .recovered(worker: id, pid: pid, silentFor: silent)
    }
}
