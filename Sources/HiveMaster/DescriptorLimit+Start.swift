import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

extension DescriptorLimit {
    /// At `hive start`, before any worker is spawned (they inherit it): the soft limit up to the hard limit, said in
    /// the log, and a notice when `--max-connections` over `--workers` would not fit under it.
    package static func raiseForWorkers(maxConnections: Int, workers: Int, logger: Logger) {
        let (before, after, error) = raiseToHard()
        if let error {
            logger.warning(
                "cannot raise the descriptor limit (RLIMIT_NOFILE) from \(before.soft) to the hard limit \(before.hard)",
                metadata: ["error": "\(SystemError("setrlimit", while: "raising RLIMIT_NOFILE at start", errno: error))", "hint": "each worker can hold about \(before.connectionsPerWorker) connections; raise `ulimit -n` before starting hive"]
            )
        } else if after.soft > before.soft {
            logger.info("raised the descriptor limit (RLIMIT_NOFILE) from \(before.soft) to the hard limit \(after.hard) for the workers")
        }
        if let shortfall = after.shortfall(maxConnections: maxConnections, workers: workers) {
            logger.notice("\(shortfall)")
        }
    }
}
