import HiveIPC

#if canImport(Glibc)
import Glibc
#endif

/// The master's private record of one worker id. Mirrored into the registry's worker records for readers.
struct WorkerEntry {
    let id: Int
    /// The worker's inbox. The master keeps both ends for the master's whole life: the receiving end survives a
    /// worker's death so its replacement inherits the same inbox, and every other worker's sending end stays
    /// valid across respawns.
    let inbox: (receive: RecordChannel, send: RecordChannel)
    var pid: pid_t = 0
    var state: WorkerState = .none
    var startedAt: UInt64 = 0
    var restarts: UInt64 = 0
    /// Crashes without a long enough life in between, for the respawn back-off.
    var quickCrashes = 0
    /// Monotonic ns at which a dead worker is started again (0: not waiting).
    var respawnAt: UInt64 = 0
    /// Monotonic ns until which the dispatcher passes it over: set to a second ahead when its inbox refused a
    /// connection.
    var busyUntil: UInt64 = 0

    var isServing: Bool { state == .running && pid > 0 }
}
