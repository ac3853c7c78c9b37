import Foundation
import XCTest

/// The `make bench` scenario of issue 12 (`hive-bench reload`, scenario reload_10k) at a tiny size: it runs, it
/// replaces the workers while publishing, and its checks hold and can fail. Never timings.
final class ReloadBenchSmokeTests: HiveTestCase {
    private func run(_ extra: [String]) throws -> (BenchRun, [String: Any]) {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let master = try XCTUnwrap(hive.pid, "hive's pid")
        let run = try BenchRun.run([
            "reload", "--port", String(port), "--redis", redis.url, "--clients", "200", "--seconds", "3",
            "--rate", "20", "--reload-every", "1", "--processes", "1", "--http-idle", "0", "--master-pid", String(master),
            "--drain", "10", "--timeout", "90", "--json",
        ] + extra)
        return (run, try run.json())
    }

    func testReloadBench_replacesTheWorkersWhilePublishing_nothingLostOrDuplicated() throws {
        let (run, report) = try run([])
        XCTAssertEqual(run.status, 0, run.text)
        XCTAssertEqual(report["lost"] as? Int, 0, run.text)
        XCTAssertEqual(report["duplicated"] as? Int, 0, run.text)
        XCTAssertGreaterThanOrEqual(report["reloadsSignalled"] as? Int ?? 0, 2, run.text)
        XCTAssertGreaterThanOrEqual(report["workerProcessesStarted"] as? Int ?? 0, 2, "at least one whole reload: \(run.text)")
        let reloading = try XCTUnwrap(report["reloading"] as? [String: Any], run.text)
        XCTAssertEqual(reloading["expectedDeliveries"] as? Int, 200 * 60, run.text)
        XCTAssertEqual(reloading["closedDuringRun"] as? Int, 0, run.text)
        XCTAssertNotNil(report["p99BaselineUs"], run.text)
        XCTAssertNotNil(report["p99ReloadingUs"], run.text)
    }

    /// The check of the checker: `hive reload --drop` closes every client with 1012, which the run must report.
    func testReloadBench_withDrop_reportsClosedClientsAndLostDeliveries() throws {
        let (run, report) = try run(["--drop", "--no-baseline"])
        XCTAssertEqual(run.status, 1, run.text)
        let reloading = try XCTUnwrap(report["reloading"] as? [String: Any], run.text)
        XCTAssertGreaterThan(reloading["closedDuringRun"] as? Int ?? 0, 0, run.text)
        XCTAssertGreaterThan(report["lost"] as? Int ?? 0, 0, run.text)
        XCTAssertNil(report["baseline"], run.text)
    }
}
