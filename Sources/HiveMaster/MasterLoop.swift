import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The master: one thread, one poll loop. It listens, accepts, picks a worker and hands the socket over with
/// SCM_RIGHTS; it starts, watches and restarts workers; it never touches a connection's bytes (except to refuse
/// one with 503) and never blocks on a worker.
package final class MasterLoop {
    let configuration: MasterConfiguration
    var logger: Logger
    let pid = getpid()
    var workers: [WorkerEntry] = []
    var dispatcher: Dispatcher
    var registry: SharedRegistry!
    var listener: Listener?
    var signals: SignalChannel!
    var masterInbox: (receive: RecordChannel, send: RecordChannel)!
    var spawner: WorkerSpawner
    /// Every decision about worker processes (spawn, ready, exit, back-off, reload, stop, health); this class
    /// performs them (`MasterLoop+Supervisor.swift`).
    var supervisor: Supervisor
    /// Slots freed by the last `reclaimSlots` action, for the log line that reports them.
    var lastReclaimed = 0
    /// Monotonic ns until which accepting is paused after EMFILE/ENFILE, so the loop does not spin.
    var acceptPausedUntil: UInt64 = 0
    var exitStatus: Int32 = 0
    var control: ControlServer?
    /// `--metrics-listen`, and the page state it keeps between scrapes.
    var metrics: MetricsServer?
    var metricsPage: HiveMetrics?
    let runDirectory: RunDirectory
    /// systemd's notification socket (`Type=notify`), when the master runs under a service manager.
    var notifier: ServiceNotifier?
    /// The loop handled something since it last dropped its registry pages, and when that was (monotonic ns):
    /// see `dropRecordPagesIfDue`.
    var recordPagesTouched = false
    var recordPagesDroppedAt: UInt64 = 0

    package init(configuration: MasterConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.logger[metadataKey: "process.role"] = "master"
        self.logger[metadataKey: "pid"] = "\(getpid())"
        self.dispatcher = Dispatcher(mode: configuration.dispatch)
        self.spawner = WorkerSpawner(
            executable: configuration.executable, baseArguments: configuration.workerArguments,
            environment: configuration.workerEnvironment
        )
        self.runDirectory = RunDirectory(path: configuration.runDirectory)
        self.supervisor = Supervisor(
            workers: configuration.workers, grace: configuration.grace, workerTimeout: configuration.workerTimeout
        )
    }

    /// Runs until stopped; returns the process exit status.
    package func run() throws -> Int32 {
        let threads = Self.threadCount()
        guard threads == 1 else { throw MasterError.multiThreaded(threads: threads) }

        // Taken out of the environment before any worker is spawned: only the master may notify.
        notifier = ServiceNotifier.fromEnvironment(logger: logger)
        try runDirectory.claim(pid: pid)
        defer { runDirectory.release(pid: pid) }
        let listener =
            configuration.listenerDescriptor >= 0
            ? Listener(adopting: configuration.listenerDescriptor)
            : try Listener(host: configuration.host, port: configuration.port)
        self.listener = listener
        defer { self.listener?.close() }
        if let address = configuration.metricsListen { try startMetrics(address) }
        defer { metrics?.close() }

        registry = try SharedRegistry.create(
            capacity: configuration.maxConnections, workerCount: configuration.workers,
            channelCapacity: configuration.maxChannels
        )
        registry.header(.masterPID).store(UInt64(pid), ordering: .relaxed)
        registry.header(.startedAt).store(Clock.wallNanoseconds(), ordering: .relaxed)
        masterInbox = try RecordChannel.pair(while: "creating the master's inbox")
        for id in 0..<configuration.workers {
            let inbox = try RecordChannel.pair(while: "creating the inbox of worker \(id)")
            workers.append(WorkerEntry(id: id, inbox: inbox))
        }
        signals = try SignalChannel()
        let control = try ControlServer(path: runDirectory.controlSocket)
        self.control = control
        defer { control.close() }
        for case .spawn(let id) in supervisor.bootActions {
            let workerPID = try spawnProcess(id)
            perform(supervisor.handle(.spawned(worker: id, pid: workerPID, now: Clock.monotonicNanoseconds())))
        }

        try loop()
        logger.notice("master stopped", metadata: ["exit.status": "\(exitStatus)"])
        return exitStatus
    }

    private func loop() throws {
        while true {
            let now = Clock.monotonicNanoseconds()
            if supervisor.isFinished { return }
            perform(supervisor.handle(.tick(now: now)))

            control?.expire(now: now)
            metrics?.expire(now: now)
            dropRecordPagesIfDue(now: now)

            let accepting =
                listener != nil && supervisor.announcedReady && !supervisor.isStopping && now >= acceptPausedUntil
            var fds = [
                pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: masterInbox.receive.fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: accepting ? listener!.fd : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: control?.fd ?? -1, events: Int16(POLLIN), revents: 0),
            ]
            let clients = Array(control?.clients.keys ?? [:].keys)
            fds += clients.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let metricsIndex = fds.count
            let scrapers = Array(metrics?.clients.keys ?? [:].keys)
            fds.append(pollfd(fd: metrics?.accepting == true ? metrics!.fd : -1, events: Int16(POLLIN), revents: 0))
            fds += scrapers.map { pollfd(fd: $0, events: metrics!.events(of: $0), revents: 0) }
            let rc = poll(&fds, nfds_t(fds.count), pollTimeout(now: now))
            if rc < 0 {
                if errno == EINTR { continue }
                throw SystemError("poll", while: "waiting in the master loop")
            }
            // Accepts, status and metrics requests and reclaims read or write slots: pages to drop again later.
            if rc > 0 { recordPagesTouched = true }
            if fds[0].revents != 0 { handleSignals() }
            if fds[1].revents != 0 { readMasterInbox() }
            if fds[2].revents != 0 { acceptConnections() }
            if fds[3].revents != 0 { control?.acceptClients(now: Clock.monotonicNanoseconds()) }
            for (index, client) in clients.enumerated() where fds[4 + index].revents != 0 {
                handleControl(client: client)
            }
            if fds[metricsIndex].revents != 0 { metrics?.acceptClients(now: Clock.monotonicNanoseconds()) }
            for (index, scraper) in scrapers.enumerated() where fds[metricsIndex + 1 + index].revents != 0 {
                serveMetrics(scraper)
            }
        }
    }

    /// Milliseconds until the next timed duty: a respawn, the end of an accept pause, a health check, or the stop
    /// deadline.
    private func pollTimeout(now: UInt64) -> Int32 {
        var next: UInt64 = now + 1_000_000_000
        if let deadline = supervisor.nextDeadline { next = min(next, deadline) }
        if acceptPausedUntil > now { next = min(next, acceptPausedUntil) }
        if recordPagesTouched { next = min(next, recordPagesDroppedAt + Self.recordPagesInterval) }
        return Int32(clamping: (next > now ? next - now : 0) / 1_000_000 + 1)
    }

    /// How long the master keeps the registry pages it touched mapped before dropping them again.
    static let recordPagesInterval: UInt64 = 200_000_000

    /// Gives back the master's mappings of the registry's per-connection pages once the loop has touched them and
    /// `recordPagesInterval` has passed (`SharedRegistry.dropMappedRecordPages`): every page of slots would
    /// otherwise count in the master's RSS as well as in the owning worker's. While accepting at full speed this
    /// costs a minor fault per 32 slots five times a second; idle, nothing.
    private func dropRecordPagesIfDue(now: UInt64) {
        guard recordPagesTouched, now >= recordPagesDroppedAt + Self.recordPagesInterval, let registry else { return }
        recordPagesTouched = false
        recordPagesDroppedAt = now
        if !registry.dropMappedRecordPages() {
            logger.debug(
                "cannot give back the master's mappings of the registry's connection pages (madvise): they count in its RSS until the next try",
                metadata: ["errno": "\(errno)"])
        }
    }

    private func handleSignals() {
        while let sig = signals.next() {
            switch sig {
            case SIGCHLD: reapChildren()
            case SIGTERM, SIGINT:
                let reason = sig == SIGTERM ? "SIGTERM" : "SIGINT"
                perform(supervisor.handle(.stopRequested(reason: reason, now: Clock.monotonicNanoseconds())))
            case SIGUSR1: perform(supervisor.handle(.reloadRequested(now: Clock.monotonicNanoseconds())))
            case SIGUSR2:
                perform(supervisor.handle(.reloadRequested(now: Clock.monotonicNanoseconds(), dropConnections: true)))
            case SIGHUP: reopenLogs(trigger: "SIGHUP")
            default: logger.info("signal ignored", metadata: ["signal": "\(sig)"])
            }
        }
    }

    private func readMasterInbox() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let received: (IPCMessage, descriptor: Int32)?
            do {
                received = try masterInbox.receive.receive(blocking: false, buffer: buffer)
            } catch {
                logger.warning("unreadable message on the master's inbox", metadata: ["error": "\(error)"])
                continue
            }
            guard let (message, _) = received else { return }
            switch message {
            case .ready(let id, let workerPID) where id < workers.count && supervisor.workers[id].pid == workerPID:
                perform(supervisor.handle(.ready(worker: id, pid: workerPID, now: Clock.monotonicNanoseconds())))
            case .retired(let id, let workerPID) where id < workers.count:
                perform(supervisor.handle(.retired(worker: id, pid: workerPID, now: Clock.monotonicNanoseconds())))
            case .healthy(let id, let workerPID, let sequence):
                let now = Clock.monotonicNanoseconds()
                perform(supervisor.handle(.answered(worker: id, pid: workerPID, sequence: sequence, now: now)))
            default:
                logger.debug("unexpected record on the master's inbox", metadata: ["record": "\(message)"])
            }
        }
    }

    /// The `STATUS=` line a service manager shows (`systemctl status`) while the master serves.
    var servingStatus: String {
        "STATUS=Serving http://\(configuration.listenDescription) with \(workers.count) workers"
    }

    func notifyServiceManager(_ fields: [String]) {
        notifier?.notify(fields, logger: logger)
    }

    static func threadCount() -> Int {
        guard let dir = opendir("/proc/self/task") else { return 1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { count += 1 }
        }
        return count
    }
}
