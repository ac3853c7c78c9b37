import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

// Log rotation (SIGHUP, `hive reopen-logs`): the master reopens `--log-file` onto its fds 1 and 2, then passes
// SIGHUP on to every worker process, which does the same on its own sigwait thread (WorkerProcess).
extension MasterLoop {
    /// Returns the control socket's reply: `ok …` or `error <sentence>`.
    @discardableResult
    func reopenLogs(trigger: String) -> String {
        guard let path = configuration.logFile else {
            logger.info("no log file to reopen (the master was not started with --daemon); ignored", metadata: ["trigger": "\(trigger)"])
            return "error this master writes to the stdout and stderr it was started with (it was not started with "
                + "--daemon), so there is no log file to reopen; rotate that output where it goes (journald, a pipe)"
        }
        do {
            try LogFile.reopen(path)
        } catch {
            logger.error("cannot reopen the log file; still writing to the old one", metadata: [
                "path": "\(path)", "error": "\(error)", "hint": "check the folder exists and this user may create files in it",
            ])
            return "error cannot reopen \(path): \(error); the master still writes to the old file"
        }
        // Workers still starting have SIGHUP blocked from their spawn on, so it waits for their sigwait loop.
        let pids = supervisor.livePIDs
        for pid in pids { kill(pid, SIGHUP) }
        logger.notice("log file reopened", metadata: ["path": "\(path)", "trigger": "\(trigger)", "workers": "\(pids.count)"])
        return "ok reopened \(path) in the master and asked its \(pids.count) worker processes to reopen it"
    }
}
