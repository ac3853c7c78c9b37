import Foundation
import Glibc
import XCTest

/// Running under systemd: the `Type=notify` protocol (against a notification socket this test owns), log
/// reopening for logrotate, and the `status` output details a service log or terminal sees.
final class SystemdIntegrationTests: HiveTestCase {
    // MARK: Type=notify

    func testNotify_readyReloadingReadyStopping_allFromTheMaster_andWorkersNeverSeeTheSocket() throws {
        let folder = try Self.privateFolder("hive-notify")
        let path = folder + "/notify.sock"
        let listener = try NotifyListener(address: path)
        let (hive, port) = try startHive(workers: 2, environment: ["NOTIFY_SOCKET": path])
        let master = try XCTUnwrap(hive.pid)

        let ready = try listener.next(timeout: 5)
        XCTAssertEqual(ready.senderPID, master)
        XCTAssertEqual(ready.fields["READY"], "1", ready.text)
        XCTAssertEqual(ready.fields["MAINPID"], String(master), ready.text)
        XCTAssertEqual(ready.fields["STATUS"], "Serving http://127.0.0.1:\(port) with 2 workers", ready.text)

        // Only the master may notify: the workers' environment must not name the socket.
        let workers = hive.currentWorkerPIDs()
        XCTAssertEqual(workers.count, 2)
        for pid in workers.values {
            let environ = try String(decoding: Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ")), as: UTF8.self)
            XCTAssertFalse(environ.contains("NOTIFY_SOCKET"), "worker \(pid) inherited NOTIFY_SOCKET")
        }

        hive.send(signal: SIGUSR1)
        let reloading = try listener.next(timeout: 5)
        XCTAssertEqual(reloading.senderPID, master)
        XCTAssertEqual(reloading.fields["RELOADING"], "1", reloading.text)
        let stamp = try XCTUnwrap(reloading.fields["MONOTONIC_USEC"].flatMap(UInt64.init), reloading.text)
        XCTAssertLessThan(Self.monotonicMicroseconds() - stamp, 30_000_000, "MONOTONIC_USEC is CLOCK_MONOTONIC in µs")
        XCTAssertNil(reloading.fields["READY"], reloading.text)
        let reloaded = try listener.next(timeout: 30)
        XCTAssertEqual(reloaded.senderPID, master)
        XCTAssertEqual(reloaded.fields["READY"], "1", reloaded.text)
        try hive.waitForLog(containing: "reload complete")
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)

        XCTAssertEqual(try hive.stop(), 0)
        let stopping = try listener.next(timeout: 5)
        XCTAssertEqual(stopping.senderPID, master)
        XCTAssertEqual(stopping.fields["STOPPING"], "1", stopping.text)
        XCTAssertNil(try? listener.next(timeout: 0.2), "nothing else was sent, by the master or by any worker")
    }

    func testNotify_abstractSocketName_getsReadyAndStopping() throws {
        let name = "hive-test-notify-\(UUID().uuidString.prefix(8))"
        let listener = try NotifyListener(address: "@" + name)
        let (hive, _) = try startHive(workers: 1, environment: ["NOTIFY_SOCKET": "@" + name])
        let ready = try listener.next(timeout: 5)
        XCTAssertEqual(ready.fields["READY"], "1", ready.text)
        XCTAssertEqual(ready.senderPID, hive.pid)
        XCTAssertEqual(try hive.stop(), 0)
        XCTAssertEqual(try listener.next(timeout: 5).fields["STOPPING"], "1")
    }

    func testNotify_socketThatIsGone_isLoggedOnce_andTheMasterServesAndStops() throws {
        let folder = try Self.privateFolder("hive-notify-gone")
        let (hive, port) = try startHive(workers: 1, environment: ["NOTIFY_SOCKET": folder + "/nobody-listens.sock"])
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
        hive.send(signal: SIGUSR1)
        try hive.waitForLog(containing: "reload complete", timeout: 30)
        XCTAssertEqual(try hive.stop(), 0)
        let warnings = hive.log().split(separator: "\n").filter { $0.contains("cannot notify the service manager") }
        XCTAssertEqual(warnings.count, 1, hive.log())
        XCTAssertTrue(warnings.first?.contains("nobody-listens.sock") == true, "\(warnings)")
    }

    // MARK: The unit file

    /// systemd cannot run here (no PID 1 systemd), but `systemd-analyze verify` parses a unit offline: unknown keys,
    /// bad values and a missing ExecStart binary are reported. The binary path is pointed at the one under test.
    func testUnitFile_passesSystemdAnalyzeVerify_andKeepsItsKeyChoices() throws {
        let analyze = "/usr/bin/systemd-analyze"
        guard FileManager.default.isExecutableFile(atPath: analyze) else { throw XCTSkip("systemd-analyze is not installed") }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Docs/hive.service")
        let unit = try String(contentsOf: source, encoding: .utf8)
        for line in ["Type=notify", "KillMode=mixed", "ExecReload=/usr/local/bin/hive reload", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "RuntimeDirectory=hive", "--run-dir /run/hive/hive-9501"] {
            XCTAssertTrue(unit.contains(line), "Docs/hive.service lost \(line)")
        }
        let folder = try Self.privateFolder("hive-unit")
        let copy = folder + "/hive.service"
        try unit.replacingOccurrences(of: "/usr/local/bin/hive", with: HiveProcess.binaryURL().path)
            .write(toFile: copy, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: analyze)
        process.arguments = ["verify", copy]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertEqual(text, "", "systemd-analyze verify complained")
    }

    // MARK: Log reopening

    func testReopenLogs_afterRename_masterAndWorkersWriteToTheNewFile_byCommandAndBySIGHUP() throws {
        let runDir = FileManager.default.temporaryDirectory.appendingPathComponent("hive-rotate-\(UUID().uuidString.prefix(8))").path
        let logDir = try Self.privateFolder("hive-rotate-logs")
        let logFile = logDir + "/hive.log"
        let started = try HiveCLI.run([
            "start", "--daemon", "--port", "0", "--workers", "2", "--run-dir", runDir, "--log-file", logFile,
            "--redis", "none",
        ])
        XCTAssertEqual(started.status, 0, started.stderr)
        let port = try XCTUnwrap(HiveProcess.readyPort(in: started.stdout), started.stdout)
        let master = try XCTUnwrap(Int32(try String(contentsOfFile: runDir + "/hive.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(master, SIGKILL) }  // workers follow (PR_SET_PDEATHSIG)
        addTeardownBlock { Self.printOnFailure(self, files: [logFile, logFile + ".1", logFile + ".2"]) }

        // logrotate's way: rename, then ask for a reopen.
        try FileManager.default.moveItem(atPath: logFile, toPath: logFile + ".1")
        let reopened = try HiveCLI.run(["reopen-logs", "--run-dir", runDir])
        XCTAssertEqual(reopened.status, 0, reopened.stderr)
        XCTAssertTrue(reopened.stdout.contains("reopened \(logFile) in the master"), reopened.stdout)
        try Self.waitForReopenLines(in: logFile, master: master, workers: 2)
        XCTAssertFalse(try Self.read(logFile + ".1").contains("log file reopened"), "the renamed file got the new lines")
        XCTAssertTrue(try Self.read(logFile + ".1").contains("ready on"), "the renamed file keeps the old lines")

        // The same through SIGHUP to the master, as a logrotate postrotate script without hive would send it.
        try FileManager.default.moveItem(atPath: logFile, toPath: logFile + ".2")
        XCTAssertEqual(kill(master, SIGHUP), 0)
        try Self.waitForReopenLines(in: logFile, master: master, workers: 2)

        // Later lines, from the master and from each worker, go to the new file only.
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
        XCTAssertEqual(try HiveCLI.run(["stop", "--run-dir", runDir]).status, 0)
        let last = try Self.read(logFile)
        XCTAssertTrue(last.contains("master stopped"), last)
        for id in 0..<2 {
            XCTAssertTrue(last.split(separator: "\n").contains { $0.contains("worker.id=\(id)") && $0.contains(" stopping") }, last)
        }
        XCTAssertFalse(try Self.read(logFile + ".2").contains("master stopped"))
    }

    func testReopenLogs_foregroundMaster_explainsThereIsNoLogFile_andSIGHUPLeavesItServing() throws {
        let (hive, port) = try startHive(workers: 1)
        let runDir = hive.directory.appendingPathComponent("run").path
        let result = try HiveCLI.run(["reopen-logs", "--run-dir", runDir])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("it was not started with --daemon), so there is no log file to reopen"), result.stderr)
        hive.send(signal: SIGHUP)
        for pid in hive.currentWorkerPIDs().values { kill(pid, SIGHUP) }  // a worker without a log file ignores it too
        try hive.waitForLog(containing: "SIGHUP ignored: this worker has no log file")
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
        XCTAssertTrue(hive.isRunning)
        XCTAssertFalse(hive.log().contains("exited unexpectedly"), hive.log())
    }

    // MARK: status output

    func testStatusJSON_printsSlashesUnescaped() throws {
        let runDir = FileManager.default.temporaryDirectory.appendingPathComponent("hive-json-\(UUID().uuidString.prefix(8))").path
        _ = try startHive(workers: 1, ["--run-dir", runDir])
        let result = try HiveCLI.run(["status", "--json", "--run-dir", runDir])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("\"runDir\" : \"\(runDir)\""), result.stdout)
        XCTAssertFalse(result.stdout.contains("\\/"), result.stdout)
    }

    func testStatusWatch_intoAPipe_appendsPlainReports_onATerminal_redrawsInPlace() throws {
        let (hive, _) = try startHive(workers: 1)
        let runDir = hive.directory.appendingPathComponent("run").path
        let binary = HiveProcess.binaryURL().path

        let piped = try Self.runFor(seconds: 2.5, binary, ["status", "--watch", "--run-dir", runDir])
        XCTAssertFalse(piped.contains("\u{1B}"), "escape codes written into a pipe: \(piped.debugDescription)")
        XCTAssertGreaterThanOrEqual(piped.components(separatedBy: "HIVE STATUS").count - 1, 2, piped)

        // script(1) gives the command a terminal.
        let command = [binary, "status", "--watch", "--run-dir", runDir].map { "'\($0)'" }.joined(separator: " ")
        let terminal = try Self.runFor(seconds: 2.5, "/usr/bin/script", ["-qfec", command, "/dev/null"])
        XCTAssertGreaterThanOrEqual(terminal.components(separatedBy: "\u{1B}[H\u{1B}[2J").count - 1, 2, terminal.debugDescription)
    }

    // MARK: helpers

    /// A 0700 folder of its own in the temp dir (hive refuses run dirs and sockets others could tamper with).
    static func privateFolder(_ prefix: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return path
    }

    static func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    /// Waits until `path` has a `log file reopened` line from the master and from each worker id.
    static func waitForReopenLines(in path: String, master: Int32, workers: Int) throws {
        let deadline = Date().addingTimeInterval(10)
        while true {
            let lines = ((try? read(path)) ?? "").split(separator: "\n").filter { $0.contains("log file reopened") }
            let fromMaster = lines.contains { $0.contains("process.role=master") && $0.contains("pid=\(master)") }
            let fromWorkers = (0..<workers).allSatisfy { id in lines.contains { $0.contains("worker.id=\(id)") } }
            if fromMaster && fromWorkers { return }
            if Date() > deadline {
                throw TestClientError.misuse("no reopen lines from the master and \(workers) workers in \(path): \(lines)")
            }
            usleep(20_000)
        }
    }

    /// Runs a command for a while, then SIGTERM; returns what it wrote to stdout.
    static func runFor(seconds: TimeInterval, _ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        usleep(useconds_t(seconds * 1_000_000))
        process.terminate()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    static func printOnFailure(_ test: XCTestCase, files: [String]) {
        guard (test.testRun?.totalFailureCount ?? 0) > 0 else { return }
        for file in files {
            FileHandle.standardError.write(Data("----- \(file) -----\n\((try? read(file)) ?? "(none)")\n".utf8))
        }
    }

    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}

/// The service manager's end of `$NOTIFY_SOCKET`: a datagram socket bound by the test, with SO_PASSCRED so the kernel
/// tells who sent each datagram (the master, and never a worker).
final class NotifyListener {
    struct Message {
        var text: String
        var senderPID: Int32?
        var fields: [String: String] {
            var result: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
            }
            return result
        }
    }

    // Linux values; glibc declares them only under _GNU_SOURCE, which Swift's Glibc module does not define.
    private static let soPassCred: Int32 = 16
    private static let scmCredentials: Int32 = 2

    private let fd: Int32
    private let path: String?

    /// `address`: a path, or `@name` for the abstract namespace.
    init(address: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestClientError.misuse("socket(AF_UNIX, SOCK_DGRAM) failed: errno \(errno)") }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, Self.soPassCred, &on, socklen_t(MemoryLayout<Int32>.size))
        var sockaddr = sockaddr_un()
        sockaddr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(address.utf8)
        let abstract = address.hasPrefix("@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &sockaddr.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let rc = withUnsafePointer(to: &sockaddr) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard rc == 0 else {
            close(fd)
            throw TestClientError.misuse("bind(\(address)) failed: errno \(errno)")
        }
        self.fd = fd
        path = abstract ? nil : address
    }

    deinit {
        close(fd)
        if let path { unlink(path) }
    }

    /// The next datagram, or an error after `timeout` seconds.
    func next(timeout: TimeInterval) throws -> Message {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else {
            throw TestClientError.misuse("no notification within \(timeout) s")
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var control = [UInt8](repeating: 0, count: 64)
        let received = buffer.withUnsafeMutableBytes { data in
            control.withUnsafeMutableBytes { control in
                var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                return withUnsafeMutablePointer(to: &vector) { vector in
                    var message = msghdr()
                    message.msg_iov = vector
                    message.msg_iovlen = 1
                    message.msg_control = control.baseAddress
                    message.msg_controllen = control.count
                    let n = recvmsg(fd, &message, Int32(MSG_DONTWAIT))
                    return (n, message.msg_controllen)
                }
            }
        }
        guard received.0 >= 0 else { throw TestClientError.misuse("recvmsg failed: errno \(errno)") }
        let text = String(decoding: buffer[0..<received.0], as: UTF8.self)
        // One cmsghdr (len, level, type) then struct ucred { pid, uid, gid }.
        var sender: Int32?
        let header = MemoryLayout<cmsghdr>.size
        if received.1 >= header + 12 {
            let (level, type) = control.withUnsafeBytes { ($0.load(fromByteOffset: 8, as: Int32.self), $0.load(fromByteOffset: 12, as: Int32.self)) }
            if level == SOL_SOCKET && type == Self.scmCredentials {
                sender = control.withUnsafeBytes { $0.load(fromByteOffset: header, as: Int32.self) }
            }
        }
        return Message(text: text, senderPID: sender)
    }
}
