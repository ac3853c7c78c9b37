#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The real `hive` binary, run as `hive start <arguments>` for one test or suite.
///
/// stdout and stderr go to one log file in a fresh temporary directory that is kept after the test, so a failure
/// can be read afterwards; errors thrown here carry the log's tail. Readiness is a log line containing the word
/// "ready", polled every 20 ms, never a fixed sleep (redis tests/support/server.tcl `wait_server_started`).
///
/// Only the pid started here is ever signalled. Workers are the server's business: they are expected to die with
/// the master (PR_SET_PDEATHSIG), which is itself something tests check.
///
/// `@unchecked Sendable`: the one mutable field, `process`, is guarded by `lock`; the rest is immutable (Foundation's
/// Process is itself thread-safe). This lets a suite keep one instance in a static and tear it down from any thread.
final class HiveProcess: @unchecked Sendable {
    let arguments: [String]
    let binary: URL
    /// Fresh per instance; the working directory of hive, so relative paths (e.g. a pid file) land here.
    let directory: URL
    let logURL: URL
    private let environment: [String: String]

    private let lock = NSLock()
    // Guarded by `lock`.
    private var process: Process?

    /// Prepares a launch; nothing runs until `start()`.
    /// - Parameters:
    ///   - arguments: what follows `hive start`, e.g. `["--port", "8080", "--workers", "2"]`.
    ///   - environment: added to (and overriding) this process's environment.
    ///   - binary: the executable; `HiveProcess.binaryURL()` if nil.
    init(arguments: [String], environment: [String: String] = [:], binary: URL? = nil) throws {
        self.arguments = arguments
        self.binary = binary ?? Self.binaryURL()
        self.environment = environment
        guard FileManager.default.isExecutableFile(atPath: self.binary.path) else {
            throw TestClientError.binaryNotFound(path: self.binary.path)
        }
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hive-it-\(UUID().uuidString.prefix(8))", isDirectory: true)
        self.logURL = self.directory.appendingPathComponent("hive.log")
        // 0700 whatever the umask: hive refuses a run dir (here "run" inside it) in a folder others can write.
        try FileManager.default.createDirectory(
            at: self.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]
        )
    }

    deinit {
        self.kill()
    }

    // MARK: Locating

    /// The `hive` executable: `$HIVE_BINARY` if set, else beside the test bundle (`.build/debug/hive`), found the way
    /// swift-argument-parser's TestHelpers `debugURL` does: the bundle's directory, or its parent for an .xctest.
    static func binaryURL() -> URL {
        if let override = ProcessInfo.processInfo.environment["HIVE_BINARY"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        // On Linux the test runner is itself `<Package>PackageTests.xctest` in the build directory and is
        // Bundle.main; on macOS Bundle.main is Xcode's xctest tool and the bundle is among allBundles.
        var candidates = [Bundle.main.bundleURL] + Bundle.allBundles.map(\.bundleURL)
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        let directories = candidates.map { url in
            url.pathExtension == "xctest" ? url.deletingLastPathComponent() : url
        }
        for directory in directories {
            let candidate = directory.appendingPathComponent("hive")
            if FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
        }
        return directories[0].appendingPathComponent("hive")
    }

    /// A port nothing listens on right now: bind 127.0.0.1:0, read what the kernel chose, close. Another process
    /// could take it before hive binds it, so hive itself is started with `--port 0` and read back with `port`;
    /// this is for the other servers of a test, and for a hive whose port must be known before it starts.
    static func freePort() -> Int {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        precondition(fd >= 0, "socket() failed while finding a free port: \(String(cString: strerror(errno)))")
        defer { close(fd) }
        var address = TestSocket.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        precondition(bound, "bind(127.0.0.1:0) failed while finding a free port: \(String(cString: strerror(errno)))")
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The port of the `ready` line (`hive: ready on http://127.0.0.1:43117 with …`), or nil before it: with
    /// `--port 0`, the one the kernel chose.
    var port: Int? { Self.readyPort(in: self.log()) }

    /// The port of the first `ready on http://HOST:PORT` in `log` (IPv6 hosts are in brackets).
    static func readyPort(in log: String) -> Int? {
        guard let start = log.range(of: "ready on http://")?.upperBound else { return nil }
        let address = log[start...].prefix { !$0.isWhitespace }
        guard let colon = address.lastIndex(of: ":") else { return nil }
        return Int(address[address.index(after: colon)...])
    }

    /// Starts hive and returns the port of its `ready` line: for a hive started with `--port 0`.
    func startAndReadPort(readyTimeout: TimeInterval = 20) throws -> Int {
        try self.start(readyTimeout: readyTimeout)
        guard let port = self.port, port > 0 else {
            throw TestClientError.misuse("no port in the ready line of \(self.logURL.path): \(self.log())")
        }
        return port
    }

    // MARK: Lifecycle

    /// Launches `hive start <arguments>` and returns once the log has a line with the word "ready".
    ///
    /// Throws `processExited` (with the log) if hive exits first, `logTimeout` if `readyTimeout` passes; in both
    /// cases a still-running process is killed so a failed start leaves nothing behind.
    func start(readyTimeout: TimeInterval = 20) throws {
        // Checked before the log is created: a second start() must not truncate the first run's log.
        guard self.locked({ self.process == nil }) else {
            throw TestClientError.misuse("HiveProcess.start() called twice (log \(self.logURL.path))")
        }
        let process = Process()
        process.executableURL = self.binary
        process.arguments = ["start"] + self.arguments
        process.currentDirectoryURL = self.directory
        process.environment = ProcessInfo.processInfo.environment.merging(self.environment) { _, new in new }

        guard FileManager.default.createFile(atPath: self.logURL.path, contents: nil) else {
            throw TestClientError.launchFailed(path: self.binary.path, underlying: "cannot create \(self.logURL.path)")
        }
        // One handle for both streams: the child's stdout and stderr then share one file offset, so lines from
        // the master and its workers interleave instead of overwriting each other.
        let logHandle = try FileHandle(forWritingTo: self.logURL)
        defer { try? logHandle.close() }   // the child has its own copies
        process.standardOutput = logHandle
        process.standardError = logHandle
        process.standardInput = FileHandle.nullDevice

        try self.locked {
            guard self.process == nil else {
                throw TestClientError.misuse("HiveProcess.start() called twice (log \(self.logURL.path))")
            }
            do {
                try process.run()
            } catch {
                throw TestClientError.launchFailed(path: self.binary.path, underlying: "\(error)")
            }
            self.process = process
        }
        Self.note("started \(self.binary.path) start \(self.arguments.joined(separator: " ")) as pid "
            + "\(process.processIdentifier); log \(self.logURL.path)")
        do {
            try self.waitForLog("a log line containing the word \"ready\"", timeout: readyTimeout) { log in
                log.split(separator: "\n").contains { Self.containsWord("ready", in: $0) }
            }
        } catch {
            self.kill()
            throw error
        }
    }

    /// SIGTERM, then waits up to `timeout` for exit, then SIGKILL. Returns the exit status: the exit code, or 128 +
    /// the signal number if hive died from a signal (shell convention, so a clean stop is exactly 0).
    /// Calling it again, or after hive exited by itself, just returns the status.
    @discardableResult
    func stop(timeout: TimeInterval = 10) throws -> Int32 {
        guard let process = self.locked({ self.process }) else {
            throw TestClientError.misuse("HiveProcess.stop() before start() (log \(self.logURL.path))")
        }
        if process.isRunning {
            systemKill(process.processIdentifier, SIGTERM)
        }
        if !Self.waitForExit(process, timeout: timeout) {
            Self.note("pid \(process.processIdentifier) still running \(timeout) s after SIGTERM; sending SIGKILL")
            systemKill(process.processIdentifier, SIGKILL)
            guard Self.waitForExit(process, timeout: 5) else {
                throw TestClientError.logTimeout(
                    seconds: timeout + 5, waitingFor: "pid \(process.processIdentifier) to exit after SIGKILL",
                    logPath: self.logURL.path, log: self.log())
            }
        }
        return Self.exitStatus(of: process)
    }

    /// SIGKILL and wait briefly; for teardown, never throws. Safe to call at any time, any number of times.
    func kill() {
        guard let process = self.locked({ self.process }), process.isRunning else { return }
        systemKill(process.processIdentifier, SIGKILL)
        _ = Self.waitForExit(process, timeout: 5)
    }

    /// Sends `signal` (e.g. SIGHUP) to the hive process started here, if it is still running.
    func send(signal: Int32) {
        guard let process = self.locked({ self.process }), process.isRunning else { return }
        systemKill(process.processIdentifier, signal)
    }

    /// The pid started here, or nil before `start()`.
    var pid: Int32? {
        self.locked { self.process?.processIdentifier }
    }

    var isRunning: Bool {
        self.locked { self.process?.isRunning ?? false }
    }

    /// Exit status as `stop()` reports it, or nil while running / before start.
    var exitStatus: Int32? {
        guard let process = self.locked({ self.process }), !process.isRunning else { return nil }
        return Self.exitStatus(of: process)
    }

    // MARK: Log

    /// The whole log so far (invalid UTF-8 replaced).
    func log() -> String {
        guard let data = FileManager.default.contents(atPath: self.logURL.path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Polls the log every 20 ms until `predicate(log)` holds.
    ///
    /// Throws `processExited` if hive exits first (after one last look at the log, since it may have printed the
    /// line just before exiting), or `logTimeout`; both carry the log's tail.
    /// - Parameters:
    ///   - description: what is awaited, for the error message.
    ///   - timeout: seconds.
    ///   - predicate: gets the whole log text.
    func waitForLog(_ description: String, timeout: TimeInterval = 10, until predicate: (String) -> Bool) throws {
        guard let process = self.locked({ self.process }) else {
            throw TestClientError.misuse("HiveProcess.waitForLog() before start() (log \(self.logURL.path))")
        }
        let deadline = TestDeadline(seconds: timeout)
        while true {
            // Check liveness before reading: a line printed just before exit is then still seen below.
            let running = process.isRunning
            let log = self.log()
            if predicate(log) {
                return
            }
            if !running {
                throw TestClientError.processExited(
                    status: Self.exitStatus(of: process), waitingFor: description, logPath: self.logURL.path, log: log)
            }
            if deadline.remaining <= 0 {
                throw TestClientError.logTimeout(
                    seconds: timeout, waitingFor: description, logPath: self.logURL.path, log: log)
            }
            usleep(20_000)
        }
    }

    /// Waits until at least `count` log lines contain `text`, e.g. a second "worker 0 pid" line after a reload.
    func waitForLog(containing text: String, count: Int = 1, timeout: TimeInterval = 10) throws {
        let what = count == 1 ? "a log line containing \"\(text)\"" : "\(count) log lines containing \"\(text)\""
        try self.waitForLog(what, timeout: timeout) { log in
            log.split(separator: "\n").lazy.filter { $0.contains(text) }.count >= count
        }
    }

    /// Every pid from lines with `worker <id> pid <pid>`, in order of first appearance, without duplicates.
    /// After a reload this includes the old workers; see `currentWorkerPIDs()`.
    func workerPIDs() -> [Int32] {
        var seen = Set<Int32>()
        return Self.workerLines(in: self.log()).map(\.pid).filter { seen.insert($0).inserted }
    }

    /// The latest pid logged for each worker id: after a reload, the new generation.
    func currentWorkerPIDs() -> [Int: Int32] {
        var latest: [Int: Int32] = [:]
        for line in Self.workerLines(in: self.log()) {
            latest[line.id] = line.pid
        }
        return latest
    }

    // MARK: Other processes (read-only: never signalled)

    /// True while `pid` exists and is not a zombie. Orphaned workers are reparented to pid 1, which in a container
    /// may never reap them, so `kill(pid, 0)` alone would call a dead worker alive.
    static func isAlive(pid: Int32) -> Bool {
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        {
            // "pid (comm) S …": comm may contain spaces and parentheses, so the state follows the last ')'.
            let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
            return state != "Z" && state != "X"
        }
        return systemKill(pid, 0) == 0 || errno == EPERM
    }

    /// Waits until none of `pids` is alive; returns the survivors (empty on success) once `timeout` passes.
    @discardableResult
    static func waitUntilGone(_ pids: [Int32], timeout: TimeInterval = 10) -> [Int32] {
        let deadline = TestDeadline(seconds: timeout)
        while true {
            let alive = pids.filter { Self.isAlive(pid: $0) }
            if alive.isEmpty || deadline.remaining <= 0 {
                return alive
            }
            usleep(20_000)
        }
    }

    /// Number of open file descriptors of `pid` (entries of /proc/<pid>/fd), or nil if unreadable: for asserting
    /// that a worker does not leak fds across connections.
    static func openFileDescriptorCount(of pid: Int32) -> Int? {
        try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
    }

    // MARK: Helpers

    /// NSLock.withLock is macOS 14+; the package still names macOS 13.
    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        self.lock.lock()
        defer { self.lock.unlock() }
        return try body()
    }

    static func workerLines(in log: String) -> [(id: Int, pid: Int32)] {
        // "worker <id> pid <pid>" anywhere in a line, but not inside longer words ("coworker", "pid 123456x").
        let tokens = log.split(whereSeparator: { $0.isWhitespace })
        var result: [(id: Int, pid: Int32)] = []
        var index = 0
        while index + 3 < tokens.count {
            defer { index += 1 }
            guard tokens[index].hasSuffix("worker"), tokens[index + 2] == "pid",
                tokens[index].dropLast("worker".count).allSatisfy({ !$0.isLetter && !$0.isNumber }),
                let id = Int(tokens[index + 1])
            else { continue }
            let pidText = tokens[index + 3].prefix { $0.isASCII && $0.isNumber }
            let rest = tokens[index + 3].dropFirst(pidText.count)
            guard let pid = Int32(pidText), rest.allSatisfy({ !$0.isLetter && !$0.isNumber }) else { continue }
            result.append((id: id, pid: pid))
        }
        return result
    }

    /// True if `word` occurs in `line` as a word of its own: "master ready", "state=ready", "ready." count;
    /// "already", "not-ready" and an echoed "--never-ready" flag do not ('-' and '_' join words).
    static func containsWord(_ word: String, in line: Substring) -> Bool {
        let words = line.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        return words.contains { $0.lowercased() == word }
    }

    private static func waitForExit(_ process: Process, timeout: TimeInterval) -> Bool {
        // Foundation reaps the child on its own thread and then flips isRunning; waitpid here would race it.
        let deadline = TestDeadline(seconds: timeout)
        while process.isRunning {
            if deadline.remaining <= 0 { return false }
            usleep(10_000)
        }
        return true
    }

    private static func exitStatus(of process: Process) -> Int32 {
        switch process.terminationReason {
        case .exit: return process.terminationStatus
        case .uncaughtSignal: return 128 + process.terminationStatus
        @unknown default: return process.terminationStatus
        }
    }

    /// Progress notes go to fd 2 directly: Swift 6 rejects the C `stderr` global, and XCTest captures stdout.
    static func note(_ message: String) {
        let line = "HiveProcess: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

// File-scope forwarder: inside HiveProcess the name `kill` means its own method.
@discardableResult
private func systemKill(_ pid: Int32, _ signal: Int32) -> Int32 {
    kill(pid, signal)
}
