#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest

/// `hive start --port 0`: the kernel picks a free port, and everything named after the port (the `ready` line, the
/// default run dir `hive-<port>`, a daemon's log in it, `hive status --port`) names the real one. These tests use
/// the default run dir on purpose: finding the master by its port is the point.
final class PortZeroIntegrationTests: XCTestCase {
    private var started: [HiveProcess] = []
    private var runDirs: [String] = []

    override func tearDown() {
        for hive in started {
            _ = try? hive.stop()
            if (testRun?.totalFailureCount ?? 0) > 0 {
                HiveProcess.note("----- hive log (\(hive.logURL.path)) -----\n" + hive.log())
            }
        }
        started = []
        // Default run dirs are outside the tests' temp folders: each is removed once its master is gone.
        for dir in runDirs where dir.contains("/hive-") { try? FileManager.default.removeItem(atPath: dir) }
        runDirs = []
        super.tearDown()
    }

    /// `hive start --port 0 <extra>` with the default run dir; returns it ready, with its port.
    private func startOnPortZero(_ extra: [String] = [], environment: [String: String] = [:])
        throws -> (HiveProcess, port: Int)
    {
        let hive = try HiveProcess(
            arguments: ["--port", "0", "--workers", "1", "--redis", "none"] + extra, environment: environment)
        started.append(hive)
        try hive.start()
        let port = try XCTUnwrap(hive.port, hive.log())
        runDirs.append(Self.runDir(in: hive.log()) ?? "")
        return (hive, port)
    }

    /// The run dir of the `ready` line: `… run dir /run/hive/hive-43117)`.
    private static func runDir(in text: String) -> String? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains("ready on http://") }),
            let start = line.range(of: "run dir ")?.upperBound
        else { return nil }
        return String(line[start...].prefix { $0 != ")" })
    }

    /// The master pid of the `ready` line: `(… master pid 24600, run dir …)`.
    private static func masterPID(in text: String) -> Int32? {
        guard let start = text.range(of: "master pid ")?.upperBound else { return nil }
        return Int32(text[start...].prefix { $0.isNumber })
    }

    func testPortZero_readyLineNamesTheKernelsPort_whichServes_andStatusFindsItByPort() throws {
        let (hive, port) = try startOnPortZero()
        XCTAssertTrue((1...65_535).contains(port), hive.log())
        XCTAssertTrue(hive.log().contains("ready on http://127.0.0.1:\(port) with 1 workers"), hive.log())
        XCTAssertEqual(Self.runDir(in: hive.log()).map { URL(fileURLWithPath: $0).lastPathComponent }, "hive-\(port)")

        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
        let client = try WebSocketTestClient(port: port)
        let status = try HiveCLI.run(["status", "--port", String(port)])
        XCTAssertEqual(status.status, 0, status.stderr)
        XCTAssertTrue(
            status.stdout.contains("master pid: \(hive.pid!)   listen: http://127.0.0.1:\(port)"), status.stdout)
        let connections = try HiveCLI.run(["connections", "--port", String(port)])
        XCTAssertEqual(connections.status, 0, connections.stderr)
        XCTAssertTrue(connections.stdout.contains("websocket"), connections.stdout)
        client.close()

        let stopped = try HiveCLI.run(["stop", "--port", String(port)])
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        try hive.waitForLog(containing: "master stopped")
        XCTAssertEqual(try hive.stop(), 0)
    }

    func testTwoServersOnPortZero_getDifferentPortsAndRunDirs_andBothServe() throws {
        let (first, firstPort) = try startOnPortZero()
        let (second, secondPort) = try startOnPortZero()
        XCTAssertNotEqual(firstPort, secondPort)
        XCTAssertNotEqual(Self.runDir(in: first.log()), Self.runDir(in: second.log()))
        for (hive, port) in [(first, firstPort), (second, secondPort)] {
            XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
            let status = try HiveCLI.run(["status", "--port", String(port)])
            XCTAssertEqual(status.status, 0, status.stderr)
            XCTAssertTrue(status.stdout.contains("master pid: \(hive.pid!) "), status.stdout)
        }
    }

    /// The detached master binds before the detach, so the parent prints the real port, and the default log goes
    /// to the real port's run dir.
    func testDaemonOnPortZero_printsTheRealPort_andIsFoundByIt() throws {
        let started = try HiveCLI.run(["start", "--daemon", "--port", "0", "--workers", "1", "--redis", "none"])
        XCTAssertEqual(started.status, 0, started.stderr)
        let port = try XCTUnwrap(HiveProcess.readyPort(in: started.stdout), started.stdout)
        let pid = try XCTUnwrap(Self.masterPID(in: started.stdout), started.stdout)
        defer { kill(pid, SIGKILL) }  // workers follow (PR_SET_PDEATHSIG)
        let dir = try XCTUnwrap(Self.runDir(in: started.stdout), started.stdout)
        runDirs.append(dir)
        XCTAssertEqual(try String(contentsOfFile: dir + "/hive.pid", encoding: .utf8), "\(pid)\n")
        XCTAssertNotEqual(port, 0)
        XCTAssertTrue(dir.hasSuffix("/hive-\(port)"), dir)
        XCTAssertTrue(started.stdout.contains("(detached; log \(dir)/hive.log)"), started.stdout)

        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
        XCTAssertEqual(try HiveCLI.run(["status", "--port", String(port)]).status, 0)
        let stopped = try HiveCLI.run(["stop", "--port", String(port)])
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertEqual(HiveProcess.waitUntilGone([pid], timeout: 10), [])
        XCTAssertTrue(try String(contentsOfFile: dir + "/hive.log", encoding: .utf8).contains("master stopped"))
    }

    func testPortZero_fromTheEnvironmentOrTheConfigFile() throws {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("hive-p0-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("hive.yaml").path
        try "port: 0\nworkers: 1\n".write(toFile: config, atomically: true, encoding: .utf8)

        let fromEnvironment = try HiveProcess(arguments: ["--workers", "1", "--redis", "none", "--run-dir", "run"],
                                              environment: ["HIVE_PORT": "0"])
        let fromFile = try HiveProcess(arguments: ["--config", config, "--redis", "none", "--run-dir", "run"],
                                       environment: ["HIVE_PORT": ""])
        for hive in [fromEnvironment, fromFile] {
            started.append(hive)
            let port = try hive.startAndReadPort()
            XCTAssertNotEqual(port, 0)
            XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
        }
    }

    func testPortOutOfRange_isRefusedSayingZeroMeansAnyPort() throws {
        for value in ["-1", "65536"] {
            let bad = try HiveCLI.run(["start", "--port=\(value)", "--redis", "none"])
            XCTAssertEqual(bad.status, 1, bad.stderr)
            XCTAssertTrue(
                bad.stderr.contains("--port must be between 0 (any free port) and 65535, got \(value)"), bad.stderr)
        }
    }

    /// Port 0 is no master's port: the operator commands say which port to give instead of looking for `hive-0`.
    func testOperatorCommand_withPortZero_asksForThePortOfTheReadyLine() throws {
        for command in [["status"], ["connections"], ["stop"], ["reload"], ["reopen-logs"], ["push", "1", "x"]] {
            let result = try HiveCLI.run(command + ["--port", "0"])
            XCTAssertEqual(result.status, 1, "\(command)")
            // The line, then the command's usage (as for any invalid option).
            XCTAssertTrue(result.stderr.hasPrefix("hive: error: --port 0 names no master: `hive start --port 0` "
                + "listens on a free port, which its ready line shows; give that port, or --run-dir\n"), result.stderr)
        }
    }

    /// A fixed port keeps its order (run dir first, then the port): a second `hive start` on the port of a running
    /// Hive with the same default run dir is refused by the run dir, naming the first master, and leaves it alone.
    func testSecondStartOnTheSamePort_isRefusedByTheRunDir_andTheFirstKeepsServing() throws {
        let (first, port) = try startOnPortZero()
        let dir = try XCTUnwrap(Self.runDir(in: first.log()))
        let second = try HiveProcess(arguments: ["--port", String(port), "--workers", "1", "--redis", "none"])
        XCTAssertThrowsError(try second.start(readyTimeout: 10))
        XCTAssertEqual(second.exitStatus, 1)
        XCTAssertTrue(second.log().contains("hive: error: run dir \(dir) already belongs to a running Hive master "
            + "(pid \(first.pid!)); stop it with `hive stop --run-dir \(dir)` or choose another --run-dir"),
            second.log())
        XCTAssertEqual(try String(contentsOfFile: dir + "/hive.pid", encoding: .utf8), "\(first.pid!)\n")
        let status = try HiveCLI.run(["status", "--port", String(port)])
        XCTAssertEqual(status.status, 0, status.stderr)
        XCTAssertTrue(status.stdout.contains("master pid: \(first.pid!) "), status.stdout)
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
    }
}
