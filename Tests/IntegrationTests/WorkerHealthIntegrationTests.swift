import Foundation
import HiveIPC
import XCTest

/// Worker health against real processes: a worker stopped with SIGSTOP stands for one whose event loop hangs.
final class WorkerHealthIntegrationTests: HiveTestCase {
    private func runDir(_ hive: HiveProcess) -> String { hive.directory.appendingPathComponent("run").path }

    private func statusRows(_ hive: HiveProcess) throws -> [[String: Any]] {
        let status = try XCTUnwrap(try HiveCLI.json(["status", "--json", "--run-dir", runDir(hive)]) as? [String: Any])
        return try XCTUnwrap(status["workers"] as? [[String: Any]])
    }

    private func waitForRow(
        _ hive: HiveProcess, _ id: Int, _ what: String, timeout: TimeInterval, until condition: ([String: Any]) -> Bool
    ) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let row = try statusRows(hive)[id]
            if condition(row) { return row }
            if Date() > deadline { throw TestClientError.misuse("status never showed worker \(id) \(what); last: \(row)") }
            usleep(20_000)
        }
    }

    /// SIGSTOP one worker of two: once it is shown `unresponsive`, 20 requests on new connections all succeed (no
    /// connection is handed to it); after twice --worker-timeout it is killed and restarted, and the new process
    /// serves.
    func testStoppedWorker_isUnresponsive_getsNoConnections_thenIsKilledAndRestarted() throws {
        let (hive, port) = try startHive(workers: 2, ["--worker-timeout", "1", "--dispatch", "round-robin"])
        let victim = try XCTUnwrap(hive.currentWorkerPIDs()[0])
        XCTAssertEqual(kill(victim, SIGSTOP), 0)
        defer { if HiveProcess.isAlive(pid: victim) { kill(victim, SIGCONT) } }
        let stoppedAt = Date()

        let row = try waitForRow(hive, 0, "unresponsive", timeout: 5) { $0["state"] as? String == "unresponsive" }
        let detectedAfter = Date().timeIntervalSince(stoppedAt)
        XCTAssertEqual(row["pid"] as? Int, Int(victim))
        XCTAssertGreaterThanOrEqual(detectedAfter, 0.9, "flagged before --worker-timeout passed")
        XCTAssertEqual(try statusRows(hive)[1]["state"] as? String, "running")
        let text = try HiveCLI.run(["status", "--run-dir", runDir(hive)])
        XCTAssertTrue(text.stdout.contains("unresponsive"), text.stdout)

        let registry = try RegistryProbe.attach(masterPID: hive.pid!)
        let assignedBefore = registry.worker(0, .assigned).load(ordering: .relaxed)
        var failures: [String] = []
        for index in 0..<20 {
            do {
                let response = try HTTPTestClient(port: port, timeout: 2).request(path: "/hello")
                if response.status != 200 { failures.append("request \(index): status \(response.status)") }
            } catch {
                failures.append("request \(index): \(error)")
            }
        }
        XCTAssertEqual(failures, [], "requests sent while worker 0 was known to be unresponsive")
        XCTAssertEqual(
            registry.worker(0, .assigned).load(ordering: .relaxed), assignedBefore,
            "a connection was handed to the unresponsive worker"
        )

        let restarted = try waitForRow(hive, 0, "restarted", timeout: 5) {
            $0["state"] as? String == "running" && $0["restarts"] as? Int == 1
        }
        XCTAssertNotEqual(restarted["pid"] as? Int, Int(victim))
        XCTAssertEqual(restarted["lastExit"] as? String, "signal 9")
        XCTAssertEqual(HiveProcess.waitUntilGone([victim], timeout: 5), [])
        let log = hive.log()
        XCTAssertTrue(log.contains("worker is unresponsive; no new connections go to it"), log)
        XCTAssertTrue(log.contains("worker is hung; killing it so it is restarted"), log)
        XCTAssertTrue(log.contains("worker.pid=\(victim)"), log)

        var served: Set<Int> = []
        for _ in 0..<4 { served.insert(try worker(of: try WebSocketTestClient(port: port))) }
        XCTAssertEqual(served, [0, 1], "the restarted worker takes new clients")
    }

    /// A worker stopped for less than twice --worker-timeout goes back to `running` when it answers again: same
    /// process, no restart, and it takes connections again.
    func testBrieflyStoppedWorker_isRunningAgain_notRestarted() throws {
        let (hive, port) = try startHive(workers: 2, ["--worker-timeout", "3", "--dispatch", "round-robin"])
        let victim = try XCTUnwrap(hive.currentWorkerPIDs()[0])
        XCTAssertEqual(kill(victim, SIGSTOP), 0)
        var continued = false
        defer { if !continued { kill(victim, SIGCONT) } }

        // Unresponsive from 3 s to 6 s after the stop: a window wide enough for a loaded machine's `hive status`.
        _ = try waitForRow(hive, 0, "unresponsive", timeout: 8) { $0["state"] as? String == "unresponsive" }
        XCTAssertEqual(kill(victim, SIGCONT), 0)
        continued = true

        let row = try waitForRow(hive, 0, "running again", timeout: 3) { $0["state"] as? String == "running" }
        XCTAssertEqual(row["pid"] as? Int, Int(victim))
        XCTAssertEqual(row["restarts"] as? Int, 0)
        try hive.waitForLog(containing: "worker answers again; it takes new connections")
        // Past the kill threshold of the silence: still the same process, still running.
        usleep(3_500_000)
        let later = try statusRows(hive)[0]
        XCTAssertEqual(later["pid"] as? Int, Int(victim))
        XCTAssertEqual(later["state"] as? String, "running")
        XCTAssertEqual(later["restarts"] as? Int, 0)
        XCTAssertFalse(hive.log().contains("worker is hung"))

        var served: Set<Int> = []
        for _ in 0..<4 { served.insert(try worker(of: try WebSocketTestClient(port: port))) }
        XCTAssertEqual(served, [0, 1], "the worker that answered again takes new clients")
    }

    /// With its only worker unresponsive, the master answers new clients 503 itself at once instead of handing them
    /// to a loop that does not run.
    func testOnlyWorkerUnresponsive_newClientsGet503FromTheMaster() throws {
        let (hive, port) = try startHive(workers: 1, ["--worker-timeout", "2"])
        let victim = try XCTUnwrap(hive.currentWorkerPIDs()[0])
        XCTAssertEqual(kill(victim, SIGSTOP), 0)
        defer { if HiveProcess.isAlive(pid: victim) { kill(victim, SIGCONT) } }
        _ = try waitForRow(hive, 0, "unresponsive", timeout: 6) { $0["state"] as? String == "unresponsive" }

        let started = Date()
        let response = try HTTPTestClient(port: port, timeout: 2).request(path: "/hello")
        XCTAssertEqual(response.status, 503)
        XCTAssertEqual(response.header("Retry-After"), "1")
        XCTAssertTrue(String(decoding: response.body, as: UTF8.self).contains("unresponsive"))
        XCTAssertLessThan(Date().timeIntervalSince(started), 1, "the 503 came from the master, at once")
    }

    /// A reload while a worker is unresponsive asks it to retire like the others (the health check leaves it to the
    /// reload from then on); it cannot, so the reload kills it after its retire timeout, and it comes back from the
    /// executable on disk: after the reload every worker runs in a new process.
    func testReload_withAnUnresponsiveWorker_replacesItToo() throws {
        let (hive, port) = try startHive(workers: 2, ["--worker-timeout", "2"])
        let before = hive.currentWorkerPIDs()
        let victim = try XCTUnwrap(before[0])
        XCTAssertEqual(kill(victim, SIGSTOP), 0)
        defer { if HiveProcess.isAlive(pid: victim) { kill(victim, SIGCONT) } }
        _ = try waitForRow(hive, 0, "unresponsive", timeout: 6) { $0["state"] as? String == "unresponsive" }

        let reloaded = try HiveCLI.run(["reload", "--run-dir", runDir(hive)])
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        let after = Set(try statusRows(hive).compactMap { $0["pid"] as? Int }.map(Int32.init))
        XCTAssertTrue(after.isDisjoint(with: Set(before.values)), "before \(before), after \(after)")
        let log = hive.log()
        XCTAssertTrue(log.contains("worker did not retire in time; killing it"), log)
        XCTAssertFalse(log.contains("worker is hung"), "killed by the health check instead of replaced by the reload")
        XCTAssertEqual(try HTTPTestClient(port: port, timeout: 2).request(path: "/hello").status, 200)
    }

    /// Below 0.5 s a healthy worker could not answer between two checks (they go out at most every 100 ms).
    func testWorkerTimeoutOption_isValidated() throws {
        for value in ["0", "-1", "0.2", "nan", "100000"] {
            let bad = try HiveCLI.run(["start", "--worker-timeout=\(value)", "--port", "0"])
            XCTAssertEqual(bad.status, 1, "--worker-timeout \(value): \(bad.stderr)")
            XCTAssertTrue(bad.stderr.contains("--worker-timeout must be between 0.5 and 86400 seconds"), bad.stderr)
        }
    }

    /// A reload with a short --worker-timeout: the retiring processes are not watched, so none is killed as hung,
    /// and the replacements are watched from when they are ready.
    func testReload_withAShortWorkerTimeout_killsNothingAsHung() throws {
        let (hive, port) = try startHive(workers: 2, ["--worker-timeout", "1"])
        let client = try WebSocketTestClient(port: port)
        _ = try connectionID(of: client)
        let before = Set(hive.currentWorkerPIDs().values)
        let probe = ProbeLoop(port: port)
        let reloaded = try HiveCLI.run(["reload", "--run-dir", runDir(hive)])
        let probes = probe.stop()
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        XCTAssertEqual(probes.failed, 0, "requests failed during the reload")
        let after = Set(try statusRows(hive).compactMap { $0["pid"] as? Int }.map(Int32.init))
        XCTAssertTrue(after.isDisjoint(with: before), "before \(before), after \(after)")
        // Longer than twice the timeout: the new workers answer, nothing is flagged.
        usleep(2_500_000)
        let rows = try statusRows(hive)
        XCTAssertEqual(rows.map { $0["state"] as? String }, ["running", "running"])
        XCTAssertEqual(rows.map { $0["restarts"] as? Int }, [0, 0])
        let log = hive.log()
        XCTAssertFalse(log.contains("worker is unresponsive") || log.contains("worker is hung"), log)
    }
}
