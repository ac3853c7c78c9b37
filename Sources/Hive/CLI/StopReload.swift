import ArgumentParser
import Foundation
import HiveIPC

#if canImport(Glibc)
import Glibc
#endif

/// `hive stop`: SIGTERM to the master found through the pid file, then wait until it is gone.
struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the master gracefully and wait for it to exit.")

    @OptionGroup var target: RunDirOptions

    @Option(help: "Seconds to wait for the master to exit.")
    var timeout: Double = 15

    func run() throws {
        try runReporting {
            let pid = try target.requireMaster()
            guard kill(pid, SIGTERM) == 0 else { throw SystemError("kill", while: "signalling master \(pid)") }
            let deadline = Date().addingTimeInterval(timeout)
            while kill(pid, 0) == 0 {
                if Date() > deadline {
                    throw OperatorError("master \(pid) is still running \(Int(timeout)) s after SIGTERM; look at its log, "
                        + "or `kill -9 \(pid)` as a last resort")
                }
                usleep(20_000)
            }
            print("stopped master \(pid)")
        }
    }
}

/// `hive reload`: SIGUSR1 to the master (a rolling restart, one worker at a time, from the executable on disk; each
/// old worker hands its WebSocket connections to its replacement), or SIGUSR2 with `--drop` (the old workers close
/// them with 1012 instead), then wait until every worker runs in a new process and every old one is gone.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Restart every worker, one at a time, without downtime.")

    @OptionGroup var target: RunDirOptions

    @Option(help: "Seconds to wait for every worker to be replaced.")
    var timeout: Double = 30

    @Flag(help: "Close WebSocket connections with 1012 (Service Restart) instead of handing them to the new workers.")
    var drop = false

    func run() throws {
        try runReporting {
            let pid = try target.requireMaster()
            let registry = try MasterFacts(client: ControlClient(runDirectory: target.runDirectory)).registry
            let workers = 0..<registry.workerCount
            let before = workers.map { Int32(truncatingIfNeeded: registry.worker($0, .pid).load(ordering: .relaxed)) }
            let restarts = workers.map { registry.worker($0, .restarts).load(ordering: .relaxed) }
            guard kill(pid, drop ? SIGUSR2 : SIGUSR1) == 0 else {
                throw SystemError("kill", while: "signalling master \(pid)")
            }
            let deadline = Date().addingTimeInterval(timeout)
            var now: [Int32] = []
            // The new processes seen on the way: one that is gone at the end was a replacement that died.
            var seen = workers.map { _ in Set<Int32>() }
            while true {
                now = workers.map { Int32(truncatingIfNeeded: registry.worker($0, .pid).load(ordering: .relaxed)) }
                for id in workers where now[id] > 0 && now[id] != before[id] { seen[id].insert(now[id]) }
                let running = workers.allSatisfy {
                    registry.worker($0, .state).load(ordering: .relaxed) == WorkerState.running.rawValue
                }
                // The old processes are gone once they handed over (or closed) their connections.
                let oldGone = before.allSatisfy { $0 <= 0 || kill($0, 0) != 0 }
                if running && oldGone && zip(before, now).allSatisfy({ $0 != $1 && $1 != 0 }) { break }
                if Date() > deadline {
                    throw OperatorError("workers were not all replaced within \(Int(timeout)) s; see `hive status` and the master's log")
                }
                usleep(20_000)
            }
            // A replacement that died meanwhile (killed during its hand-over, say) was restarted: the reload worked
            // around it, but the operator must know. (An old process the reload itself killed, because it did not
            // retire in time, is what a reload is for: not a failure.)
            let died = workers.filter { id in
                registry.worker(id, .restarts).load(ordering: .relaxed) != restarts[id]
                    && seen[id].contains { $0 != now[id] }
            }
            if !died.isEmpty {
                let exits = died.map { id -> String in
                    let status = Int32(truncatingIfNeeded: registry.worker(id, .lastExitStatus).load(ordering: .relaxed))
                    let how = status & 0x7F != 0 ? "signal \(status & 0x7F)" : "status \((status >> 8) & 0xFF)"
                    return "worker \(id) (exit \(how))"
                }
                throw OperatorError("the reload replaced every worker, but a worker process died during it: "
                    + exits.joined(separator: ", ") + "; connections it held were lost, those not yet handed over stayed "
                    + "with the old process until it closed them with 1012; see the master's log")
            }
            print("reloaded: " + now.enumerated().map { "worker \($0.offset) pid \($0.element)" }.joined(separator: ", "))
        }
    }
}
