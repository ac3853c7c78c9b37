import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `hive-bench reload` (issue 12): the paced fan-out of `fanout` twice on fresh clients, first without reloads (the
/// baseline), then with `SIGUSR1` (`hive reload`) to the master every `--reload-every` seconds while it publishes.
/// Every delivery must arrive once, in order, and no client may be closed; the two p99 latencies side by side.
struct ReloadOptions: Sendable {
    var fanout: FanoutOptions
    var masterPID: Int32
    var every = 2.0
    var baseline = true
    /// `hive reload --drop` (SIGUSR2) instead: clients are closed with 1012, so the run must report them (the
    /// check of the checker).
    var drop = false

    init(_ args: Arguments) throws {
        var fanout = try FanoutOptions(args)
        if !args.has("clients") { fanout.clients = 10_000 }
        if !args.has("processes") { fanout.processes = max(1, (fanout.clients + 9_999) / 10_000) }
        if !args.has("rate") { fanout.rate = 20 }
        let seconds = try args.double("seconds", default: 20)
        if !args.has("messages") { fanout.messages = max(1, Int((seconds * (fanout.rate ?? 20)).rounded())) }
        if !args.has("drain") { fanout.drainSeconds = 20 }
        try fanout.validate()
        self.fanout = fanout
        guard let master = try args.pids("master-pid").first else {
            throw Arguments.UsageError(description: "reload needs --master-pid: the hive master to send SIGUSR1 (hive reload)")
        }
        masterPID = master
        every = try args.double("reload-every", default: every)
        guard every > 0 else { throw Arguments.UsageError(description: "--reload-every must be > 0 seconds") }
        baseline = !args.flag("no-baseline")
        drop = args.flag("drop")
    }
}

struct ReloadReport: Codable, Sendable {
    var scenario = "reload"
    var reloadEverySeconds = 0.0
    /// SIGUSR1s sent while publishing (one that comes while a reload runs is ignored by the master).
    var reloadsSignalled = 0
    /// Worker processes that appeared during the reloading run: 2 per completed reload of 2 workers.
    var workerProcessesStarted = 0
    var baseline: FanoutReport?
    var reloading = FanoutReport()
    var lost: UInt64 = 0
    var duplicated: UInt64 = 0
    var p99BaselineUs: Double?
    var p99ReloadingUs: Double?
    var problems: [String] = []
    var ok = false
}

/// Sends SIGUSR1 to the master every `every` seconds on its own thread, and counts the worker processes it sees
/// start (children of the master that were not there before).
final class Reloader: @unchecked Sendable {
    // @unchecked: the counters and `running` are guarded by `lock`.
    private let lock = NSLock()
    private var running = true
    private var signalled = 0
    private var started = 0
    private let done = DispatchSemaphore(value: 0)

    init(master: Int32, every: Double, signal: Int32) {
        Thread {
            defer { self.done.signal() }
            var known = Set(ProcFS.children(of: master))
            var next = Clock.now() + UInt64(every * 1e9)
            while self.lock.withLock({ self.running }) {
                Clock.sleep(seconds: 0.05)
                let now = Set(ProcFS.children(of: master))
                let fresh = now.subtracting(known).count
                known.formUnion(now)
                if Clock.now() >= next {
                    kill(master, signal)
                    next += UInt64(every * 1e9)
                    self.lock.withLock { self.signalled += 1 }
                }
                if fresh > 0 { self.lock.withLock { self.started += fresh } }
            }
        }.start()
    }

    /// Stops signalling; returns the signals sent and the worker processes seen starting.
    func stop() -> (signalled: Int, started: Int) {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { (signalled, started) }
    }
}

enum Reload {
    static func run(_ o: ReloadOptions) throws -> ReloadReport {
        var report = ReloadReport()
        report.reloadEverySeconds = o.every
        if o.baseline {
            var baseline = try Fanout.run(o.fanout)
            baseline.scenario = "reload-baseline"
            report.baseline = baseline
            report.p99BaselineUs = baseline.latency.p99Us
            if !baseline.ok { report.problems += baseline.problems.map { "baseline: \($0)" } }
        }
        var reloader: Reloader?
        var reloading = try Fanout.run(o.fanout, whilePublishing: (
            start: { reloader = Reloader(master: o.masterPID, every: o.every, signal: o.drop ? SIGUSR2 : SIGUSR1) },
            stop: {
                if let counts = reloader?.stop() {
                    report.reloadsSignalled = counts.signalled
                    report.workerProcessesStarted = counts.started
                }
            }
        ))
        reloading.scenario = "reload-reloading"
        report.reloading = reloading
        report.lost = reloading.lost
        report.duplicated = reloading.duplicated
        report.p99ReloadingUs = reloading.latency.p99Us
        // While worker 0's Redis subscription moves, the old and the new worker 0 are both subscribed for a moment
        // (RedisSplice): a PUBLISH then reaches 2. Anything else is a problem.
        let publish = reloading.publish
        report.problems += reloading.problems.filter { !$0.hasPrefix("PUBLISH reached") || publish.receiversMin < 1 || publish.receiversMax > 2 }
            .map { "while reloading: \($0)" }
        if report.workerProcessesStarted == 0 {
            report.problems.append("no worker process was replaced: did SIGUSR1 reach the hive master \(o.masterPID)?")
        }
        report.ok = report.problems.isEmpty
        return report
    }

    static func text(_ r: ReloadReport) -> String {
        var lines = ["reload: a reload (SIGUSR1) every \(r.reloadEverySeconds) s while publishing; \(r.reloadsSignalled) signalled, \(r.workerProcessesStarted) worker processes started"]
        if let baseline = r.baseline { lines.append("  without reloads: \(Output.latencyLine(baseline.latency))") }
        lines.append("  with reloads:    \(Output.latencyLine(r.reloading.latency))")
        lines.append("  deliveries: \(r.reloading.deliveries)/\(r.reloading.expectedDeliveries), lost \(r.lost), duplicated \(r.duplicated), out of order \(r.reloading.outOfOrder), closed by the server \(r.reloading.closedDuringRun)")
        lines.append(r.ok ? "  ok" : "  PROBLEMS: " + r.problems.joined(separator: "; "))
        return lines.joined(separator: "\n")
    }
}
