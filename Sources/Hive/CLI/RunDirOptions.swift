import ArgumentParser
import HiveMaster

/// How the operator commands find a master: its run dir, given directly or derived from the port.
struct RunDirOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Run dir of the master (default: hive-<port> in /run/hive for root, else in "
        + "$XDG_RUNTIME_DIR or $TMPDIR or /tmp)."))
    var runDir: String?

    @Option(help: "Port of the master, used to find its default run dir.")
    var port: Int = 9501

    var runDirectory: RunDirectory { RunDirectory(path: runDir ?? RunDirectory.defaultPath(port: port)) }

    func validate() throws {
        if port == 0 && runDir == nil {
            throw ValidationError("--port 0 names no master: `hive start --port 0` listens on a free port, which its "
                + "ready line shows; give that port, or --run-dir")
        }
    }

    /// The pid of the running master, or a clear error (exit status 1). A run dir another user could write to is
    /// refused before its pid file is read: a planted pid would make `stop` signal someone else's process.
    func requireMaster() throws -> Int32 {
        try runDirectory.check()
        guard let pid = runDirectory.runningMasterPID() else {
            throw OperatorError("no Hive master is running for run dir \(runDirectory.path) (start one with "
                + "`hive start`, or pass --run-dir / --port of the one you mean)")
        }
        return pid
    }
}

/// An operator command failed: one line, exit status 1.
struct OperatorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

