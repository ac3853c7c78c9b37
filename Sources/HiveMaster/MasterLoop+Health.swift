import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

// Worker health: a worker whose event loop stops answering gets no new connections, then is killed and restarted
// (the decisions are `WorkerHealth`'s; this applies them). Only running or unresponsive workers of the current pid
// are watched: one that is starting, retiring during a reload, restarting or stopping is not, so a reload's
// retired process is never killed for the silence it is allowed.
extension MasterLoop {
    func checkWorkerHealth(now: UInt64) {
        let watched = workers.map { ($0.state == .running || $0.state == .unresponsive) && $0.pid > 0 ? $0.pid : 0 }
        for action in health.tick(now: now, watched: watched) {
            switch action {
            case .check(let id, let sequence):
                // Never blocks. A full inbox sends nothing: the silence that follows is the sign.
                let check = IPCMessage.healthCheck(sequence: sequence)
                if (try? workers[id].inbox.send.send(check, blocking: false)) != .sent {
                    logger.debug("worker's inbox is full; health check not sent", metadata: ["worker.id": "\(id)"])
                }
            case .unresponsive(let id, let workerPID, let silent):
                setState(.unresponsive, of: id)
                let reason = "its event loop did not answer the health check within --worker-timeout "
                    + "\(configuration.workerTimeout) s"
                logger.warning(
                    "worker is unresponsive; no new connections go to it",
                    metadata: [
                        "worker.id": "\(id)", "worker.pid": "\(workerPID)", "silent.ms": "\(silent / 1_000_000)",
                        "reason": "\(reason)",
                        "hint": "it is killed and restarted if it stays silent as long again",
                    ]
                )
            case .kill(let id, let workerPID, let silent):
                let reason = "its event loop did not answer the health check for twice --worker-timeout "
                    + "\(configuration.workerTimeout) s"
                logger.warning(
                    "worker is hung; killing it so it is restarted",
                    metadata: [
                        "worker.id": "\(id)", "worker.pid": "\(workerPID)", "silent.ms": "\(silent / 1_000_000)",
                        "reason": "\(reason)",
                    ]
                )
                kill(workerPID, SIGKILL)
            case .recovered:
                break  // only from `answered`
            }
        }
    }

    func workerAnswered(_ id: Int, pid workerPID: pid_t, sequence: UInt64) {
        let now = Clock.monotonicNanoseconds()
        let action = health.answered(worker: id, pid: workerPID, sequence: sequence, now: now)
        guard case .recovered(_, _, let silent)? = action, workers[id].state == .unresponsive,
            workers[id].pid == workerPID
        else { return }
        setState(.running, of: id)
        logger.notice(
            "worker answers again; it takes new connections",
            metadata: ["worker.id": "\(id)", "worker.pid": "\(workerPID)", "silent.ms": "\(silent / 1_000_000)"]
        )
    }

    private func setState(_ state: WorkerState, of id: Int) {
        workers[id].state = state
        registry.worker(id, .state).store(state.rawValue, ordering: .relaxed)
    }
}
