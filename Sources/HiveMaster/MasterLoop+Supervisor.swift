import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

// Performing the supervisor's actions. The outcome of those that can fail goes back in as an event (`spawned` /
// `spawnFailed`, `retireRefused`), whose actions are performed at once, before the rest of the batch.
extension MasterLoop {
    func perform(_ actions: [Supervisor.Action]) {
        for action in actions { perform(action) }
    }

    private func perform(_ action: Supervisor.Action) {
        let now = { Clock.monotonicNanoseconds() }
        switch action {
        case .spawn(let id):
            do {
                let workerPID = try spawnProcess(id)
                perform(supervisor.handle(.spawned(worker: id, pid: workerPID, now: now())))
            } catch {
                perform(supervisor.handle(.spawnFailed(worker: id, error: "\(error)", now: now())))
            }
        case .signal(let target, let signal):
            switch signal {
            case .terminate: kill(target, SIGTERM)
            case .kill: kill(target, SIGKILL)
            case .handOver: kill(target, SIGUSR2)
            }
        case .send(let id, let record):
            let sent = (try? workers[id].inbox.send.send(record, blocking: false)) ?? .wouldBlock
            guard sent != .sent else { return }
            if case .retire = record {
                perform(supervisor.handle(.retireRefused(worker: id, now: now())))
            } else {
                logger.debug("worker's inbox is full; health check not sent", metadata: ["worker.id": "\(id)"])
            }
        case .reclaimSlots(let id, let target, let includeReserved):
            lastReclaimed = registry.reclaimSlots(ofWorker: id, pid: target, includeReserved: includeReserved)
            recordPagesTouched = true  // the walk mapped every page of slots
            // The worker's channel subscribers died with it, unless a retired process of the same id still serves
            // some (a reload): then that one's counts stay, and it takes them back as its connections close.
            if includeReserved && !supervisor.retiring.values.contains(where: { $0.id == id }) {
                registry.clearChannels(ofWorker: id)
            }
        case .drainInbox(let id):
            drainInbox(of: id)
        case .publishState(let id, let state):
            registry.worker(id, .state).store(state.rawValue, ordering: .relaxed)
        case .publishExit(let id, let status):
            registry.worker(id, .lastExitStatus).store(UInt64(UInt32(bitPattern: status)), ordering: .relaxed)
            registry.worker(id, .pid).store(0, ordering: .relaxed)
        case .stopAccepting:
            listener?.close()
            listener = nil
        case .announce(let announcement):
            announce(announcement)
        case .say(let line):
            writeLine(line)
        case .log(let line):
            var metadata = line.metadata.mapValues { Logger.MetadataValue.string($0) }
            if let key = line.reclaimedKey { metadata[key] = "\(lastReclaimed)" }
            logger.log(level: line.level.loggerLevel, "\(line.message)", metadata: metadata)
        }
    }

    private func announce(_ announcement: Supervisor.Announcement) {
        switch announcement {
        case .ready:
            let line =
                "hive: ready on http://\(configuration.listenDescription) with \(workers.count) workers "
                + "(dispatch \(configuration.dispatch.rawValue), master pid \(pid), run dir \(configuration.runDirectory))"
            writeLine(line)
            notifyServiceManager(["READY=1", "MAINPID=\(pid)", servingStatus])
            if configuration.readyNotification >= 0 {
                writeLine(line, to: configuration.readyNotification)
                close(configuration.readyNotification)
            }
        case .reloading:
            logger.notice("reloading workers one at a time", metadata: ["executable": "\(configuration.executable)"])
            writeLine("hive: reloading \(workers.count) workers")
            // systemd 253+ wants the monotonic time with RELOADING=1 (it ties the reply to this reload request).
            notifyServiceManager([
                "RELOADING=1", "MONOTONIC_USEC=\(ServiceNotifier.monotonicMicroseconds())",
                "STATUS=Reloading \(workers.count) workers one at a time",
            ])
        case .reloadAlreadyInProgress:
            logger.notice("reload already in progress; ignored")
        case .reloadComplete:
            logger.notice("reload complete")
            writeLine("hive: reload complete")
            notifyServiceManager(["READY=1", servingStatus])
        case .stopping(let reason):
            logger.notice("stopping", metadata: ["reason": "\(reason)", "grace.seconds": "\(configuration.grace)"])
            writeLine("hive: stopping (\(reason))")
            notifyServiceManager(["STOPPING=1", "STATUS=Stopping (\(reason)); workers get \(configuration.grace) s"])
        }
    }
}

extension Supervisor.LogLine.Level {
    var loggerLevel: Logger.Level {
        switch self {
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        }
    }
}
