import Foundation
import HiveIPC
import XCTest

/// Issue 12's proof: WebSocket clients on 2 workers, a steady publish through a real redis-server, three reloads in
/// a row: every client receives every message exactly once, in order, and none sees a close or a reset.
/// `HIVE_HANDOVER_TEST_CLIENTS` sets the number of clients (default 1,000; the test holds one socket each).
final class HandOverRedisIntegrationTests: HiveTestCase {
    private var redis: RedisServer!

    override func setUpWithError() throws {
        redis = try startRedis()
    }

    func testThreeReloads_underASteadyPublish_everyClientGetsEveryMessageOnceInOrder() throws {
        let count = ProcessInfo.processInfo.environment["HIVE_HANDOVER_TEST_CLIENTS"].flatMap(Int.init) ?? 1_000
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url, "--dispatch", "round-robin"])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let clients = try (0..<count).map { _ in try WebSocketTestClient(port: port, timeout: 10) }
        let registry = try RegistryProbe.attach(masterPID: try XCTUnwrap(hive.pid))
        try RegistryProbe.wait(registry, "\(count) WebSockets open") { registry in
            (0..<2).map { registry.worker($0, .webSocketConnections).load(ordering: .relaxed) }.reduce(0, +) == UInt64(count)
        }
        XCTAssertGreaterThan(registry.worker(1, .webSocketConnections).load(ordering: .relaxed), 0, "both workers serve")

        // 50 messages a second, numbered from 0, for the whole of three reloads.
        let publisher = NumberedPublisher(redis: redis, interval: 0.02)
        var pids = [hive.currentWorkerPIDs()]
        for round in 1...3 {
            usleep(300_000)
            let reloaded = try HiveCLI.run(["reload", "--run-dir", hive.directory.appendingPathComponent("run").path], timeout: 60)
            XCTAssertEqual(reloaded.status, 0, "reload \(round): \(reloaded.stderr)")
            pids.append(hive.currentWorkerPIDs())
        }
        usleep(300_000)
        let published = publisher.stop()
        XCTAssertEqual(try redis.publish(channel: "test", message: "end"), 1)
        for (before, after) in zip(pids, pids.dropFirst()) {
            XCTAssertTrue(Set(before.values).isDisjoint(with: Set(after.values)), "every reload replaced both workers")
        }

        let expected = (0..<published).map(String.init)
        var wrong = 0
        for (index, client) in clients.enumerated() {
            var received: [String] = []
            while true {
                let message = try client.receiveMessage(timeout: 10)
                guard case .text(let text) = message else {
                    XCTFail("client \(index) got \(message) instead of a message")
                    break
                }
                if text == "end" { break }
                received.append(text)
            }
            if received != expected {
                wrong += 1
                if wrong <= 3 {
                    let missing = Set(expected).subtracting(received).count
                    let extra = received.count - Set(received).count
                    XCTFail("client \(index): \(received.count) messages of \(published): \(missing) missing, \(extra) twice, in order \(received == received.sorted { Int($0)! < Int($1)! })")
                }
            }
        }
        XCTAssertEqual(wrong, 0, "clients that did not get every message exactly once in order")
        XCTAssertGreaterThan(published, 50)
        let open = (0..<2).map { registry.worker($0, .webSocketConnections).load(ordering: .relaxed) }.reduce(0, +)
        XCTAssertEqual(open, UInt64(count), "no client was closed")
    }
}

/// Publishes "0", "1", … on channel `test` every `interval` seconds on its own thread until stopped.
final class NumberedPublisher: @unchecked Sendable {
    // @unchecked: `running` and `published` are guarded by `lock`.
    private let lock = NSLock()
    private var running = true
    private var published = 0
    private let done = DispatchSemaphore(value: 0)

    init(redis: RedisServer, interval: TimeInterval) {
        Thread {
            var next = 0
            var due = Date()
            while self.lock.withLock({ self.running }) {
                _ = try? redis.publish(channel: "test", message: String(next))
                next += 1
                self.lock.withLock { self.published = next }
                due = due.addingTimeInterval(interval)
                let wait = due.timeIntervalSinceNow
                if wait > 0 { usleep(UInt32(wait * 1e6)) }
            }
            self.done.signal()
        }.start()
    }

    /// Stops and returns how many were published (numbered 0 ..< that).
    func stop() -> Int {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { published }
    }
}
