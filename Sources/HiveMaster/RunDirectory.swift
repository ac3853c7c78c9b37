import HiveIPC

#if canImport(Glibc)
import Glibc
#endif

/// The folder holding the pid file, the control socket and a daemon's log of one master. Only its user may write
/// in it (see `PrivatePath`): whoever can replace `hive.sock` or `hive.pid` can take over the operator's commands.
package struct RunDirectory: Sendable {
    package let path: String
    package var pidFile: String { path + "/hive.pid" }
    package var controlSocket: String { path + "/hive.sock" }

    package init(path: String) { self.path = path }

    /// Root's run dirs live under this folder, which only root can write.
    package static let systemParent = "/run/hive"

    /// The default: one folder per port, so two instances on different ports never collide, in a place other users
    /// cannot write: `/run/hive` for root, `$XDG_RUNTIME_DIR` (the user's private runtime folder) for others, else
    /// the temp dir, whose sticky bit stops others from removing or renaming a folder there once it exists.
    package static func defaultPath(port: Int) -> String {
        defaultPath(port: port, user: geteuid(), environment: { getenv($0).map { String(cString: $0) } })
    }

    static func defaultPath(port: Int, user: uid_t, environment: (String) -> String?) -> String {
        func usable(_ name: String) -> String? { environment(name).flatMap { $0.hasPrefix("/") ? $0 : nil } }
        let parent = user == 0 ? systemParent : usable("XDG_RUNTIME_DIR") ?? usable("TMPDIR") ?? "/tmp"
        return "\(parent)/hive-\(port)"
    }

    /// Refuses a run dir someone else could write to; the master and every operator command call this before they
    /// trust anything in it. Returns whether the folder exists.
    @discardableResult
    package func check() throws -> Bool {
        try PrivatePath.checkParent(of: path, name: "run dir", remedy: "choose another --run-dir")
        let remedy = "remove it or choose another --run-dir"
        return try PrivatePath.check(path, is: .directory, name: "run dir", remedy: remedy)
    }

    /// Refuses a control socket that is not this user's, before anything is sent to it.
    package func checkControlSocket() throws {
        try PrivatePath.check(
            controlSocket, is: .socket, name: "control socket",
            remedy: "nothing was sent; stop the master, remove the socket and start it again"
        )
    }

    /// Creates the folder (0700, and `/run/hive` for root's default) if it is missing, then checks it.
    package func prepare() throws {
        if path.hasPrefix(Self.systemParent + "/"), geteuid() == 0 {
            // 0755 as other daemons' folders in /run: the run dirs inside are 0700 themselves.
            if mkdir(Self.systemParent, 0o755) != 0 && errno != EEXIST {
                throw MasterError.runDirectory(
                    path: path, underlying: SystemError("mkdir", while: "creating \(Self.systemParent)")
                )
            }
            try PrivatePath.check(
                Self.systemParent, is: .directory, name: "folder",
                remedy: "only root may write there; fix its owner and mode, or choose another --run-dir"
            )
        }
        try PrivatePath.checkParent(of: path, name: "run dir", remedy: "choose another --run-dir")
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw MasterError.runDirectory(path: path, underlying: SystemError("mkdir", while: "creating the run dir"))
        }
        try check()
    }

    /// The pid of a live Hive master recorded here, or nil when there is none. A pid file whose process is gone,
    /// or whose pid now belongs to another program, is stale and not trusted (workerman's checkMasterIsAlive).
    package func runningMasterPID() -> Int32? {
        guard let text = Self.read(pidFile),
            let pid = Int32(text.trimmingCharacters(in: " \n")), pid > 0
        else { return nil }
        guard kill(pid, 0) == 0 || errno == EPERM else { return nil }
        guard let cmdline = Self.read("/proc/\(pid)/cmdline"), cmdline.contains("hive") else { return nil }
        return pid
    }

    /// Creates the folder (0700) and records this process as its master.
    func claim(pid: Int32) throws {
        try prepare()
        if let other = runningMasterPID(), other != pid {
            throw MasterError.alreadyRunning(runDirectory: path, pid: other)
        }
        let temporary = pidFile + ".tmp"
        let text = "\(pid)\n"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw MasterError.runDirectory(path: path, underlying: SystemError("open", while: "writing \(temporary)"))
        }
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        guard rename(temporary, pidFile) == 0 else {
            throw MasterError.runDirectory(path: path, underlying: SystemError("rename", while: "writing \(pidFile)"))
        }
    }

    /// Removes the pid file if it still names `pid` (a newer master may own the folder by now).
    func release(pid: Int32) {
        if let text = Self.read(pidFile), Int32(text.trimmingCharacters(in: " \n")) == pid {
            unlink(pidFile)
        }
    }

    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        // /proc/<pid>/cmdline separates arguments with NUL.
        return String(decoding: bytes.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
