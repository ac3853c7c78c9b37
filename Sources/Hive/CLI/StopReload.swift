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

/// `hive reload`: SIGUSR1 to the master (a rolling restart, one worker at a time, from the executable on disk),
/// then wait until every worker runs in a new process.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Restart every worker, one at a time, without downtime.")

    @OptionGroup var target: RunDirOptions

    @Option(help: "Seconds to wait for every worker to be replaced.")
    var timeout: Double = 30

    func run() throws {
        try runReporting {
            let pid = try target.requireMaster()
            let registry = try MasterFacts(client: ControlClient(runDirectory: target.runDirectory)).registry
            let before = (0..<registry.workerCount).map { registry.worker($0, .pid).load(ordering: .relaxed) }
            guard kill(pid, SIGUSR1) == 0 else { throw SystemError("kill", while: "signalling master \(pid)") }
            let deadline = Date().addingTimeInterval(timeout)
            while true {
                let now = (0..<registry.workerCount).map { registry.worker($0, .pid).load(ordering: .relaxed) }
                let running = (0..<registry.workerCount).allSatisfy {
                    registry.worker($0, .state).load(ordering: .relaxed) == WorkerState.running.rawValue
                }
                if running && zip(before, now).allSatisfy({ $0 != $1 && $1 != 0 }) {
                    print("reloaded: " + now.enumerated().map { "worker \($0.offset) pid \($0.element)" }.joined(separator: ", "))
                    return
                }
                if Date() > deadline {
                    throw OperatorError("workers were not all replaced within \(Int(timeout)) s; see `hive status` and the master's log")
                }
                usleep(20_000)
            }
        }
    }
}
