import Foundation
import HiveIPC

#if canImport(Glibc)
import Glibc
#endif

/// `start --daemon`: the command forks before the master exists (this process is single-threaded here), the child
/// detaches (new session, stdio to the log file) and becomes the master; the parent waits on a pipe for the
/// child's `ready` line or its start error, prints it, and exits 0 or 1. `hive stop/reload/status` then find the
/// master through the pid file in its run dir.
enum Daemon {
    /// Returns, in the detached child, the descriptor to announce readiness on. The parent never returns.
    /// `keeping`: a descriptor the child keeps open (the listener of `--port 0`, bound before the detach); -1: none.
    static func detach(logFile: String, keeping: Int32 = -1) throws -> Int32 {
        let log = try LogFile.open(logFile)
        var pipeFDs: [Int32] = [-1, -1]
        try syscall("pipe", while: "preparing to detach") { pipe(&pipeFDs) }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }  // workers must not inherit it
        fflush(nil)  // nothing buffered may be written twice
        let child = fork()
        if child < 0 { throw SystemError("fork", while: "detaching the master") }
        if child > 0 {
            close(pipeFDs[1])
            var text: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(pipeFDs[0], &chunk, chunk.count)
                if n <= 0 { break }
                text += chunk[0..<n]
            }
            let message = String(decoding: text, as: UTF8.self).trimmingCharacters(in: .newlines)
            if message.contains(" ready ") || message.hasPrefix("hive: ready") {
                writeLine(message + " (detached; log \(logFile))")
                exit(0)
            }
            writeLine(message.isEmpty ? "hive: error: the detached master exited before it was ready; see \(logFile)" : message, to: 2)
            exit(1)
        }
        close(pipeFDs[0])
        setsid()
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        dup2(null, 0)
        dup2(log, 1)
        dup2(log, 2)
        close(null)
        close(log)
        // A daemon keeps nothing its launcher gave it: an inherited pipe would keep the launcher's reader waiting.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        for fd in 3..<Int32(min(limit.rlim_cur, 65_536)) where fd != pipeFDs[1] && fd != keeping { close(fd) }
        return pipeFDs[1]
    }

    /// `path` made absolute against the working directory (unchanged if it already is).
    static func absolutePath(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}
