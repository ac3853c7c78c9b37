import HiveIPC

#if canImport(Glibc)
import Glibc
#endif

/// The master's descriptors and dispatch state for one worker id. (Its process and state: `Supervisor.Worker`.)
struct WorkerEntry {
    let id: Int
    /// The worker's inbox. The master keeps both ends for the master's whole life: the receiving end survives a
    /// worker's death so its replacement inherits the same inbox, and every other worker's sending end stays
    /// valid across respawns.
    let inbox: (receive: RecordChannel, send: RecordChannel)
    /// Monotonic ns until which the dispatcher passes it over: set to a second ahead when its inbox refused a
    /// connection.
    var busyUntil: UInt64 = 0
}
