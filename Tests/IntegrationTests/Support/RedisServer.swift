#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

// MARK: - RedisServer

/// A private `redis-server` on a free loopback port, for tests of Hive's Redis subscription (worker 0 subscribes and
/// broadcasts every published message to all WebSocket clients).
///
/// Started with Foundation's Process, never daemonized, with no persistence (`--save "" --appendonly no`); its log
/// and working directory are a fresh temporary directory that is kept after the test. Readiness is a `PING` answered
/// with `+PONG` by this very process (checked with `INFO server`'s `process_id`), polled every 10 ms, never a fixed
/// sleep. Only the pid started here is ever signalled.
///
/// Every `command` opens its own short-lived connection, so commands keep working across `restart()` and are safe to
/// send from any thread; note that this connection shows up in `clientList()`. For a long-lived connection (e.g. a
/// subscriber of its own) use `connect()`.
///
/// `@unchecked Sendable`: the one mutable field, `process`, is guarded by `lock`; everything else is immutable.
final class RedisServer: @unchecked Sendable {
    let port: Int
    let executable: URL
    /// Fresh per instance: redis-server's `--dir`, holding `redis.log` (its `--logfile`) and `redis.out`.
    let directory: URL
    let logURL: URL
    /// stdout and stderr of redis-server: empty unless it fails before it opens its log file (bad arguments).
    let outputURL: URL

    var url: String { "redis://127.0.0.1:\(self.port)" }
    /// `requirepass`: every connection made here authenticates first.
    let password: String?
    /// More redis-server options, e.g. `["--client-output-buffer-limit", "pubsub 0 0 0"]`.
    let extraArguments: [String]

    private let lock = NSLock()
    // Guarded by `lock`.
    private var process: Process?

    /// Text redis-server logs (then exits) when it cannot bind its port.
    static let bindFailure = "Failed listening on port"

    /// Finds `redis-server` and picks a port; nothing runs until `start()`.
    /// - Parameter port: a fixed port, for tests that need one; a free loopback port if nil. A port is picked by
    ///   binding 127.0.0.1:0, so another process could take it first; `start()` then fails fast with the log.
    /// - Throws: `RedisServerError.notInstalled` (run `make deps`) if there is no `redis-server`.
    init(port: Int? = nil, password: String? = nil, extraArguments: [String] = []) throws {
        self.password = password
        self.extraArguments = extraArguments
        self.executable = try Self.locateExecutable()
        self.port = port ?? HiveProcess.freePort()
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("redis-it-\(UUID().uuidString.prefix(8))", isDirectory: true)
        self.logURL = self.directory.appendingPathComponent("redis.log")
        self.outputURL = self.directory.appendingPathComponent("redis.out")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
    }

    deinit {
        self.stop()
    }

    // MARK: Locating

    /// `$REDIS_SERVER` if set, else the first executable `redis-server` on `$PATH` or in `extraDirectories` (test
    /// runners, e.g. Xcode's, may run with a short PATH).
    static func locateExecutable(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        extraDirectories: [String] = ["/usr/local/bin", "/opt/homebrew/bin", "/usr/bin", "/usr/sbin"]
    ) throws -> URL {
        if let override = environment["REDIS_SERVER"], !override.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: override) else {
                throw RedisServerError.notInstalled(searched: ["$REDIS_SERVER=\(override)"])
            }
            return URL(fileURLWithPath: override)
        }
        let path = (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        var searched: [String] = []
        for directory in path + extraDirectories where !directory.isEmpty && !searched.contains(directory) {
            searched.append(directory)
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent("redis-server")
            if FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
        }
        throw RedisServerError.notInstalled(searched: searched)
    }

    // MARK: Lifecycle

    /// Launches redis-server and returns once this process answers `PING` with `+PONG`.
    ///
    /// Fails fast, carrying the log: `portInUse` if redis-server logs "Failed listening on port" (or another
    /// redis-server answers on the port), `exited` if it exits, `startTimeout` after `timeout` seconds. A failed
    /// start leaves no process behind. May be called again after `stop()` / `kill9()`, on the same port.
    func start(timeout: TimeInterval = 10) throws {
        let process = Process()
        process.executableURL = self.executable
        process.arguments = [
            "--port", String(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--logfile", self.logURL.path, "--dir", self.directory.path,
        ] + (self.password.map { ["--requirepass", $0] } ?? []) + self.extraArguments
        process.currentDirectoryURL = self.directory
        process.standardInput = FileHandle.nullDevice
        // Appended to, never truncated: after a restart the earlier run's lines are still there to read.
        if !FileManager.default.fileExists(atPath: self.outputURL.path) {
            _ = FileManager.default.createFile(atPath: self.outputURL.path, contents: nil)
        }
        let output = try FileHandle(forWritingTo: self.outputURL)
        defer { try? output.close() }   // the child has its own copy
        output.seekToEndOfFile()
        process.standardOutput = output
        process.standardError = output
        // Only what this run logs counts: a restart must not trip over the previous run's lines.
        let logOffset = FileManager.default.contents(atPath: self.logURL.path)?.count ?? 0

        try self.locked {
            if let running = self.process, running.isRunning {
                throw TestClientError.misuse(
                    "RedisServer.start() while pid \(running.processIdentifier) is still running (port \(self.port))")
            }
            do {
                try process.run()
            } catch {
                throw TestClientError.launchFailed(path: self.executable.path, underlying: "\(error)")
            }
            self.process = process
        }
        do {
            try self.waitUntilReady(process, logOffset: logOffset, timeout: timeout)
        } catch {
            Self.terminate(process, signal: SIGKILL, timeout: 5)
            throw error
        }
    }

    /// SIGTERM to the pid started here, up to `timeout` seconds for it to exit, then SIGKILL. Never throws; safe
    /// before `start()`, after an exit, and any number of times.
    func stop(timeout: TimeInterval = 5) {
        guard let process = self.locked({ self.process }), process.isRunning else { return }
        if !Self.terminate(process, signal: SIGTERM, timeout: timeout) {
            Self.note("pid \(process.processIdentifier) still running \(timeout) s after SIGTERM; sending SIGKILL")
            if !Self.terminate(process, signal: SIGKILL, timeout: 5) {
                Self.note("pid \(process.processIdentifier) survived SIGKILL for 5 s")
            }
        }
    }

    /// SIGKILL (no shutdown at all, like a crash) and waits briefly for the exit. Never throws.
    func kill9() {
        guard let process = self.locked({ self.process }), process.isRunning else { return }
        if !Self.terminate(process, signal: SIGKILL, timeout: 5) {
            Self.note("pid \(process.processIdentifier) survived SIGKILL for 5 s")
        }
    }

    /// `stop()`, waits until the port can be bound again, then `start()` on the same port: clients see their
    /// connections closed and can reconnect to the same `url`.
    func restart(timeout: TimeInterval = 10) throws {
        self.stop()
        try self.waitUntilPortIsFree(timeout: timeout)
        try self.start(timeout: timeout)
    }

    /// Waits until nothing listens on `port` any more: a bind with SO_REUSEADDR (as redis-server binds) succeeds.
    func waitUntilPortIsFree(timeout: TimeInterval = 10) throws {
        let deadline = TestDeadline(seconds: timeout)
        while !Self.canBind(port: self.port) {
            if deadline.remaining <= 0 {
                throw TestClientError.timedOut(
                    seconds: timeout, waitingFor: "port \(self.port) to be free after stopping redis-server")
            }
            usleep(10_000)
        }
    }

    /// The pid of the last redis-server started here, or nil before `start()`.
    var pid: Int32? {
        self.locked { self.process?.processIdentifier }
    }

    var isRunning: Bool {
        self.locked { self.process?.isRunning ?? false }
    }

    /// The whole log of every run so far (invalid UTF-8 replaced), followed by redis-server's own stdout/stderr if
    /// it wrote any (it only does when it fails before opening the log file).
    func log() -> String {
        let log = FileManager.default.contents(atPath: self.logURL.path).map { String(decoding: $0, as: UTF8.self) }
        let output = FileManager.default.contents(atPath: self.outputURL.path) ?? Data()
        guard !output.isEmpty else { return log ?? "" }
        return (log ?? "") + "\n----- redis-server stdout/stderr (\(self.outputURL.path)) -----\n"
            + String(decoding: output, as: UTF8.self)
    }

    // MARK: Commands

    /// A new connection of its own, e.g. for a subscriber. Throws `TestClientError.syscall` if nothing listens.
    func connect(timeout: TimeInterval = 5) throws -> RESPConnection {
        try self.open(timeout: timeout)
    }

    /// Sends one command on a fresh connection and returns the reply. An error reply is returned as `.error`, not
    /// thrown, so tests can assert on it; only I/O and protocol failures throw.
    func command(_ args: [String], timeout: TimeInterval = 5) throws -> RESPValue {
        try self.command(args.map { Array($0.utf8) }, timeout: timeout)
    }

    /// `command` with binary-safe arguments.
    func command(_ args: [[UInt8]], timeout: TimeInterval = 5) throws -> RESPValue {
        let connection = try self.open(timeout: timeout)
        defer { connection.close() }
        return try connection.command(args)
    }

    /// `PUBLISH channel message`; returns the number of clients that received it (Redis counts every matching
    /// channel and pattern subscription).
    @discardableResult
    func publish(channel: String, message: String) throws -> Int {
        try self.publish(channel: channel, bytes: Array(message.utf8))
    }

    /// `PUBLISH` with a binary payload; returns the number of receivers.
    @discardableResult
    func publish(channel: String, bytes: [UInt8]) throws -> Int {
        try self.integer(self.command([Array("PUBLISH".utf8), Array(channel.utf8), bytes]), from: "PUBLISH \(channel)")
    }

    /// `PUBSUB NUMSUB channel`: how many clients subscribe to exactly this channel (patterns not counted).
    func numsub(_ channel: String) throws -> Int {
        let reply = try self.command(["PUBSUB", "NUMSUB", channel])
        guard case .array(let items?) = reply, items.count == 2, items[0].stringValue == channel,
            case .integer(let count) = items[1]
        else {
            throw RedisServerError.unexpectedReply(command: "PUBSUB NUMSUB \(channel)", reply: reply)
        }
        return count
    }

    /// `PUBSUB NUMPAT`: the number of pattern subscriptions, over all clients.
    func numpat() throws -> Int {
        try self.integer(self.command(["PUBSUB", "NUMPAT"]), from: "PUBSUB NUMPAT")
    }

    /// `CLIENT LIST`: one line per connection, including the one this call opened for itself (`cmd=client|list`).
    func clientList() throws -> String {
        let reply = try self.command(["CLIENT", "LIST"])
        guard case .bulk(let bytes?) = reply else {
            throw RedisServerError.unexpectedReply(command: "CLIENT LIST", reply: reply)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Polls `PUBSUB NUMSUB channel` every 10 ms until it equals `count` exactly (so it can also wait for
    /// subscribers to go, with `count: 0`). Throws `TestClientError.timedOut` with the last value seen.
    func waitForSubscribers(channel: String, count: Int, timeout: TimeInterval = 5) throws {
        try self.poll("PUBSUB NUMSUB \(channel) to be \(count)", expected: count, timeout: timeout) {
            try self.numsub(channel)
        }
    }

    /// Polls `PUBSUB NUMPAT` every 10 ms until it equals `count` exactly.
    func waitForPatternSubscribers(count: Int, timeout: TimeInterval = 5) throws {
        try self.poll("PUBSUB NUMPAT to be \(count)", expected: count, timeout: timeout) {
            try self.numpat()
        }
    }

    // MARK: Helpers

    /// A connection, authenticated when the server has a password.
    private func open(timeout: TimeInterval) throws -> RESPConnection {
        let connection = try RESPConnection(port: self.port, timeout: timeout)
        if let password = self.password {
            let reply = try connection.command(["AUTH", password])
            guard reply == .simple("OK") else { throw RedisServerError.unexpectedReply(command: "AUTH", reply: reply) }
        }
        return connection
    }

    private func integer(_ reply: RESPValue, from command: String) throws -> Int {
        guard case .integer(let value) = reply else {
            throw RedisServerError.unexpectedReply(command: command, reply: reply)
        }
        return value
    }

    private func poll(_ what: String, expected: Int, timeout: TimeInterval, value: () throws -> Int) throws {
        let deadline = TestDeadline(seconds: timeout)
        while true {
            let current = try value()
            if current == expected {
                return
            }
            if deadline.remaining <= 0 {
                throw TestClientError.timedOut(seconds: timeout, waitingFor: "\(what) (last seen \(current))")
            }
            usleep(10_000)
        }
    }

    private func waitUntilReady(_ process: Process, logOffset: Int, timeout: TimeInterval) throws {
        let deadline = TestDeadline(seconds: timeout)
        let pid = Int(process.processIdentifier)
        var lastAttempt = "no attempt yet"
        while true {
            // Liveness first: a bind failure logged just before exiting is then still seen below.
            let running = process.isRunning
            if self.logSince(logOffset).contains(Self.bindFailure) {
                throw RedisServerError.portInUse(port: self.port, logPath: self.logURL.path, log: self.log())
            }
            if !running {
                throw RedisServerError.exited(
                    status: Self.exitStatus(of: process), waitingFor: "PING to answer +PONG on port \(self.port)",
                    logPath: self.logURL.path, log: self.log())
            }
            do {
                let connection = try self.open(timeout: max(0.05, min(1, deadline.remaining)))
                defer { connection.close() }
                let reply = try connection.command(["PING"])
                if reply == .simple("PONG") {
                    let server = try Self.processID(from: connection.command(["INFO", "server"]))
                    if server == pid {
                        return
                    }
                    try self.reportOtherServer(pid: server, ours: process, logOffset: logOffset)
                }
                lastAttempt = "PING answered \(reply)"
            } catch let error as RedisServerError {
                throw error
            } catch {
                lastAttempt = "\(error)"
            }
            if deadline.remaining <= 0 {
                throw RedisServerError.startTimeout(
                    seconds: timeout, port: self.port, lastAttempt: lastAttempt, logPath: self.logURL.path,
                    log: self.log())
            }
            usleep(10_000)
        }
    }

    /// Another redis-server answered on our port: ours is about to log its bind failure and exit. Give it a moment
    /// so the error can carry that log, which says more than a pid mismatch.
    private func reportOtherServer(pid other: Int?, ours process: Process, logOffset: Int) throws -> Never {
        Self.terminate(process, signal: 0, timeout: 2)
        if self.logSince(logOffset).contains(Self.bindFailure) {
            throw RedisServerError.portInUse(port: self.port, logPath: self.logURL.path, log: self.log())
        }
        throw RedisServerError.portInUse(
            port: self.port, logPath: self.logURL.path,
            log: "another redis-server (pid \(other.map(String.init) ?? "unknown")) answers on port \(self.port), "
                + "not pid \(process.processIdentifier) started here; its log so far:\n" + self.log())
    }

    private func logSince(_ offset: Int) -> String {
        guard let data = FileManager.default.contents(atPath: self.logURL.path), data.count > offset else { return "" }
        return String(decoding: data.dropFirst(offset), as: UTF8.self)
    }

    /// `process_id:<pid>` from an `INFO server` reply.
    private static func processID(from reply: RESPValue) -> Int? {
        guard let text = reply.stringValue else { return nil }
        // "\r\n" is one Character in Swift, so split on isNewline rather than on "\r" or "\n".
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("process_id:") {
            return Int(line.dropFirst("process_id:".count))
        }
        return nil
    }

    /// Sends `signal` (0: none, just wait) if the process still runs, then waits up to `timeout` for its exit.
    @discardableResult
    private static func terminate(_ process: Process, signal: Int32, timeout: TimeInterval) -> Bool {
        if signal != 0, process.isRunning {
            systemKill(process.processIdentifier, signal)
        }
        // Foundation reaps the child on its own thread and then flips isRunning; waitpid here would race it.
        let deadline = TestDeadline(seconds: timeout)
        while process.isRunning {
            if deadline.remaining <= 0 { return false }
            usleep(5_000)
        }
        return true
    }

    /// True if 127.0.0.1:`port` can be bound with SO_REUSEADDR, i.e. nothing listens there (TIME_WAIT is fine).
    private static func canBind(port: Int) -> Bool {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = TestSocket.loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private static func exitStatus(of process: Process) -> Int32 {
        switch process.terminationReason {
        case .exit: return process.terminationStatus
        case .uncaughtSignal: return 128 + process.terminationStatus
        @unknown default: return process.terminationStatus
        }
    }

    /// NSLock.withLock is macOS 14+; the package still names macOS 13.
    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        self.lock.lock()
        defer { self.lock.unlock() }
        return try body()
    }

    /// Progress notes go to fd 2 directly: Swift 6 rejects the C `stderr` global, and XCTest captures stdout.
    private static func note(_ message: String) {
        let line = "RedisServer: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

// File-scope forwarder: inside RedisServer the name `kill` would read as one of its own methods.
@discardableResult
private func systemKill(_ pid: Int32, _ signal: Int32) -> Int32 {
    kill(pid, signal)
}

// MARK: - Errors

/// Failures specific to redis-server and RESP. Socket errors and timeouts are `TestClientError`s, as elsewhere.
enum RedisServerError: Error, CustomStringConvertible, Sendable {
    /// No `redis-server` executable; `searched` lists where it was looked for.
    case notInstalled(searched: [String])
    /// redis-server exited before it answered PING.
    case exited(status: Int32, waitingFor: String, logPath: String, log: String)
    /// The port is taken ("Failed listening on port", or another redis-server answered there).
    case portInUse(port: Int, logPath: String, log: String)
    /// No `+PONG` from this process within `seconds`.
    case startTimeout(seconds: TimeInterval, port: Int, lastAttempt: String, logPath: String, log: String)
    /// The bytes received are not valid RESP.
    case protocolError(reason: String, bufferedBytes: [UInt8])
    /// A well-formed reply of the wrong shape for the command (e.g. an error where an integer was expected).
    case unexpectedReply(command: String, reply: RESPValue)

    var description: String {
        switch self {
        case .notInstalled(let searched):
            return "redis-server is not installed (looked in \(searched.joined(separator: ", "))): run `make deps` "
                + "(it installs redis-server), or set REDIS_SERVER to its path"
        case .exited(let status, let what, let logPath, let log):
            return "redis-server exited with status \(status) while waiting for \(what); log \(logPath):\n"
                + Self.tail(of: log)
        case .portInUse(let port, let logPath, let log):
            return "redis-server could not listen on 127.0.0.1:\(port) (port in use); log \(logPath):\n"
                + Self.tail(of: log)
        case .startTimeout(let seconds, let port, let lastAttempt, let logPath, let log):
            return "redis-server did not answer PING with +PONG on port \(port) within "
                + String(format: "%.1f", seconds) + " s (last attempt: \(lastAttempt)); log \(logPath):\n"
                + Self.tail(of: log)
        case .protocolError(let reason, let buffered):
            return "malformed RESP reply: \(reason); \(buffered.count) bytes buffered: "
                + RESPValue.quote(buffered, limit: 512)
        case .unexpectedReply(let command, let reply):
            return "unexpected reply to \(command): \(reply)"
        }
    }

    private static func tail(of log: String, lines: Int = 100) -> String {
        let all = log.split(separator: "\n", omittingEmptySubsequences: false)
        guard all.count > lines else { return log }
        return "… (\(all.count - lines) earlier lines omitted)\n" + all.suffix(lines).joined(separator: "\n")
    }
}
