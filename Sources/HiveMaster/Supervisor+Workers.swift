import HiveIPC

// Starting, reaping, restarting and stopping workers (nginx's spawnWorker / reapChildren shape), as decisions.
extension Supervisor {
    /// The boot: every worker id gets a process. (`MasterLoop.run` fails when one cannot be started.)
    var bootActions: [Action] { workers.indices.map { .spawn(worker: $0) } }

    mutating func spawned(_ id: Int, pid: Int32, now: UInt64, into actions: inout [Action]) {
        workers[id].pid = pid
        workers[id].startedAt = now
        workers[id].respawnAt = 0
        setState(.starting, of: id, into: &actions)
        actions.append(.say("hive: worker \(id) pid \(pid) started"))
        actions.log(.notice, "worker started", ["worker.id": "\(id)", "worker.pid": "\(pid)"])
        // The replacement a reload step waits for (`retired` asked for it).
        if var plan = reload, let current = plan.current, current.id == id,
            case .starting(0, let deadline) = current.phase
        {
            plan.current = (id, current.oldPID, .starting(newPID: pid, deadline: deadline))
            reload = plan
        }
    }

    mutating func spawnFailed(_ id: Int, error: String, now: UInt64, into actions: inout [Action]) {
        workers[id].respawnAt = now + 1_000_000_000
        if let current = reload?.current, current.id == id, case .starting(0, _) = current.phase {
            actions.log(
                .error, "cannot start a replacement worker; retrying in 1 s", ["worker.id": "\(id)", "error": error]
            )
            finishReplacing(oldPID: current.oldPID, now: now, into: &actions)
        } else {
            actions.log(.error, "cannot restart worker; retrying in 1 s", ["worker.id": "\(id)", "error": error])
        }
    }

    mutating func exited(pid child: Int32, status: Int32, now: UInt64, into actions: inout [Action]) {
        if retiredExited(pid: child, into: &actions) { return }
        guard let id = workers.firstIndex(where: { $0.pid == child }) else { return }
        let lived = now > workers[id].startedAt ? now - workers[id].startedAt : 0
        let exitCode = (status >> 8) & 0xFF
        let signal = status & 0x7F
        let how = signal != 0 ? "signal \(signal)" : "status \(exitCode)"
        workers[id].pid = 0
        actions.append(.publishExit(worker: id, status: status))
        actions.append(.reclaimSlots(worker: id, pid: child, includeReserved: true))
        actions.append(.drainInbox(worker: id))
        if let current = reload?.current, current.oldPID == child {
            // It died mid-reload: the ordinary restart below brings up the new executable.
            advanceReload(now: now, into: &actions)
        }

        if stopDeadline != nil {
            setState(.exited, of: id, into: &actions)
            actions.log(.info, "worker exited", ["worker.id": "\(id)", "exit": how])
            return
        }
        // A worker that keeps dying young is restarted with growing back-off (100 ms doubling, 5 s cap), so a
        // crash loop never spins the master; one that lived 10 s resets the count.
        workers[id].quickCrashes = lived > Self.stableLife ? 0 : workers[id].quickCrashes + 1
        let delayMs = Self.backOffMilliseconds(quickCrashes: workers[id].quickCrashes)
        workers[id].restarts += 1
        workers[id].respawnAt = now + UInt64(delayMs) * 1_000_000 + 1
        setState(.restarting, of: id, into: &actions)
        actions.log(.warning, "worker exited unexpectedly; restarting it",
            ["worker.id": "\(id)", "exit": how, "restart.delayMs": "\(delayMs)", "restarts": "\(workers[id].restarts)"],
            reclaimedKey: "connections.closed"
        )
    }

    /// 0 for a first quick crash, then 100 ms doubling up to 5 s.
    static func backOffMilliseconds(quickCrashes: Int) -> Int {
        quickCrashes <= 1 ? 0 : min(5_000, 100 << min(quickCrashes - 2, 6))
    }

    mutating func respawnDue(now: UInt64, into actions: inout [Action]) {
        guard stopDeadline == nil else { return }
        for id in workers.indices where workers[id].respawnAt > 0 && workers[id].respawnAt <= now {
            workers[id].respawnAt = 0  // `spawnFailed` sets it again
            actions.append(.spawn(worker: id))
        }
    }

    mutating func ready(_ id: Int, pid: Int32, now: UInt64, into actions: inout [Action]) {
        guard id >= 0, id < workers.count, workers[id].pid == pid else { return }  // an earlier process's
        // Stopping: it has its SIGTERM; it is not running again, and a late last `ready` announces nothing.
        guard stopDeadline == nil else { return }
        setState(.running, of: id, into: &actions)
        actions.log(.debug, "worker ready", ["worker.id": "\(id)", "worker.pid": "\(pid)"])
        if !announcedReady && workers.allSatisfy({ $0.state == .running }) {
            announcedReady = true
            actions.append(.announce(.ready))
        }
        replacementReady(id, pid: pid, now: now, into: &actions)
    }

    /// Stop accepting, ask every worker to close its WebSocket clients with 1001 (Going Away) and finish its HTTP
    /// responses, and give them `grace` seconds before SIGKILL.
    mutating func beginStop(reason: String, now: UInt64, into actions: inout [Action]) {
        guard stopDeadline == nil else { return }
        actions.append(.announce(.stopping(reason: reason)))
        actions.append(.stopAccepting)
        stopDeadline = now + UInt64(grace * 1e9)
        reload = nil
        for pid in retiring.keys { actions.append(.signal(pid: pid, .terminate)) }
        for id in workers.indices {
            workers[id].respawnAt = 0
            guard workers[id].pid > 0 else { continue }
            setState(.stopping, of: id, into: &actions)
            // A signal, not an inbox record: it also reaches a worker that retired and no longer reads its inbox.
            actions.append(.signal(pid: workers[id].pid, .terminate))
        }
    }

    mutating func killRemaining(now: UInt64, into actions: inout [Action]) {
        for pid in retiring.keys { actions.append(.signal(pid: pid, .kill)) }
        for (id, worker) in workers.enumerated() where worker.pid > 0 {
            actions.log(.warning, "worker did not stop within the grace period; killing it",
                ["worker.id": "\(id)", "worker.pid": "\(worker.pid)"]
            )
            actions.append(.signal(pid: worker.pid, .kill))
        }
        stopDeadline = now + 2_000_000_000
    }
}
