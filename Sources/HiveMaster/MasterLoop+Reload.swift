import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A rolling restart (SIGUSR1 / `hive reload`), one worker id at a time, never with two processes reading one
/// inbox and never with a gap in service:
///
/// 1. `retire` goes to the worker's inbox: the old process stops its worker-wide duties (`workerStop`, e.g. a Redis
///    subscription), stops reading the inbox and answers `retired`, still serving the connections it holds.
/// 2. The master starts the replacement from the executable on disk now, on the same inbox.
/// 3. When the replacement is `ready`, the old process gets SIGTERM: its WebSocket clients are closed with 1012
///    (Service Restart) so they reconnect at once, and it exits (or is killed after --grace).
struct ReloadPlan {
    enum Phase {
        case retiring(deadline: UInt64)
        case starting(newPID: pid_t, deadline: UInt64)
    }

    var pending: [Int]
    var current: (id: Int, oldPID: pid_t, phase: Phase)?
}

extension MasterLoop {
    static let retireTimeout: UInt64 = 5_000_000_000
    static let startTimeout: UInt64 = 15_000_000_000

    func beginReload() {
        guard stopDeadline == nil else { return }
        guard reload == nil else {
            logger.notice("reload already in progress; ignored")
            return
        }
        logger.notice("reloading workers one at a time", metadata: ["executable": "\(configuration.executable)"])
        writeLine("hive: reloading \(workers.count) workers")
        // systemd 253+ wants the monotonic time with RELOADING=1 (it ties the reply to this reload request).
        notifyServiceManager([
            "RELOADING=1", "MONOTONIC_USEC=\(ServiceNotifier.monotonicMicroseconds())",
            "STATUS=Reloading \(workers.count) workers one at a time",
        ])
        reload = ReloadPlan(pending: Array(workers.indices))
        advanceReload()
    }

    /// Starts the next worker's replacement, or finishes the reload.
    func advanceReload() {
        guard var plan = reload else { return }
        plan.current = nil
        while !plan.pending.isEmpty {
            let id = plan.pending.removeFirst()
            // A worker that is restarting anyway will come up from the new executable. An unresponsive one is asked
            // too: if it does not retire in time it is killed, and restarts from the new executable.
            guard workers[id].isServing || (workers[id].state == .unresponsive && workers[id].pid > 0) else { continue }
            let sent = (try? workers[id].inbox.send.send(.retire, blocking: false)) ?? .wouldBlock
            guard sent == .sent else {
                logger.warning("cannot ask worker to retire; killing it", metadata: ["worker.id": "\(id)"])
                kill(workers[id].pid, SIGKILL)
                continue
            }
            workers[id].state = .restarting
            registry.worker(id, .state).store(WorkerState.restarting.rawValue, ordering: .relaxed)
            plan.current = (id, workers[id].pid, .retiring(deadline: Clock.monotonicNanoseconds() + Self.retireTimeout))
            reload = plan
            return
        }
        reload = nil
        logger.notice("reload complete")
        writeLine("hive: reload complete")
        notifyServiceManager(["READY=1", servingStatus])
    }

    /// Step 2: the old process let go of the inbox.
    func workerRetired(_ id: Int, pid oldPID: pid_t) {
        guard var plan = reload, let current = plan.current, current.id == id, current.oldPID == oldPID,
            case .retiring = current.phase
        else { return }
        retiringWorkers[oldPID] = (id: id, killAt: nil)
        workers[id].pid = 0
        do {
            try spawnWorker(id)
            plan.current = (id, oldPID, .starting(newPID: workers[id].pid, deadline: Clock.monotonicNanoseconds() + Self.startTimeout))
            reload = plan
        } catch {
            logger.error("cannot start a replacement worker; retrying in 1 s", metadata: ["worker.id": "\(id)", "error": "\(error)"])
            workers[id].respawnAt = Clock.monotonicNanoseconds() + 1_000_000_000
            finishReplacing(oldPID: oldPID)
        }
    }

    /// Step 3: the replacement serves; the old process closes its clients with 1012 and goes.
    func replacementReady(_ id: Int, pid newPID: pid_t) {
        guard let plan = reload, let current = plan.current, current.id == id,
            case .starting(let expected, _) = current.phase, expected == newPID
        else { return }
        finishReplacing(oldPID: current.oldPID)
    }

    private func finishReplacing(oldPID: pid_t) {
        kill(oldPID, SIGTERM)
        retiringWorkers[oldPID]?.killAt = Clock.monotonicNanoseconds() + UInt64((configuration.grace + 1) * 1e9)
        advanceReload()
    }

    /// Timeouts of the reload steps and of retired processes that do not exit.
    func checkReloadDeadlines(now: UInt64) {
        for (pid, entry) in retiringWorkers {
            if let killAt = entry.killAt, now >= killAt {
                logger.warning("retired worker did not exit; killing it", metadata: ["worker.id": "\(entry.id)", "worker.pid": "\(pid)"])
                kill(pid, SIGKILL)
                retiringWorkers[pid]?.killAt = nil
            }
        }
        guard let plan = reload, let current = plan.current else { return }
        switch current.phase {
        case .retiring(let deadline) where now >= deadline:
            // It never let go of the inbox: kill it; the ordinary restart path brings up the new executable.
            logger.warning("worker did not retire in time; killing it", metadata: ["worker.id": "\(current.id)"])
            kill(current.oldPID, SIGKILL)
            advanceReload()
        case .starting(_, let deadline) where now >= deadline:
            logger.error("replacement worker is not ready in time; stopping the old one anyway", metadata: ["worker.id": "\(current.id)"])
            finishReplacing(oldPID: current.oldPID)
        default:
            break
        }
    }

    /// A retired process exited: free what it still held; it is not restarted (its replacement runs).
    func retiredWorkerExited(pid: pid_t, status: Int32) -> Bool {
        guard let entry = retiringWorkers.removeValue(forKey: pid) else { return false }
        let freed = registry.reclaimSlots(ofWorker: entry.id, pid: pid, includeReserved: false)
        logger.info("retired worker exited", metadata: ["worker.id": "\(entry.id)", "worker.pid": "\(pid)", "connections.freed": "\(freed)"])
        return true
    }

    var reloadDeadline: UInt64? {
        var next: UInt64?
        if let current = reload?.current {
            switch current.phase {
            case .retiring(let deadline), .starting(_, let deadline): next = deadline
            }
        }
        for entry in retiringWorkers.values { if let killAt = entry.killAt { next = min(next ?? killAt, killAt) } }
        return next
    }
}
