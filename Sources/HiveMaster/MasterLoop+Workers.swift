import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

// Starting, reaping, restarting and stopping workers (nginx's spawnWorker / reapChildren shape).
extension MasterLoop {
    func spawnWorker(_ id: Int) throws {
        let descriptors = WorkerSpawner.Descriptors(
            registry: registry.fd,
            inbox: workers[id].inbox.receive.fd,
            master: masterInbox.send.fd,
            peers: workers.map { $0.inbox.send.fd }
        )
        let workerPID = try spawner.spawn(worker: id, descriptors: descriptors)
        workers[id].pid = workerPID
        workers[id].state = .starting
        workers[id].startedAt = Clock.monotonicNanoseconds()
        workers[id].respawnAt = 0
        registry.worker(id, .pid).store(UInt64(workerPID), ordering: .relaxed)
        registry.worker(id, .startedAt).store(Clock.wallNanoseconds(), ordering: .relaxed)
        registry.worker(id, .restarts).store(workers[id].restarts, ordering: .relaxed)
        registry.worker(id, .state).store(WorkerState.starting.rawValue, ordering: .relaxed)
        writeLine("hive: worker \(id) pid \(workerPID) started")
        logger.notice("worker started", metadata: ["worker.id": "\(id)", "worker.pid": "\(workerPID)"])
    }

    func reapChildren() {
        while true {
            var status: Int32 = 0
            let child = waitpid(-1, &status, WNOHANG)
            if child <= 0 { return }
            if retiredWorkerExited(pid: child, status: status) { continue }
            guard let id = workers.firstIndex(where: { $0.pid == child }) else { continue }
            workerExited(id, pid: child, status: status)
        }
    }

    private func workerExited(_ id: Int, pid child: pid_t, status: Int32) {
        let lived = Clock.monotonicNanoseconds() - workers[id].startedAt
        let exitCode = (status >> 8) & 0xFF
        let signal = status & 0x7F
        let how = signal != 0 ? "signal \(signal)" : "status \(exitCode)"
        workers[id].pid = 0
        registry.worker(id, .lastExitStatus).store(UInt64(UInt32(bitPattern: status)), ordering: .relaxed)
        registry.worker(id, .pid).store(0, ordering: .relaxed)
        let freed = registry.reclaimSlots(ofWorker: id, pid: child, includeReserved: true)
        drainInbox(of: id)
        if let current = reload?.current, current.oldPID == child {
            advanceReload()  // it died mid-reload: the ordinary restart below brings up the new executable
        }

        if stopDeadline != nil {
            workers[id].state = .exited
            registry.worker(id, .state).store(WorkerState.exited.rawValue, ordering: .relaxed)
            logger.info("worker exited", metadata: ["worker.id": "\(id)", "exit": "\(how)"])
            return
        }
        // A worker that keeps dying young is restarted with growing back-off (100 ms doubling, 5 s cap), so a
        // crash loop never spins the master; one that lived 10 s resets the count.
        workers[id].quickCrashes = lived > 10_000_000_000 ? 0 : workers[id].quickCrashes + 1
        let delayMs = workers[id].quickCrashes <= 1 ? 0 : min(5_000, 100 << min(workers[id].quickCrashes - 2, 6))
        workers[id].state = .restarting
        workers[id].restarts += 1
        workers[id].respawnAt = Clock.monotonicNanoseconds() + UInt64(delayMs) * 1_000_000 + 1
        registry.worker(id, .state).store(WorkerState.restarting.rawValue, ordering: .relaxed)
        logger.warning(
            "worker exited unexpectedly; restarting it",
            metadata: [
                "worker.id": "\(id)", "exit": "\(how)", "connections.closed": "\(freed)",
                "restart.delayMs": "\(delayMs)", "restarts": "\(workers[id].restarts)",
            ]
        )
    }

    /// Drops what was queued for a dead worker: sockets in flight are closed (their slots were just reclaimed),
    /// pushes for its connections have nobody to reach.
    private func drainInbox(of id: Int) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IPCMessage.maxRecordSize, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            guard let received = try? workers[id].inbox.receive.receive(blocking: false, buffer: buffer) else { return }
            if received.descriptor >= 0 { close(received.descriptor) }
        }
    }

    func respawnDueWorkers(now: UInt64) {
        guard stopDeadline == nil else { return }
        for id in workers.indices where workers[id].respawnAt > 0 && workers[id].respawnAt <= now {
            do {
                try spawnWorker(id)
            } catch {
                workers[id].respawnAt = now + 1_000_000_000
                logger.error("cannot restart worker; retrying in 1 s", metadata: ["worker.id": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// Stop accepting, ask every worker to close its WebSocket clients with 1001 (Going Away) and finish its HTTP
    /// responses, and give them `grace` seconds before SIGKILL.
    func beginStop(reason: String) {
        guard stopDeadline == nil else { return }
        logger.notice("stopping", metadata: ["reason": "\(reason)", "grace.seconds": "\(configuration.grace)"])
        writeLine("hive: stopping (\(reason))")
        notifyServiceManager(["STOPPING=1", "STATUS=Stopping (\(reason)); workers get \(configuration.grace) s"])
        listener?.close()
        listener = nil
        stopDeadline = Clock.monotonicNanoseconds() + UInt64(configuration.grace * 1e9)
        reload = nil
        for pid in retiringWorkers.keys { kill(pid, SIGTERM) }
        for id in workers.indices {
            workers[id].respawnAt = 0
            guard workers[id].pid > 0 else { continue }
            workers[id].state = .stopping
            registry.worker(id, .state).store(WorkerState.stopping.rawValue, ordering: .relaxed)
            // A signal, not an inbox record: it also reaches a worker that retired and no longer reads its inbox.
            kill(workers[id].pid, SIGTERM)
        }
    }

    func killRemainingWorkers() {
        for pid in retiringWorkers.keys { kill(pid, SIGKILL) }
        for worker in workers where worker.pid > 0 {
            logger.warning(
                "worker did not stop within the grace period; killing it",
                metadata: ["worker.id": "\(worker.id)", "worker.pid": "\(worker.pid)"]
            )
            kill(worker.pid, SIGKILL)
        }
        stopDeadline = Clock.monotonicNanoseconds() + 2_000_000_000
    }
}
