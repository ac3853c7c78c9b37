import HiveIPC

// Worker health: a worker whose event loop stops answering gets no new connections, then is killed and restarted
// (the timing is `WorkerHealth`'s; this turns it into worker states). Only running or unresponsive workers of the
// current pid are watched: one that is starting, retiring during a reload, restarting or stopping is not, so a
// reload's retired process is never killed for the silence it is allowed.
extension Supervisor {
    mutating func checkHealth(now: UInt64, into actions: inout [Action]) {
        let watched = workers.map { ($0.state == .running || $0.state == .unresponsive) && $0.pid > 0 ? $0.pid : 0 }
        for action in health.tick(now: now, watched: watched) {
            switch action {
            case .check(let id, let sequence):
                // Never blocks. A full inbox sends nothing: the silence that follows is the sign.
                actions.append(.send(worker: id, .healthCheck(sequence: sequence)))
            case .unresponsive(let id, let pid, let silent):
                setState(.unresponsive, of: id, into: &actions)
                let reason = "its event loop did not answer the health check within --worker-timeout \(workerTimeout) s"
                actions.log(.warning, "worker is unresponsive; no new connections go to it",
                    [
                        "worker.id": "\(id)", "worker.pid": "\(pid)", "silent.ms": "\(silent / 1_000_000)",
                        "reason": reason, "hint": "it is killed and restarted if it stays silent as long again",
                    ]
                )
            case .kill(let id, let pid, let silent):
                let reason = "its event loop did not answer the health check for twice --worker-timeout "
                    + "\(workerTimeout) s"
                actions.log(.warning, "worker is hung; killing it so it is restarted",
                    [
                        "worker.id": "\(id)", "worker.pid": "\(pid)", "silent.ms": "\(silent / 1_000_000)",
                        "reason": reason,
                    ]
                )
                actions.append(.signal(pid: pid, .kill))
            case .recovered:
                break  // only from `answered`
            }
        }
    }

    mutating func answered(_ id: Int, pid: Int32, sequence: UInt64, now: UInt64, into actions: inout [Action]) {
        let result = health.answered(worker: id, pid: pid, sequence: sequence, now: now)
        guard case .recovered(_, _, let silent)? = result, workers[id].state == .unresponsive, workers[id].pid == pid
        else { return }
        setState(.running, of: id, into: &actions)
        actions.log(.notice, "worker answers again; it takes new connections",
            ["worker.id": "\(id)", "worker.pid": "\(pid)", "silent.ms": "\(silent / 1_000_000)"]
        )
    }
}
