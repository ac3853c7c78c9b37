import Foundation
import XCTest

/// The run dir holds what operator commands trust (`hive.pid`, `hive.sock`): Hive neither starts in nor talks to
/// one that another user owns or can write, and the CLI checks the control socket before it sends anything.
/// Tests that change owners need root (the suite runs as root); they skip otherwise.
final class RunDirectoryIntegrationTests: HiveTestCase {
    private static let nobody: uid_t = 65534

    private func freshDirectory(_ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hive-\(name)-\(UUID().uuidString.prefix(8))").path
        XCTAssertEqual(mkdir(path, 0o700), 0, "mkdir \(path)")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func requireRoot() throws {
        try XCTSkipUnless(geteuid() == 0, "changing a file's owner needs root")
    }

    /// Every operator command that reads the run dir refuses it with `line` on stderr and exit status 1.
    /// `hive start` in `dir` exits 1 with `line` in its output, before it serves anything.
    private func assertStartRefuses(_ dir: String, with line: String, file: StaticString = #filePath, lineNumber: UInt = #line) throws {
        let hive = try HiveProcess(arguments: ["--port", "0", "--workers", "1", "--run-dir", dir, "--redis", "none"])
        XCTAssertThrowsError(try hive.start(readyTimeout: 10), file: file, line: lineNumber)
        XCTAssertEqual(hive.exitStatus, 1, file: file, line: lineNumber)
        XCTAssertTrue(hive.log().contains(line), hive.log(), file: file, line: lineNumber)
    }

    private func assertEveryCommandRefuses(_ dir: String, with line: String, file: StaticString = #filePath, lineNumber: UInt = #line) throws {
        let commands = [["status"], ["connections"], ["stop"], ["reload"], ["push", "1", "x"], ["disconnect", "1"]]
        for command in commands {
            let result = try HiveCLI.run(command + ["--run-dir", dir])
            XCTAssertEqual(result.status, 1, "\(command)", file: file, line: lineNumber)
            XCTAssertEqual(result.stderr, line + "\n", "\(command)", file: file, line: lineNumber)
        }
    }

    func testRunDirOwnedByAnotherUser_isRefusedByStartAndByEveryCommand() throws {
        try requireRoot()
        let dir = try freshDirectory("foreign")
        XCTAssertEqual(chown(dir, Self.nobody, Self.nobody), 0)
        let expected = "hive: error: run dir \(dir) is owned by uid 65534, not by you (uid 0); remove it or choose another --run-dir"

        try assertStartRefuses(dir, with: expected)
        let daemon = try HiveCLI.run(["start", "--daemon", "--port", "0", "--workers", "1", "--run-dir", dir, "--redis", "none"])
        XCTAssertEqual(daemon.status, 1)
        XCTAssertEqual(daemon.stderr, expected + "\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [], "nothing may be written there")

        try assertEveryCommandRefuses(dir, with: expected)
    }

    /// The attack of the issue: another user plants a pid file naming someone else's master; `stop` must not signal it.
    func testPlantedPIDFile_inAnotherUsersRunDir_isNeverSignalled() throws {
        try requireRoot()
        let (victim, _) = try startHive(workers: 1)
        let dir = try freshDirectory("planted")
        try "\(victim.pid!)\n".write(toFile: dir + "/hive.pid", atomically: true, encoding: .utf8)
        XCTAssertEqual(chown(dir + "/hive.pid", Self.nobody, Self.nobody), 0)
        XCTAssertEqual(chown(dir, Self.nobody, Self.nobody), 0)
        let stop = try HiveCLI.run(["stop", "--run-dir", dir, "--timeout", "2"])
        XCTAssertEqual(stop.status, 1)
        XCTAssertTrue(stop.stderr.contains("is owned by uid 65534, not by you"), stop.stderr)
        XCTAssertTrue(victim.isRunning, "the master named by the planted pid file was signalled")
    }

    func testWorldWritableRunDir_isRefusedByStartAndByEveryCommand() throws {
        let dir = try freshDirectory("open")
        XCTAssertEqual(chmod(dir, 0o777), 0)
        let expected = "hive: error: run dir \(dir) is writable by its group and others (mode 0777): another user could "
            + "replace the files in it; remove it or choose another --run-dir"
        try assertStartRefuses(dir, with: expected)
        try assertEveryCommandRefuses(dir, with: expected)
    }

    /// In a folder others can write (without /tmp's sticky bit) the run dir could be renamed and swapped after the
    /// check: refused even when the run dir itself is fine.
    func testRunDirInAFolderOthersCanWrite_isRefused() throws {
        let shared = try freshDirectory("shared")
        XCTAssertEqual(chmod(shared, 0o777), 0)
        let dir = shared + "/run"
        XCTAssertEqual(mkdir(dir, 0o700), 0)
        let expected = "hive: error: folder \(shared) of run dir \(dir) is writable by other users without the sticky bit "
            + "(mode 0777): another user could swap it for their own; choose another --run-dir"
        try assertStartRefuses(dir, with: expected)
        try assertEveryCommandRefuses(dir, with: expected)
    }

    func testSymlinkedRunDir_isRefused() throws {
        let target = try freshDirectory("target")
        let link = target + ".link"
        XCTAssertEqual(symlink(target, link), 0)
        addTeardownBlock { unlink(link) }
        try assertStartRefuses(link, with: "run dir \(link) is a symbolic link, not a directory; remove it or choose another --run-dir")
    }

    /// Another user's socket in place of `hive.sock`: the CLI refuses before it connects, so the payload never leaves.
    func testControlSocketOfAnotherUser_isRefusedBeforeAnythingIsSent() throws {
        try requireRoot()
        let (hive, _) = try startHive(workers: 1)
        let dir = hive.directory.appendingPathComponent("run").path
        let path = dir + "/hive.sock"
        XCTAssertEqual(unlink(path), 0)
        let impostor = try listeningSocket(at: path)
        defer { close(impostor) }
        XCTAssertEqual(chown(path, Self.nobody, Self.nobody), 0)

        let pushed = try HiveCLI.run(["push", "4294967296", "secret", "--run-dir", dir])
        XCTAssertEqual(pushed.status, 1)
        XCTAssertEqual(
            pushed.stderr,
            "hive: error: control socket \(path) is owned by uid 65534, not by you (uid 0); nothing was sent; stop the "
                + "master, remove the socket and start it again\n"
        )
        XCTAssertEqual(try HiveCLI.run(["status", "--run-dir", dir]).status, 1)
        let client = accept(impostor, nil, nil)
        if client >= 0 { close(client) }
        XCTAssertEqual(client, -1, "the CLI connected to the impostor's socket")
        XCTAssertEqual(errno, EAGAIN)
    }

    /// A socket file that looks like ours but is served by another user's process (the file was moved in and
    /// chowned): the CLI learns the server's uid from the kernel (SO_PEERCRED) and sends nothing.
    func testControlSocketServedByAnotherUser_isRefusedBeforeSending() throws {
        try requireRoot()
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser"), "needs runuser (util-linux)")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), "needs python3")
        let (hive, _) = try startHive(workers: 1)
        let dir = hive.directory.appendingPathComponent("run").path
        let shared = try freshDirectory("impostor")
        XCTAssertEqual(chown(shared, Self.nobody, Self.nobody), 0)
        let received = shared + "/received"
        // nobody's server: accepts one client, writes what it read to `received`, and exits.
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(sys.argv[1] + "/s.sock"); s.listen(1)
            open(sys.argv[1] + "/listening", "w").close()
            s.settimeout(10)
            c, _ = s.accept(); c.settimeout(1)
            data = b""
            try:
                while len(data) < 4096:
                    chunk = c.recv(4096)
                    if not chunk: break
                    data += chunk
            except socket.timeout:
                pass
            open(sys.argv[1] + "/received", "wb").write(data)
            """
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
        server.arguments = ["-u", "nobody", "--", "/usr/bin/python3", "-c", script, shared]
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: shared + "/listening") {
            XCTAssertLessThan(Date(), deadline, "the impostor did not start listening")
            if Date() > deadline { return }
            usleep(20_000)
        }
        let path = dir + "/hive.sock"
        XCTAssertEqual(unlink(path), 0)
        XCTAssertEqual(rename(shared + "/s.sock", path), 0)
        XCTAssertEqual(chown(path, 0, 0), 0)
        XCTAssertEqual(chmod(path, 0o600), 0)  // the file now passes every check: only the kernel knows better

        let pushed = try HiveCLI.run(["push", "4294967296", "secret", "--run-dir", dir])
        XCTAssertEqual(pushed.status, 1)
        XCTAssertEqual(
            pushed.stderr,
            "hive: the control socket \(path) is served by uid 65534, not by you (uid 0); nothing was sent: stop that "
                + "master, remove the socket, and start it again\n"
        )
        server.waitUntilExit()
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: received)), Data(), "the impostor received the request")
    }

    /// Root's default run dir is in /run/hive, which only root can write; found again by `--port`.
    func testDefaultRunDir_forRoot_isUnderRunHive_private_andFoundByPort() throws {
        try requireRoot()
        let port = HiveProcess.freePort()
        let dir = "/run/hive/hive-\(port)"
        addTeardownBlock { rmdir(dir) }
        let none = try HiveCLI.run(["status", "--port", String(port)])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.contains("no Hive master is running for run dir \(dir) "), none.stderr)

        let hive = try HiveProcess(arguments: ["--port", String(port), "--workers", "1", "--redis", "none"])
        try hive.start()
        XCTAssertTrue(hive.log().contains("run dir \(dir))"), hive.log())
        var info = stat()
        XCTAssertEqual(lstat(dir, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o700)
        XCTAssertEqual(info.st_uid, 0)
        XCTAssertEqual(lstat("/run/hive", &info), 0)
        XCTAssertEqual(info.st_uid, 0)
        XCTAssertEqual(info.st_mode & 0o022, 0)
        XCTAssertEqual(try HiveCLI.run(["status", "--port", String(port)]).status, 0)
        let stopped = try HiveCLI.run(["stop", "--port", String(port)])
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertEqual(hive.exitStatus ?? (try? hive.stop()), 0)
    }

    /// Other users default to their private runtime dir ($XDG_RUNTIME_DIR), else the temp dir.
    func testDefaultRunDir_forOtherUsers_isUnderXDGRuntimeDir_elseTheTempDir() throws {
        try requireRoot()
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser"), "needs runuser (util-linux)")
        let port = String(HiveProcess.freePort())
        let cases: [(environment: [String], dir: String)] = [
            (["XDG_RUNTIME_DIR=/run/user/65534", "TMPDIR=/var/tmp"], "/run/user/65534/hive-\(port)"),
            (["-u", "XDG_RUNTIME_DIR", "TMPDIR=/var/tmp"], "/var/tmp/hive-\(port)"),
            (["-u", "XDG_RUNTIME_DIR", "-u", "TMPDIR"], "/tmp/hive-\(port)"),
        ]
        for (environment, dir) in cases {
            let result = try runAsNobody(["/usr/bin/env"] + environment + [HiveProcess.binaryURL().path, "status", "--port", port])
            XCTAssertEqual(result.status, 1, "\(environment)")
            XCTAssertTrue(result.stderr.contains("no Hive master is running for run dir \(dir) "), "\(environment): \(result.stderr)")
        }
    }

    // MARK: helpers

    private func listeningSocket(at path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 4) == 0 else {
            close(fd)
            throw TestClientError.misuse("cannot listen on \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    private func runAsNobody(_ command: [String]) throws -> HiveCLI.Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
        process.arguments = ["-u", "nobody", "--"] + command
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return HiveCLI.Result(status: process.terminationStatus, stdout: "", stderr: String(decoding: stderr, as: UTF8.self))
    }
}
