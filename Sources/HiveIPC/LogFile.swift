#if canImport(Glibc)
import Glibc
#endif

/// The log file of a `--daemon` master and its workers: stdout and stderr point at it. logrotate renames the file
/// and asks for a reopen (SIGHUP, `hive reopen-logs`); every process then opens the path again and moves fds 1 and 2
/// onto the new file, so nothing keeps writing into the renamed one.
package enum LogFile {
    /// Opens `path` for appending (created 0644 if missing), close-on-exec: the caller decides where it goes.
    package static func open(_ path: String) throws -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError("open", while: "opening the log file \(path)") }
        return fd
    }

    /// Opens `path` again and puts it on fds 1 and 2. On failure the old file stays in place (a log that keeps
    /// going to the renamed file beats no log at all).
    package static func reopen(_ path: String) throws {
        let fd = try open(path)
        defer { close(fd) }
        // dup2 clears close-on-exec on 1 and 2, as a process's stdio must be.
        for target: Int32 in [1, 2] {
            guard dup2(fd, target) >= 0 else {
                throw SystemError("dup2", while: "moving fd \(target) onto the reopened log file \(path)")
            }
        }
    }
}
