import HiveIPC

#if canImport(Glibc)
import Glibc
#endif

/// The folder holding the pid file (and, later, the control socket) of one master.
public struct RunDirectory: Sendable {
    public let path: String
    public var pidFile: String { path + "/hive.pid" }
    public var controlSocket: String { path + "/hive.sock" }

    public init(path: String) { self.path = path }

    /// The default: one folder per port under the system temp dir, so two instances on different ports never
    /// collide.
    public static func defaultPath(port: Int) -> String {
        let tmp = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        return "\(tmp)/hive-\(port)"
    }

    /// The pid of a live Hive master recorded here, or nil when there is none. A pid file whose process is gone,
    /// or whose pid now belongs to another program, is stale and not trusted (workerman's checkMasterIsAlive).
    public func runningMasterPID() -> Int32? {
        guard let text = Self.read(pidFile),
            let pid = Int32(text.trimmingCharacters(in: " \n")), pid > 0
        else { return nil }
        guard kill(pid, 0) == 0 || errno == EPERM else { return nil }
        guard let cmdline = Self.read("/proc/\(pid)/cmdline"), cmdline.contains("hive") else { return nil }
        return pid
    }

    /// Creates the folder (0700) and records this process as its master.
    func claim(pid: Int32) throws {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw MasterError.runDirectory(path: path, underlying: SystemError("mkdir", while: "creating the run dir"))
        }
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
        let fd = open(path, O_RDONLY | O_CLOEXEC)
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
