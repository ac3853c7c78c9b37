import Foundation
import XCTest

/// The `make bench` scenarios of issue 11 (channels) and issue 14 (the C fan-out reference) at tiny sizes: they run,
/// and their correctness checks hold and can fail. Never timings: speed is measured by `make bench` alone.
final class ChannelsBenchSmokeTests: HiveTestCase {
    func testChannelsBench_eachClientGetsExactlyItsChannelsMessagesAndEveryBroadcast() throws {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let master = try XCTUnwrap(hive.pid, "hive's pid")

        let run = try BenchRun.run([
            "channels", "--port", String(port), "--redis", redis.url, "--clients", "200", "--channels", "10",
            "--channel-messages", "40", "--broadcast-messages", "5", "--processes", "2", "--hive-pids", String(master),
            "--idle-window", "0.5", "--drain", "10", "--timeout", "90", "--json",
        ])
        XCTAssertEqual(run.status, 0, run.text)
        let report = try run.json()
        XCTAssertEqual(report["connected"] as? Int, 200, run.text)
        XCTAssertEqual(report["exactClients"] as? Int, 200, run.text)
        XCTAssertEqual(report["subscribedChannels"] as? Int, 10, run.text)
        let phases = try XCTUnwrap(report["phases"] as? [[String: Any]], run.text)
        XCTAssertEqual(phases.count, 2)
        // 40 messages over 10 channels of 20 clients: 4 each, 80 per channel, 800 in all; 5 broadcasts to 200.
        XCTAssertEqual(phases[0]["expectedDeliveries"] as? Int, 800, run.text)
        XCTAssertEqual(phases[0]["deliveries"] as? Int, 800, run.text)
        XCTAssertEqual(phases[0]["recipientsPerMessage"] as? Int, 20, run.text)
        XCTAssertEqual(phases[1]["expectedDeliveries"] as? Int, 1000, run.text)
        XCTAssertEqual(phases[1]["deliveries"] as? Int, 1000, run.text)
        for phase in phases {
            for key in ["lost", "duplicated", "strays", "outOfOrder"] { XCTAssertEqual(phase[key] as? Int, 0, "\(key): \(run.text)") }
            XCTAssertNotNil(phase["hiveMicrosPerMessage"], run.text)
            XCTAssertNotNil(phase["hiveNetMicrosPerMessage"], run.text)
        }
        XCTAssertNotNil(report["costRatio"], run.text)
        XCTAssertNotNil(report["hiveIdleCores"], run.text)
    }

    /// The check of the checker: message 0 (channel ch0) is published on the broadcast channel instead, so every
    /// client outside ch0 gets a stray, and message 1 (ch1) is never published, so ch1's clients miss it.
    func testChannelsBench_injectedFaults_areCountedPerClient() throws {
        let redis = try startRedis()
        let (_, port) = try startHive(workers: 2, ["--redis", redis.url])
        try redis.waitForSubscribers(channel: "test", count: 1)

        let run = try BenchRun.run([
            "channels", "--port", String(port), "--redis", redis.url, "--clients", "100", "--channels", "10",
            "--channel-messages", "20", "--broadcast-messages", "2", "--processes", "1", "--inject-faults",
            "--drain", "3", "--timeout", "60", "--json",
        ])
        XCTAssertEqual(run.status, 1, run.text)
        let report = try run.json()
        let phases = try XCTUnwrap(report["phases"] as? [[String: Any]], run.text)
        XCTAssertEqual(phases.first?["strays"] as? Int, 90, run.text)
        XCTAssertEqual(phases.first?["lost"] as? Int, 10, run.text)
        XCTAssertEqual(phases.last?["lost"] as? Int, 0, run.text)
        // Only ch0's clients got exactly their messages (every other one a stray, ch1's also a loss).
        XCTAssertEqual(report["exactClients"] as? Int, 10, run.text)
    }
}

/// scripts/reference/fanout-minimal.c: built with the system's C compiler, its handshake and relay driven by the
/// same hive-bench fanout that measures hive, in both modes; every message reaches every client once, in order.
final class FanoutReferenceSmokeTests: HiveTestCase {
    private func build() throws -> URL { try CReference.build("fanout-minimal") }

    func testReference_acceptKey_isRFC6455s() throws {
        let binary = try build()
        defer { try? FileManager.default.removeItem(at: binary) }
        let run = try BenchRun.command(binary.path, ["--accept", "dGhlIHNhbXBsZSBub25jZQ=="])
        XCTAssertEqual(run.status, 0, run.text)
        XCTAssertEqual(run.text.trimmingCharacters(in: .whitespacesAndNewlines), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    func testReference_deliversEveryMessageOnce_coalescingAndPerFrame() throws {
        let binary = try build()
        defer { try? FileManager.default.removeItem(at: binary) }
        let redis = try startRedis()
        for mode in ["coalesce", "per-frame"] {
            let port = HiveProcess.freePort()
            let reference = Process()
            reference.executableURL = binary
            reference.arguments = [String(port), String(redis.port), "test", "2", mode]
            reference.standardError = FileHandle.nullDevice
            try reference.run()
            defer {
                reference.terminate() // SIGTERM to its pid: it stops and reaps its two serving processes
                reference.waitUntilExit()
            }
            try redis.waitForSubscribers(channel: "test", count: 2)
            let run = try BenchRun.run([
                "fanout", "--port", String(port), "--redis", redis.url, "--clients", "200", "--messages", "50",
                "--processes", "2", "--http-idle", "0", "--expect-subscribers", "2", "--drain", "10", "--timeout", "60",
                "--hive-pids", String(reference.processIdentifier),
            ])
            XCTAssertEqual(run.status, 0, "\(mode): \(run.text)")
            XCTAssertTrue(run.text.contains("deliveries: 10000/10000"), "\(mode): \(run.text)")
            XCTAssertTrue(run.text.contains("lost 0, duplicated 0, out of order 0, corrupt 0"), "\(mode): \(run.text)")
            // With --hive-pids, the server's CPU per message and per delivery (the channels_floor comparison).
            XCTAssertTrue(
                run.text.contains("server: ") && run.text.contains("µs CPU per message"), "\(mode): \(run.text)")
            XCTAssertTrue(run.text.contains("µs per delivery"), "\(mode): \(run.text)")
        }
    }

    /// With a channel count, the reference routes chK's messages to the clients that asked for chK only (the issue
    /// 11 floor): hive-bench channels' exactly-once, no-stray checks hold against it, with 2 subscribers per channel.
    func testReference_withChannels_sendsEachChannelsMessagesToItsClientsOnly() throws {
        let binary = try build()
        defer { try? FileManager.default.removeItem(at: binary) }
        let redis = try startRedis()
        let port = HiveProcess.freePort()
        let reference = Process()
        reference.executableURL = binary
        reference.arguments = [String(port), String(redis.port), "test", "2", "coalesce", "10"]
        reference.standardError = FileHandle.nullDevice
        try reference.run()
        defer {
            reference.terminate()
            reference.waitUntilExit()
        }
        try redis.waitForSubscribers(channel: "ch9", count: 2)
        let run = try BenchRun.run([
            "channels", "--port", String(port), "--redis", redis.url, "--clients", "200", "--channels", "10",
            "--channel-messages", "40", "--broadcast-messages", "5", "--processes", "2", "--expect-subscribers", "2",
            "--hive-pids", String(reference.processIdentifier), "--idle-window", "0.5", "--drain", "10",
            "--timeout", "90", "--json",
        ])
        XCTAssertEqual(run.status, 0, run.text)
        let report = try run.json()
        XCTAssertEqual(report["exactClients"] as? Int, 200, run.text)
        XCTAssertEqual(report["subscribedChannels"] as? Int, 10, run.text)
        let phases = try XCTUnwrap(report["phases"] as? [[String: Any]], run.text)
        XCTAssertEqual(phases.map { $0["deliveries"] as? Int }, [800, 1000], run.text)
        XCTAssertEqual(phases.map { $0["strays"] as? Int }, [0, 0], run.text)
        XCTAssertNotNil(report["costRatio"], run.text)
    }
}

/// One run of `hive-bench` (next to the `hive` binary under test), or of any command, with its output.
struct BenchRun {
    let status: Int32
    let text: String
    let stdout: Data

    static func run(_ arguments: [String]) throws -> BenchRun {
        let generator = HiveProcess.binaryURL().deletingLastPathComponent().appendingPathComponent("hive-bench")
        return try command(generator.path, arguments)
    }

    static func command(_ path: String, _ arguments: [String]) throws -> BenchRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Both pipes drained at once: a full stderr pipe must not stall the process while we wait on stdout.
        let drained = DispatchGroup()
        nonisolated(unsafe) var errorData = Data()
        drained.enter()
        DispatchQueue.global().async {
            errorData = errors.fileHandleForReading.readDataToEndOfFile()
            drained.leave()
        }
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        process.waitUntilExit()
        return BenchRun(
            status: process.terminationStatus,
            text: String(decoding: errorData, as: UTF8.self) + String(decoding: outputData, as: UTF8.self),
            stdout: outputData)
    }

    func json() throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: stdout) as? [String: Any], text)
    }
}

/// The `conn_100k` scenario of `make bench` (issue 14 item 5) at 2,000 connections: the same `hive-bench connections`
/// code path (clients over two source addresses, three workers, broadcasts through Redis, a worker killed and a
/// reconnect storm). Correctness only; the figures are `make bench`'s.
final class ConnectionsBenchSmokeTests: HiveTestCase {
    private func connections(port: Int, redis: RedisServer, master: Int32, extra: [String] = []) throws -> BenchRun {
        try BenchRun.run([
            "connections", "--port", String(port), "--redis", redis.url, "--hive-pids", String(master),
            "--clients", "2000", "--per-address", "1000", "--processes", "2", "--broadcasts", "3", "--storm", "300",
            "--settle", "3", "--drain", "10", "--timeout", "120", "--json",
        ] + extra)
    }

    func testConnections_everyBroadcastReachesAll_andTheStormReconnectsAfterAWorkerCrash() throws {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 3, ["--redis", redis.url])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let master = try XCTUnwrap(hive.pid, "hive's pid")
        let workersBefore = hive.workerPIDs()

        let run = try connections(port: port, redis: redis, master: master)
        XCTAssertEqual(run.status, 0, run.text)
        let report = try run.json()
        XCTAssertEqual(report["connected"] as? Int, 2000, run.text)
        XCTAssertEqual(report["sourceAddresses"] as? Int, 2, run.text)
        XCTAssertEqual(report["workers"] as? Int, 3, run.text)
        XCTAssertEqual(report["expectedDeliveries"] as? Int, 6000, run.text)
        XCTAssertEqual(report["deliveries"] as? Int, 6000, run.text)
        for key in ["lost", "duplicated", "outOfOrder", "closedDuringBroadcasts"] {
            XCTAssertEqual(report[key] as? Int, 0, "\(key): \(run.text)")
        }
        // Least-connections spread them: each worker holds about a third (its descriptors, ~40 of its own).
        let perWorker = try XCTUnwrap(report["connectionsPerWorker"] as? [Int], run.text)
        XCTAssertEqual(perWorker.count, 3, run.text)
        for fds in perWorker { XCTAssertGreaterThan(fds, 600, run.text) }
        let rss = try XCTUnwrap(report["rssPerConnectionBytes"] as? Double, run.text)
        XCTAssertGreaterThan(rss, 0, run.text)
        // Without the file pages (the code the first connections page in): positive, and below the RSS figure.
        let anonymous = try XCTUnwrap(report["anonPerConnectionBytes"] as? Double, run.text)
        XCTAssertGreaterThan(anonymous, 0, run.text)
        XCTAssertLessThan(anonymous, rss, run.text)
        XCTAssertGreaterThan(try XCTUnwrap(report["acceptSeconds"] as? Double, run.text), 0, run.text)

        let storm = try XCTUnwrap(report["storm"] as? [String: Any], run.text)
        XCTAssertEqual(storm["connected"] as? Int, 300, run.text)
        XCTAssertEqual(storm["failed"] as? Int, 0, run.text)
        XCTAssertNotNil(storm["workerRestartedWithinSeconds"], run.text)
        let times = try XCTUnwrap(storm["connectTime"] as? [String: Any], run.text)
        XCTAssertEqual(times["samples"] as? Int, 300, run.text)
        XCTAssertNotNil(times["p99Us"], run.text)
        // The killed worker is one hive had, and hive replaced it.
        let killed = try XCTUnwrap(storm["killedWorkerPid"] as? Int, run.text)
        XCTAssertTrue(workersBefore.contains(Int32(killed)), "\(killed) not in \(workersBefore)")
        try hive.waitForLog("a replacement worker", timeout: 10) { _ in hive.workerPIDs().count == 4 }
    }

    /// It can fail: a registry too small for the clients turns the rest into 503s, reported as failed connects.
    func testConnections_moreClientsThanHiveTakes_isAProblem() throws {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 3, ["--redis", redis.url, "--max-connections", "1500"])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let run = try connections(port: port, redis: redis, master: try XCTUnwrap(hive.pid), extra: ["--storm", "0"])
        XCTAssertEqual(run.status, 1, run.text)
        let report = try run.json()
        XCTAssertEqual(report["connected"] as? Int, 1500, run.text)
        XCTAssertEqual(report["connectFailed"] as? Int, 500, run.text)
        XCTAssertTrue(run.text.contains("500 clients could not connect"), run.text)
    }
}
