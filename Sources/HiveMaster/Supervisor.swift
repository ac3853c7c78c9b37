import HiveIPC

/// Worker supervision as a state machine without I/O: events in (a child exited, a record arrived, a signal asked
/// for a reload or a stop, the clock ticked), actions out (spawn, signal, send, reclaim slots, log). `MasterLoop`
/// turns what the kernel says into `Event`s and performs the `Action`s, feeding back the outcome of those that can
/// fail (`spawned`/`spawnFailed`, `retireRefused`). Time is passed in (monotonic ns), so the slow and racy cases — a
/// worker dying during a reload, a replacement that never becomes ready, a stop during a reload, back-off growth —
/// are tested with a fake clock (`SupervisorTests`).
///
/// The states, events and actions, with a diagram: Docs/ARCHITECTURE.md, "Worker supervision".
struct Supervisor {
    enum Event: Equatable {
        /// The clock: respawns, reload and stop deadlines, health checks.
        case tick(now: UInt64)
        /// The `spawn` action's outcome.
        case spawned(worker: Int, pid: Int32, now: UInt64)
        case spawnFailed(worker: Int, error: String, now: UInt64)
        /// waitpid reported a child (raw wait status).
        case exited(pid: Int32, status: Int32, now: UInt64)
        case ready(worker: Int, pid: Int32, now: UInt64)
        case retired(worker: Int, pid: Int32, now: UInt64)
        /// The `retire` record could not be put into the worker's inbox.
        case retireRefused(worker: Int, now: UInt64)
        case answered(worker: Int, pid: Int32, sequence: UInt64, now: UInt64)
        /// SIGUSR1 hands every connection to the replacements; SIGUSR2 (`hive reload --drop`) closes them with 1012.
        case reloadRequested(now: UInt64, dropConnections: Bool = false)
        case stopRequested(reason: String, now: UInt64)
    }

    /// `handOver` (SIGUSR2) asks a retired worker to hand its connections to its ready replacement.
    enum Signal: Equatable { case terminate, kill, handOver }

    /// What the master tells the operator, the service manager and the log when a phase of its life begins or
    /// ends (the wording lives in `MasterLoop`).
    enum Announcement: Equatable {
        case ready
        case reloading
        case reloadAlreadyInProgress
        case reloadComplete
        case stopping(reason: String)
    }

    enum Action: Equatable {
        /// Start a process for this worker id; the outcome comes back as `spawned` or `spawnFailed`.
        case spawn(worker: Int)
        case signal(pid: Int32, Signal)
        /// A record into the worker's inbox, never blocking (a `retire` that does not fit comes back as
        /// `retireRefused`).
        case send(worker: Int, IPCMessage)
        /// Free the registry slots a dead process held; the count goes into the next `log` that asks for it.
        case reclaimSlots(worker: Int, pid: Int32, includeReserved: Bool)
        /// Close what was queued for a dead worker.
        case drainInbox(worker: Int)
        /// Mirror into the registry's worker record.
        case publishState(worker: Int, WorkerState)
        case publishExit(worker: Int, status: Int32)
        /// Close the listening socket (a stop began).
        case stopAccepting
        case announce(Announcement)
        case say(String)
        case log(LogLine)
    }

    struct LogLine: Equatable {
        enum Level: Equatable { case debug, info, notice, warning, error }
        var level: Level
        var message: String
        var metadata: [String: String] = [:]
        /// When set, the performer adds the count of the last `reclaimSlots` under this key.
        var reclaimedKey: String? = nil

        init(_ level: Level, _ message: String, _ metadata: [String: String] = [:], reclaimedKey: String? = nil) {
            self.level = level
            self.message = message
            self.metadata = metadata
            self.reclaimedKey = reclaimedKey
        }
    }

    struct Worker: Equatable {
        var pid: Int32 = 0
        var state: WorkerState = .none
        var startedAt: UInt64 = 0
        var restarts: UInt64 = 0
        /// Crashes without a long enough life in between, for the respawn back-off.
        var quickCrashes = 0
        /// Monotonic ns at which a dead worker is started again (0: not waiting).
        var respawnAt: UInt64 = 0

        var isServing: Bool { state == .running && pid > 0 }
    }

    static let retireTimeout: UInt64 = 5_000_000_000
    static let startTimeout: UInt64 = 15_000_000_000
    /// How long a retired worker may take to hand its connections over (its own bound is 10 s) before the
    /// `--grace` of an ordinary retired process begins.
    static let handOverTimeout: UInt64 = 12_000_000_000
    /// A worker that lived this long before dying starts the back-off afresh.
    static let stableLife: UInt64 = 10_000_000_000

    // Changed only by `handle` (the step functions live in the Supervisor+*.swift files, so these are not private).
    var workers: [Worker]
    var reload: ReloadPlan?
    /// Old worker processes that retired during a reload and still serve the connections they held.
    var retiring: [Int32: (id: Int, killAt: UInt64?)] = [:]
    var stopDeadline: UInt64?
    var announcedReady = false
    var health: WorkerHealth
    /// Nanoseconds a stopping worker gets before SIGKILL; seconds as the operator wrote them, for messages.
    let grace: Double
    let workerTimeout: Double

    init(workers: Int, grace: Double, workerTimeout: Double) {
        self.workers = Array(repeating: Worker(), count: workers)
        self.grace = grace
        self.workerTimeout = workerTimeout
        self.health = WorkerHealth(workers: workers, timeout: UInt64(workerTimeout * 1e9))
    }

    var isReloading: Bool { reload != nil }
    var isStopping: Bool { stopDeadline != nil }
    /// Stopping, and no process is left.
    var isFinished: Bool { stopDeadline != nil && workers.allSatisfy { $0.pid == 0 } && retiring.isEmpty }
    /// Every live worker process, retired ones included.
    var livePIDs: [Int32] { workers.map(\.pid).filter { $0 > 0 } + Array(retiring.keys) }

    /// Monotonic ns of the next timed duty (respawn, health check, reload step or stop deadline), if any.
    var nextDeadline: UInt64? {
        var next: UInt64?
        func consider(_ time: UInt64) { next = min(next ?? time, time) }
        if stopDeadline == nil { consider(health.nextTick) }
        for worker in workers where worker.respawnAt > 0 { consider(worker.respawnAt) }
        if let stopDeadline { consider(stopDeadline) }
        if let current = reload?.current {
            switch current.phase {
            case .retiring(let deadline), .starting(_, let deadline): consider(deadline)
            }
        }
        for entry in retiring.values { if let killAt = entry.killAt { consider(killAt) } }
        return next
    }

    mutating func handle(_ event: Event) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .tick(let now): tick(now: now, into: &actions)
        case .spawned(let id, let pid, let now): spawned(id, pid: pid, now: now, into: &actions)
        case .spawnFailed(let id, let error, let now): spawnFailed(id, error: error, now: now, into: &actions)
        case .exited(let pid, let status, let now): exited(pid: pid, status: status, now: now, into: &actions)
        case .ready(let id, let pid, let now): ready(id, pid: pid, now: now, into: &actions)
        case .retired(let id, let pid, let now): retired(id, pid: pid, now: now, into: &actions)
        case .retireRefused(let id, let now): retireRefused(id, now: now, into: &actions)
        case .answered(let id, let pid, let sequence, let now):
            answered(id, pid: pid, sequence: sequence, now: now, into: &actions)
        case .reloadRequested(let now, let drop): beginReload(now: now, dropConnections: drop, into: &actions)
        case .stopRequested(let reason, let now): beginStop(reason: reason, now: now, into: &actions)
        }
        return actions
    }

    mutating func setState(_ state: WorkerState, of id: Int, into actions: inout [Action]) {
        workers[id].state = state
        actions.append(.publishState(worker: id, state))
    }

    private mutating func tick(now: UInt64, into actions: inout [Action]) {
        if let deadline = stopDeadline, now >= deadline, !isFinished { killRemaining(now: now, into: &actions) }
        respawnDue(now: now, into: &actions)
        checkReloadDeadlines(now: now, into: &actions)
        if stopDeadline == nil && now >= health.nextTick { checkHealth(now: now, into: &actions) }
    }
}

extension [Supervisor.Action] {
    mutating func log(
        _ level: Supervisor.LogLine.Level, _ message: String, _ metadata: [String: String] = [:],
        reclaimedKey: String? = nil
    ) {
        append(.log(Supervisor.LogLine(level, message, metadata, reclaimedKey: reclaimedKey)))
    }
}
