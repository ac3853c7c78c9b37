import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The Redis subscription against what can go wrong around it: a password other local users must not read, a
/// message too large to hold, and a server that accepts connections but never answers.
final class RedisHardeningIntegrationTests: HiveTestCase {
    private func runDir(_ hive: HiveProcess) -> String { hive.directory.appendingPathComponent("run").path }

    private func redisStatus(_ hive: HiveProcess) throws -> [String: Any] {
        let status = try XCTUnwrap(try HiveCLI.json(["status", "--json", "--run-dir", runDir(hive)]) as? [String: Any])
        return try XCTUnwrap(status["redis"] as? [String: Any])
    }

    /// The command line of a process, NUL separators as spaces.
    private func commandLine(of pid: Int32) throws -> String {
        let data = try XCTUnwrap(FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), "no /proc/\(pid)/cmdline")
        return String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    }

    /// The password is in no command line (master's or any worker's), the subscription works, and neither the log
    /// nor `hive status` shows it.
    private func assertPasswordHidden(_ password: String, hive: HiveProcess, port: Int, redis: RedisServer,
                                      file: StaticString = #filePath, line: UInt = #line) throws {
        try redis.waitForSubscribers(channel: "test", count: 1, timeout: 10)
        let workers = hive.currentWorkerPIDs()
        XCTAssertEqual(workers.count, 2, file: file, line: line)
        for pid in workers.values {
            let arguments = try commandLine(of: pid)
            XCTAssertTrue(arguments.contains(" worker "), arguments, file: file, line: line)
            XCTAssertFalse(arguments.contains(password), "worker \(pid)'s command line: \(arguments)", file: file, line: line)
        }
        let client = try WebSocketTestClient(port: port)
        _ = try connectionID(of: client)
        XCTAssertEqual(try redis.publish(channel: "test", message: "authenticated"), 1, file: file, line: line)
        XCTAssertEqual(try client.receiveMessage(), .text("authenticated"), file: file, line: line)
        let status = try HiveCLI.run(["status", "--json", "--run-dir", runDir(hive)])
        XCTAssertEqual(status.status, 0, status.stderr, file: file, line: line)
        XCTAssertFalse(status.stdout.contains(password), status.stdout, file: file, line: line)
        XCTAssertTrue(status.stdout.contains("\"subscribed\""), status.stdout, file: file, line: line)
        XCTAssertFalse(hive.log().contains(password), file: file, line: line)
    }

    // MARK: Item 4: secrets on the command line

    func testPasswordFromAFile_isInNoCommandLine_andTheSubscriptionWorks() throws {
        let password = "pw-\(UUID().uuidString.prefix(12))"
        let redis = try startRedis(password: password)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("redis-password-\(UUID().uuidString.prefix(8))").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o600]))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url, "--redis-password-file", path])
        XCTAssertFalse(try commandLine(of: try XCTUnwrap(hive.pid)).contains(password))
        try assertPasswordHidden(password, hive: hive, port: port, redis: redis)
        XCTAssertFalse(hive.log().contains("password is on the command line"))
        XCTAssertFalse(hive.log().contains("password file is readable by other users"))
        // `hive publish` takes the password the same way.
        let published = try HiveCLI.run(["publish", "test", "x", "--redis", redis.url, "--redis-password-file", path])
        XCTAssertEqual(published.status, 0, published.stderr)
        XCTAssertTrue(published.stdout.contains("1 subscriber received it"), published.stdout)
    }

    func testPasswordInHIVE_REDIS_URL_isInNoCommandLine_andTheSubscriptionWorks() throws {
        let password = "pw-\(UUID().uuidString.prefix(12))"
        let redis = try startRedis(password: password)
        let (hive, port) = try startHive(workers: 2, environment: ["HIVE_REDIS_URL": "redis://:\(password)@127.0.0.1:\(redis.port)"])
        XCTAssertFalse(try commandLine(of: try XCTUnwrap(hive.pid)).contains(password))
        try assertPasswordHidden(password, hive: hive, port: port, redis: redis)
    }

    /// An operator who still puts the password in `--redis` is warned, and the workers' command lines are clean.
    func testPasswordInTheRedisOption_isWarnedAbout_andStaysOutOfTheWorkersCommandLines() throws {
        let password = "pw-\(UUID().uuidString.prefix(12))"
        let redis = try startRedis(password: password)
        let (hive, port) = try startHive(workers: 2, ["--redis", "redis://:\(password)@127.0.0.1:\(redis.port)"])
        try redis.waitForSubscribers(channel: "test", count: 1, timeout: 10)
        for pid in hive.currentWorkerPIDs().values {
            let arguments = try commandLine(of: pid)
            XCTAssertFalse(arguments.contains(password), arguments)
        }
        try hive.waitForLog(containing: "the Redis password is on the command line")
        let client = try WebSocketTestClient(port: port)
        _ = try connectionID(of: client)
        XCTAssertEqual(try redis.publish(channel: "test", message: "still works"), 1)
        XCTAssertEqual(try client.receiveMessage(), .text("still works"))
    }

    func testPasswordFileReadableByOthers_isWarnedAbout() throws {
        let redis = try startRedis(password: "shared-secret")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("redis-password-\(UUID().uuidString.prefix(8))").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("shared-secret".utf8), attributes: [.posixPermissions: 0o644]))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (hive, _) = try startHive(workers: 1, ["--redis", redis.url, "--redis-password-file", path])
        try redis.waitForSubscribers(channel: "test", count: 1, timeout: 10)
        try hive.waitForLog(containing: "the Redis password file is readable by other users")
        XCTAssertTrue(hive.log().contains("chmod 600"))
    }

    func testPasswordFileMissingOrGivenTwice_isAClearStartError() throws {
        let missing = try HiveCLI.run(["start", "--redis-password-file", "/nonexistent/redis-password", "--port", "0"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("--redis-password-file: cannot read \"/nonexistent/redis-password\""), missing.stderr)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("redis-password-\(UUID().uuidString.prefix(8))").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("b\n".utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let twice = try HiveCLI.run([
            "start", "--redis", "redis://:a@127.0.0.1:1", "--redis-password-file", path, "--port", "0",
        ])
        XCTAssertNotEqual(twice.status, 0)
        XCTAssertTrue(twice.stderr.contains("the Redis password is given twice, in --redis and in --redis-password-file"), twice.stderr)
    }

    // MARK: Item 9: oversized messages

    /// A 100 MiB message over the cap (default: --max-message-size, 1 MiB) is skipped as it arrives: worker 0's peak
    /// memory barely moves, no client gets it, it is counted and logged once, and the next message arrives.
    func testMessageOverTheCap_isDroppedUnread_countedAndLoggedOnce_andTheNextOneArrives() throws {
        // Redis' own default (pubsub 32mb hard limit) would close the subscription instead of passing it on.
        let redis = try startRedis(extraArguments: ["--client-output-buffer-limit", "pubsub 0 0 0"])
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url, "--dispatch", "round-robin"])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let clients = try (0..<2).map { _ in try WebSocketTestClient(port: port, timeout: 10) }
        XCTAssertEqual(Set(try clients.map { try worker(of: $0) }), [0, 1])
        let worker0 = try XCTUnwrap(hive.currentWorkerPIDs()[0])
        let before = try XCTUnwrap(Self.peakRSS(of: worker0))

        let huge = [UInt8](repeating: 0x78, count: 100 << 20)
        for round in 0..<2 {
            XCTAssertEqual(try redis.publish(channel: "test", bytes: huge), 1)
            XCTAssertEqual(try redis.publish(channel: "test", message: "after \(round)"), 1)
            for client in clients { XCTAssertEqual(try client.receiveMessage(timeout: 20), .text("after \(round)")) }
        }
        let peak = try XCTUnwrap(Self.peakRSS(of: worker0))
        Self.note("worker 0 peak RSS \(before >> 20) MiB before, \(peak >> 20) MiB after two 100 MiB messages")
        XCTAssertLessThan(peak - before, 16 << 20, "worker 0 held an oversized message")

        let status = try redisStatus(hive)
        XCTAssertEqual(status["oversized"] as? Int, 2, "\(status)")
        XCTAssertEqual(status["messages"] as? Int, 2, "\(status)")
        XCTAssertEqual(status["state"] as? String, "subscribed")
        let text = try HiveCLI.run(["status", "--run-dir", runDir(hive)])
        XCTAssertTrue(text.stdout.contains("oversized 2 (over --max-redis-message)"), text.stdout)
        let log = hive.log()
        XCTAssertEqual(log.components(separatedBy: "redis message over --max-redis-message dropped").count - 1, 1, log)
        XCTAssertTrue(log.contains("message.bytes=\(100 << 20)") && log.contains("limit.bytes=\(1 << 20)"), log)
    }

    /// Every message under --max-redis-message reaches every client of every worker, whole; one over it reaches
    /// none, and what follows still does.
    func testMessagesUnderTheCap_reachEveryWorker_andOneOverItNone() throws {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url, "--dispatch", "round-robin", "--max-redis-message", String(3 << 20)])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let clients = try (0..<4).map { _ in try WebSocketTestClient(port: port, timeout: 10) }
        XCTAssertEqual(Set(try clients.map { try worker(of: $0) }), [0, 1])
        let under = (0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) | 0x80 }  // not UTF-8: binary
        let over = [UInt8](repeating: 0x61, count: (3 << 20) + 1)
        XCTAssertEqual(try redis.publish(channel: "test", bytes: under), 1)
        XCTAssertEqual(try redis.publish(channel: "test", bytes: over), 1)
        XCTAssertEqual(try redis.publish(channel: "test", message: "small"), 1)
        for (index, client) in clients.enumerated() {
            XCTAssertEqual(try client.receiveMessage(timeout: 10), .binary(under), "client \(index)")
            XCTAssertEqual(try client.receiveMessage(timeout: 10), .text("small"), "client \(index)")
        }
        let status = try redisStatus(hive)
        XCTAssertEqual(status["oversized"] as? Int, 1, "\(status)")
        XCTAssertEqual(status["messages"] as? Int, 2, "\(status)")
    }

    // MARK: Item 10: a Redis that accepts and never answers

    func testRedisThatAcceptsButNeverAnswers_timesOutInSeconds_inStatusAndLog_thenRetries() throws {
        let silent = try SilentListener()
        defer { silent.close() }
        let started = Date()
        let (hive, _) = try startHive(workers: 1, ["--redis", "redis://127.0.0.1:\(silent.port)"])
        try hive.waitForLog(containing: "timed out: no reply to SUBSCRIBE within 3 s", timeout: 10)
        XCTAssertLessThan(Date().timeIntervalSince(started), 8)
        XCTAssertTrue(hive.log().contains("redis unreachable; retrying with back-off"), hive.log())
        let status = try redisStatus(hive)
        XCTAssertTrue((status["lastError"] as? String ?? "").contains("timed out"), "\(status)")
        XCTAssertNotEqual(status["state"] as? String, "subscribed")
        // The back-off goes on: the server sees a second connection after the first timed out.
        let deadline = Date().addingTimeInterval(10)
        while silent.pendingConnections() < 2 && Date() < deadline { usleep(50_000) }
        XCTAssertGreaterThanOrEqual(silent.pendingConnections(), 2)
    }

    func testRedisTimeoutOption_isUsed_andValidated() throws {
        let silent = try SilentListener()
        defer { silent.close() }
        let started = Date()
        let (hive, _) = try startHive(workers: 1, ["--redis", "redis://127.0.0.1:\(silent.port)", "--redis-timeout", "0.5"])
        try hive.waitForLog(containing: "timed out: no reply to SUBSCRIBE within 0.5 s", timeout: 10)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        let bad = try HiveCLI.run(["start", "--redis-timeout", "0", "--port", "0"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--redis-timeout must be a positive number of seconds"), bad.stderr)
    }

    // MARK: Helpers

    /// Peak resident memory (VmHWM) of a process, in bytes.
    static func peakRSS(of pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        return kilobytes * 1024
    }

    static func note(_ message: String) {
        let line = "RedisHardeningIntegrationTests: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

/// A TCP listener on 127.0.0.1 that never accepts and never answers: the kernel completes each handshake, so a
/// client connects at once and then waits forever for a reply.
final class SilentListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw TestClientError.misuse("socket() failed for the silent listener") }
        var address = TestSocket.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok, listen(fd, 16) == 0 else {
            Glibc.close(fd)
            throw TestClientError.misuse("bind/listen failed for the silent listener: \(String(cString: strerror(errno)))")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Connections taken so far (accepted without waiting, held open, never answered).
    private var held: [Int32] = []

    func pendingConnections() -> Int {
        var flags = fcntl(fd, F_GETFL)
        flags |= O_NONBLOCK
        _ = fcntl(fd, F_SETFL, flags)
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { break }
            held.append(client)
        }
        return held.count
    }

    func close() {
        held.forEach { _ = Glibc.close($0) }
        held = []
        _ = Glibc.close(fd)
    }
}
