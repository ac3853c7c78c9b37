import HiveIPC

/// A rolling restart (SIGUSR1 / `hive reload`), one worker id at a time, never with two processes reading one
/// inbox and never with a gap in service:
///
/// 1. `retire` goes to the worker's inbox: the old process stops its worker-wide duties (`workerStop`, e.g. a Redis
///    subscription), stops reading the inbox and answers `retired`, still serving the connections it holds.
/// 2. The master starts the replacement from the executable on disk now, on the same inbox.
/// 3. When the replacement is `ready`, the old process gets SIGUSR2: it hands every WebSocket connection to the
///    replacement (`HandOverSender`), closes what it could not hand over with 1012 and exits. With `--drop` (or when
///    the replacement never became ready) it gets SIGTERM instead: its WebSocket clients are closed with 1012
///    (Service Restart) so they reconnect at once, and it exits (or is killed after --grace).
struct ReloadPlan {
    enum Phase {
        case retiring(deadline: UInt64)
        case starting(newPID: Int32, deadline: UInt64)
    }

    var pending: [Int]
    /// `hive reload --drop`: the old processes close their connections instead of handing them over.
    var dropConnections = false
    var current: (id: Int, oldPID: Int32, phase: Phase)?
}

extension Supervisor {
    mutating func beginReload(now: UInt64, dropConnections: Bool = false, into actions: inout [Action]) {
        guard stopDeadline == nil else { return }
        guard reload == nil else {
            actions.append(.announce(.reloadAlreadyInProgress))
            return
        }
        actions.append(.announce(.reloading))
        reload = ReloadPlan(pending: Array(workers.indices), dropConnections: dropConnections)
        advanceReload(now: now, into: &actions)
    }

    /// Asks the next worker to retire, or finishes the reload.
    mutating func advanceReload(now: UInt64, into actions: inout [Action]) {
        guard var plan = reload else { return }
        plan.current = nil
        while !plan.pending.isEmpty {
            let id = plan.pending.removeFirst()
            // A worker that is restarting anyway will come up from the new executable. An unresponsive one is asked
            // too: if it does not retire in time it is killed, and restarts from the new executable.
            guard workers[id].isServing || (workers[id].state == .unresponsive && workers[id].pid > 0) else { continue }
            actions.append(.send(worker: id, .retire))
            setState(.restarting, of: id, into: &actions)
            plan.current = (id, workers[id].pid, .retiring(deadline: now + Self.retireTimeout))
            reload = plan
            return
        }
        reload = nil
        actions.append(.announce(.reloadComplete))
    }

    /// The `retire` record did not fit into the worker's inbox: kill it (it restarts from the new executable) and
    /// go on with the next.
    mutating func retireRefused(_ id: Int, now: UInt64, into actions: inout [Action]) {
        guard let current = reload?.current, current.id == id, case .retiring = current.phase else { return }
        actions.log(.warning, "cannot ask worker to retire; killing it", ["worker.id": "\(id)"])
        actions.append(.signal(pid: current.oldPID, .kill))
        advanceReload(now: now, into: &actions)
    }

    /// Step 2: the old process let go of the inbox.
    mutating func retired(_ id: Int, pid oldPID: Int32, now: UInt64, into actions: inout [Action]) {
        guard var plan = reload, let current = plan.current, current.id == id, current.oldPID == oldPID,
            case .retiring = current.phase
        else { return }
        retiring[oldPID] = (id: id, killAt: nil)
        workers[id].pid = 0
        // The new pid is filled in by `spawned`; `spawnFailed` ends this step instead.
        plan.current = (id, oldPID, .starting(newPID: 0, deadline: now + Self.startTimeout))
        reload = plan
        actions.append(.spawn(worker: id))
    }

    /// Step 3: the replacement serves; the old process hands its clients over (or, with --drop, closes them with
    /// 1012) and goes.
    mutating func replacementReady(_ id: Int, pid newPID: Int32, now: UInt64, into actions: inout [Action]) {
        guard let plan = reload, let current = plan.current, current.id == id,
            case .starting(let expected, _) = current.phase, expected == newPID
        else { return }
        finishReplacing(oldPID: current.oldPID, handOver: !plan.dropConnections, now: now, into: &actions)
    }

    mutating func finishReplacing(oldPID: Int32, handOver: Bool = false, now: UInt64, into actions: inout [Action]) {
        actions.append(.signal(pid: oldPID, handOver ? .handOver : .terminate))
        retiring[oldPID]?.killAt = now + UInt64((grace + 1) * 1e9) + (handOver ? Self.handOverTimeout : 0)
        advanceReload(now: now, into: &actions)
    }

    /// Timeouts of the reload steps and of retired processes that do not exit.
    mutating func checkReloadDeadlines(now: UInt64, into actions: inout [Action]) {
        for (pid, entry) in retiring {
            if let killAt = entry.killAt, now >= killAt {
                actions.log(
                    .warning, "retired worker did not exit; killing it", ["worker.id": "\(entry.id)", "worker.pid": "\(pid)"]
                )
                actions.append(.signal(pid: pid, .kill))
                retiring[pid]?.killAt = nil
            }
        }
        guard let plan = reload, let current = plan.current else { return }
        switch current.phase {
        case .retiring(let deadline) where now >= deadline:
            // It never let go of the inbox: kill it; the ordinary restart path brings up the new executable.
            actions.log(.warning, "worker did not retire in time; killing it", ["worker.id": "\(current.id)"])
            actions.append(.signal(pid: current.oldPID, .kill))
            advanceReload(now: now, into: &actions)
        case .starting(_, let deadline) where now >= deadline:
            actions.log(
                .error, "replacement worker is not ready in time; stopping the old one anyway",
                ["worker.id": "\(current.id)"]
            )
            finishReplacing(oldPID: current.oldPID, now: now, into: &actions)
        default:
            break
        }
    }

    /// Whether a retired process of worker `id` still runs: the process started for `id` now may be handed its
    /// connections (it is a reload's replacement, or the restart of a replacement that died).
    func hasRetiredProcess(ofWorker id: Int) -> Bool {
        retiring.values.contains { $0.id == id }
    }

    /// A retired process exited: free what it still held; it is not restarted (its replacement runs).
    mutating func retiredExited(pid: Int32, into actions: inout [Action]) -> Bool {
        guard let entry = retiring.removeValue(forKey: pid) else { return false }
        actions.append(.reclaimSlots(worker: entry.id, pid: pid, includeReserved: false))
        actions.log(
            .info, "retired worker exited", ["worker.id": "\(entry.id)", "worker.pid": "\(pid)"],
            reclaimedKey: "connections.freed"
        )
        return true
    }
}
