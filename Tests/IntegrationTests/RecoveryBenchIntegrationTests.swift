#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest

/// Issue 13's proof at full size: 1,000 clients with envelopes that behave like the demo page (`hive-bench recovery`,
/// NIO clients, a few KiB each), a steady 100 messages/s published through hive (`POST /api/publish`, so each gets a
/// position), a worker killed with SIGKILL; every client of that worker reconnects with `since=` and every client
/// ends with every message exactly once, in order.
final class RecoveryBenchIntegrationTests: HiveTestCase {
    private let apiKey = "recovery-test-key-0123456789abcdef"

    private func startHiveWithHistory() throws -> (HiveProcess, port: Int, redis: RedisServer) {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url, "--dispatch", "round-robin", "--history-size", "10000"],
                                         environment: ["HIVE_API_KEY": apiKey])
        try redis.waitForSubscribers(channel: "test", count: 1)
        return (hive, port, redis)
    }

    /// `hive-bench recovery` at 100 messages/s through hive's publish API, `victim` SIGKILLed after `killAfter`.
    private func recovery(port: Int, redis: RedisServer, clients: Int, messages: Int, kill victim: Int32, after killAfter: Int,
                          _ more: [String] = ["--drain", "30", "--timeout", "60"]) throws -> BenchRun {
        try BenchRun.run([
            "recovery", "--port", String(port), "--redis", redis.url, "--api-key", apiKey, "--clients", String(clients),
            "--messages", String(messages), "--rate", "100", "--kill-pid", String(victim), "--kill-after", String(killAfter),
        ] + more + ["--json"])
    }

    func testKill9OfAWorker_under100MessagesPerSecond_1000ClientsWithEnvelopes_everyMessageOnceInOrder() throws {
        let (hive, port, redis) = try startHiveWithHistory()
        // Worker 1: its clients lose their connection; worker 0 (the Redis subscriber) keeps the others live.
        let victim = try XCTUnwrap(hive.currentWorkerPIDs()[1])
        let run = try recovery(port: port, redis: redis, clients: 1000, messages: 600, kill: victim, after: 200)
        writeLine(run.text.split(separator: "\n").prefix(6).joined(separator: "\n"))
        XCTAssertEqual(run.status, 0, run.text)
        let report = try run.json()
        XCTAssertEqual(report["connected"] as? Int, 1000, run.text)
        XCTAssertEqual(report["published"] as? Int, 600, run.text)
        XCTAssertEqual(report["killedPid"] as? Int, Int(victim), run.text)
        // Round-robin put about half of the clients on the killed worker: each of them came back.
        let reconnected = try XCTUnwrap(report["reconnectedClients"] as? Int, run.text)
        XCTAssertGreaterThanOrEqual(reconnected, 400, run.text)
        XCTAssertLessThan(reconnected, 1000, "the other worker's clients stayed connected: \(run.text)")
        XCTAssertEqual(report["exactClients"] as? Int, 1000, run.text)
        for key in ["lost", "duplicated", "outOfOrder", "recoveredFalse", "withoutOffset", "offsetRegressions", "corrupt"] {
            XCTAssertEqual(report[key] as? Int, 0, "\(key): \(run.text)")
        }
        XCTAssertEqual(report["received"] as? Int, 600_000, run.text)
        XCTAssertFalse(HiveProcess.isAlive(pid: victim))
    }

    /// Worker 0 is also the Redis subscriber: killed, its clients reconnect, and the other worker's clients, still
    /// connected, miss what was published until the new worker 0 subscribed: each fills that gap from history
    /// when the next live message shows it. Smaller (the reconnects cross the respawn), the same verdict.
    func testKill9OfWorker0_theSubscriber_everyClientStillGetsEveryMessageOnceInOrder() throws {
        let (hive, port, redis) = try startHiveWithHistory()
        let victim = try XCTUnwrap(hive.currentWorkerPIDs()[0])
        let run = try recovery(port: port, redis: redis, clients: 200, messages: 300, kill: victim, after: 100)
        writeLine(run.text.split(separator: "\n").prefix(6).joined(separator: "\n"))
        XCTAssertEqual(run.status, 0, run.text)
        let report = try run.json()
        XCTAssertGreaterThanOrEqual(report["reconnectedClients"] as? Int ?? 0, 80, run.text)
        XCTAssertEqual(report["exactClients"] as? Int, 200, run.text)
        XCTAssertEqual(report["received"] as? Int, 60_000, run.text)
        for key in ["lost", "duplicated", "outOfOrder", "recoveredFalse"] { XCTAssertEqual(report[key] as? Int, 0, "\(key): \(run.text)") }
    }

    /// The check of the checker: the same kill, but the clients reconnect without `since=` (a page that does not
    /// remember its position). The killed worker's clients miss what was published while they were away, and the
    /// bench must say so and fail.
    func testWithoutSince_theKilledWorkersClientsMissMessages_andTheBenchFails() throws {
        let (hive, port, redis) = try startHiveWithHistory()
        let victim = try XCTUnwrap(hive.currentWorkerPIDs()[1])
        let run = try recovery(port: port, redis: redis, clients: 100, messages: 200, kill: victim, after: 50,
                               ["--no-resume", "--drain", "3", "--timeout", "40"])
        XCTAssertEqual(run.status, 1, run.text)
        let report = try run.json()
        let reconnected = try XCTUnwrap(report["reconnectedClients"] as? Int, run.text)
        XCTAssertGreaterThan(reconnected, 0, run.text)
        XCTAssertEqual(report["exactClients"] as? Int, 100 - reconnected, run.text)
        XCTAssertGreaterThanOrEqual(report["lost"] as? Int ?? 0, reconnected, "at least one message each: \(run.text)")
        XCTAssertEqual(report["duplicated"] as? Int, 0, run.text)
    }
}

/// `make bench`'s issue 13 scenarios at tiny sizes: they run, and their checks hold and can fail. Never timings.
final class HistoryBenchSmokeTests: HiveTestCase {
    private let apiKey = "history-bench-key-0123456789abcdef"

    /// history_publish against plain_publish: the same hive, the same POST /api/publish, one channel through the
    /// history script (its stream holds every message) and one a --history rule turns off (a plain PUBLISH: no keys).
    func testPublishBench_throughTheScript_andPlain_publishEveryMessage_andOnlyTheHistoryChannelKeepsThem() throws {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url, "--history-size", "1000", "--history", "plain.*=0"],
                                         environment: ["HIVE_API_KEY": apiKey])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let master = try XCTUnwrap(hive.pid)
        for channel in ["plain.bench", "hist.bench"] {
            let run = try BenchRun.run([
                "publish", "--port", String(port), "--redis", redis.url, "--api-key", apiKey, "--channel", channel,
                "--messages", "300", "--connections", "4", "--hive-pids", String(master), "--json",
            ])
            XCTAssertEqual(run.status, 0, run.text)
            let report = try run.json()
            XCTAssertEqual(report["published"] as? Int, 300, run.text)
            XCTAssertEqual(report["failed"] as? Int, 0, run.text)
            XCTAssertNotNil(report["publishesPerSecond"] as? Double, run.text)
            XCTAssertNotNil(report["hiveMicrosPerMessage"] as? Double, run.text)
            XCTAssertNotNil(report["redisMicrosPerMessage"] as? Double, run.text)
            XCTAssertEqual((report["latency"] as? [String: Any])?["samples"] as? Int, 300, run.text)
        }
        XCTAssertEqual(try redis.command(["XLEN", "__hive:history:{hist.bench}"]), .integer(300))
        XCTAssertEqual(try redis.command(["HGET", "__hive:meta:{hist.bench}", "offset"]), .bulk(Array("300".utf8)))
        XCTAssertEqual(try redis.command(["EXISTS", "__hive:history:{plain.bench}", "__hive:meta:{plain.bench}"]), .integer(0))

        // A wrong key: every publish fails (401), and the bench says so.
        let refused = try BenchRun.run([
            "publish", "--port", String(port), "--redis", redis.url, "--api-key", "wrong-key-0123456789abcdef",
            "--channel", "hist.bench", "--messages", "5", "--connections", "1", "--json",
        ])
        XCTAssertEqual(refused.status, 1, refused.text)
        XCTAssertEqual(try refused.json()["failed"] as? Int, 5, refused.text)
    }

    /// envelope_latency: every other client without envelopes; both kinds get every message once, in order, and
    /// each delivery is a latency sample of its kind.
    func testEnvelopeLatencyBench_measuresBothKinds_onTheSameMessages() throws {
        let redis = try startRedis()
        let (_, port) = try startHive(workers: 2, ["--redis", redis.url, "--history-size", "1000"],
                                      environment: ["HIVE_API_KEY": apiKey])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let run = try BenchRun.run([
            "recovery", "--port", String(port), "--redis", redis.url, "--api-key", apiKey, "--channel", "env",
            "--clients", "40", "--messages", "50", "--rate", "100", "--plain-every", "2", "--drain", "10", "--timeout", "40", "--json",
        ])
        XCTAssertEqual(run.status, 0, run.text)
        let report = try run.json()
        XCTAssertEqual(report["envelopeClients"] as? Int, 20, run.text)
        XCTAssertEqual(report["plainClients"] as? Int, 20, run.text)
        XCTAssertEqual(report["exactClients"] as? Int, 40, run.text)
        XCTAssertEqual((report["envelopeLatency"] as? [String: Any])?["samples"] as? Int, 1000, run.text)
        XCTAssertEqual((report["plainLatency"] as? [String: Any])?["samples"] as? Int, 1000, run.text)
        XCTAssertEqual((report["envelopeLatency"] as? [String: Any])?["negative"] as? Int, 0, run.text)
        XCTAssertNotNil((report["plainLatency"] as? [String: Any])?["p99Us"] as? Double, run.text)
    }
}
