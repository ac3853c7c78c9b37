import ArgumentParser

/// `hive reopen-logs`: after logrotate renamed a `--daemon` master's log file, the master and every worker open the
/// path again (the same as SIGHUP to the master). Asked over the control socket, so the answer says whether it worked.
struct ReopenLogs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reopen-logs", abstract: "Reopen the --log-file of a --daemon master (after log rotation)."
    )

    @OptionGroup var target: RunDirOptions

    func run() throws {
        try runReporting {
            _ = try target.requireMaster()
            let reply = try ControlClient(runDirectory: target.runDirectory).request("reopen-logs")
            try printReply(reply.text)
        }
    }
}
