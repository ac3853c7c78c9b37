import Foundation
import HiveIPC
import XCTest

/// Worker 0 subscribes to a real redis-server and every message reaches every WebSocket client, once, and
/// nothing else: the story end to end, then the failures around it.
final class RedisIntegrationTests: HiveTestCase {
    private var redis: RedisServer!

    override func setUpWithError() throws {
        redis = try startRedis()
    }

    private func startSubscribed(workers: Int = 2, _ extra: [String] = []) throws -> (HiveProcess, port: Int) {
        let (hive, port) = try startHive(workers: workers, ["--redis", redis.url, "--dispatch", "round-robin"] + extra)
        if extra.contains("--pattern") {
            try redis.waitForPatternSubscribers(count: 1)
        } else {
            try redis.waitForSubscribers(channel: "test", count: 1)
        }
        return (hive, port)
    }

    /// The story: a page over HTTP keep-alive, the favicon on a second keep-alive connection, a WebSocket;
    /// `PUBLISH test hello-from-redis` reaches the WebSocket only, and nothing alarming is logged.
    func testStory_publishReachesTheWebSocket_andNeverTheHTTPConnections() throws {
        let (hive, port) = try startSubscribed()
        let page = try HTTPTestClient(port: port)
        XCTAssertEqual(try page.request(path: "/").status, 200)
        let favicon = try HTTPTestClient(port: port)
        XCTAssertEqual(try favicon.request(path: "/favicon.ico").status, 200)
        let socket = try WebSocketTestClient(port: port)
        _ = try connectionID(of: socket)

        XCTAssertEqual(try redis.publish(channel: "test", message: "hello-from-redis"), 1)
        XCTAssertEqual(try socket.receiveMessage(), .text("hello-from-redis"))
        XCTAssertFalse(page.receivedAnything(within: 0.3))
        XCTAssertFalse(favicon.receivedAnything(within: 0.3))
        let log = hive.log()
        XCTAssertFalse(log.contains(" warning ") || log.contains(" error "), log)
        XCTAssertFalse(log.contains("is not a websocket client"))
    }

    func testManyClientsOnEveryWorker_receiveEveryMessageOnce_inPublishOrder() throws {
        let (_, port) = try startSubscribed(workers: 3)
        let clients = try (0..<24).map { _ in try WebSocketTestClient(port: port) }
        XCTAssertEqual(Set(try clients.map { try worker(of: $0) }), [0, 1, 2])
        let messages = (0..<50).map { "message-\($0)" }
        for message in messages { XCTAssertEqual(try redis.publish(channel: "test", message: message), 1) }
        for (index, client) in clients.enumerated() {
            let received = try messages.map { _ in try client.receiveMessage() }
            XCTAssertEqual(received, messages.map { .text($0) }, "client \(index)")
            XCTAssertFalse(client.receivedAnything(within: index == 0 ? 0.3 : 0), "client \(index) got a duplicate")
        }
    }

    func testPatternSubscription_deliversMatchingChannelsOnly() throws {
        let (_, port) = try startSubscribed(["--pattern", "news.*"])
        let client = try WebSocketTestClient(port: port)
        _ = try connectionID(of: client)
        XCTAssertEqual(try redis.publish(channel: "news.sport", message: "goal"), 1)
        XCTAssertEqual(try redis.publish(channel: "weather", message: "rain"), 0)
        XCTAssertEqual(try client.receiveMessage(), .text("goal"))
        XCTAssertFalse(client.receivedAnything(within: 0.3))
    }

    func testBinaryPayload_arrivesAsABinaryFrame_andOneMebibyteArrivesIntactOnEveryWorker() throws {
        let (_, port) = try startSubscribed(workers: 2, ["--max-message-size", String(2 << 20)])
        let clients = try (0..<4).map { _ in try WebSocketTestClient(port: port, timeout: 10) }
        XCTAssertEqual(Set(try clients.map { try worker(of: $0) }), [0, 1])
        let invalidUTF8: [UInt8] = [0xFF, 0xFE, 0x00, 0x80]
        XCTAssertEqual(try redis.publish(channel: "test", bytes: invalidUTF8), 1)
        for client in clients { XCTAssertEqual(try client.receiveMessage(), .binary(invalidUTF8)) }
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) | 0x80 }  // not UTF-8: binary
        XCTAssertEqual(try redis.publish(channel: "test", bytes: big), 1)
        for client in clients { XCTAssertEqual(try client.receiveMessage(timeout: 10), .binary(big)) }
        let text = String(repeating: "é", count: 1 << 19)  // 1 MiB of valid UTF-8: text
        XCTAssertEqual(try redis.publish(channel: "test", message: text), 1)
        for client in clients { XCTAssertEqual(try client.receiveMessage(timeout: 10), .text(text)) }
    }

    /// Redis unreachable at start: Hive serves anyway, says so once (not once per retry), and subscribes by itself
    /// when Redis appears; a Redis restart is survived the same way and shows in `hive status`.
    func testUnreachableThenRestartedRedis_isReconnectedByItself_andShownInStatus() throws {
        redis.stop()
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url])
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
        try hive.waitForLog(containing: "redis unreachable; retrying with back-off")
        var status = try redisStatus(hive)
        XCTAssertNotEqual(status["state"] as? String, "subscribed")
        XCTAssertTrue((status["lastError"] as? String ?? "").contains("cannot connect"), "\(status)")
        usleep(700_000)  // several retries (100, 200, 400 ms) that must not each log a line
        XCTAssertEqual(hive.log().components(separatedBy: "redis unreachable").count - 1, 1, hive.log())

        try redis.start()
        try redis.waitForSubscribers(channel: "test", count: 1, timeout: 10)
        let client = try WebSocketTestClient(port: port)
        _ = try connectionID(of: client)
        XCTAssertEqual(try redis.publish(channel: "test", message: "first"), 1)
        XCTAssertEqual(try client.receiveMessage(), .text("first"))

        try redis.restart()
        try redis.waitForSubscribers(channel: "test", count: 1, timeout: 10)
        XCTAssertEqual(try redis.publish(channel: "test", message: "after the restart"), 1)
        XCTAssertEqual(try client.receiveMessage(), .text("after the restart"))
        status = try redisStatus(hive)
        XCTAssertEqual(status["state"] as? String, "subscribed")
        XCTAssertEqual(status["reconnects"] as? Int, 1)
        XCTAssertEqual(status["messages"] as? Int, 2)
        XCTAssertEqual(status["address"] as? String, redis.url)
        XCTAssertEqual(status["channels"] as? [String], ["test"])
        XCTAssertTrue(hive.log().contains("redis subscription lost; reconnecting with back-off"))
    }

    /// Redis closes the subscription while worker 0's event loop reads it (as it does past `client-output-buffer-limit
    /// pubsub`; here `CLIENT KILL TYPE pubsub`): the subscriber reconnects and subscribes again by itself, `hive
    /// status` says what happened, and the next message arrives once.
    func testSubscriptionClosedByRedis_isReconnected_namedInStatus_andDeliversAgain() throws {
        let (hive, port) = try startSubscribed()
        let client = try WebSocketTestClient(port: port)
        _ = try connectionID(of: client)
        XCTAssertEqual(try redis.publish(channel: "test", message: "before"), 1)
        XCTAssertEqual(try client.receiveMessage(), .text("before"))

        XCTAssertEqual(try redis.command(["CLIENT", "KILL", "TYPE", "pubsub"]), .integer(1))
        try hive.waitForLog(containing: "redis subscription lost; reconnecting with back-off")
        try redis.waitForSubscribers(channel: "test", count: 1, timeout: 10)
        var status = try redisStatus(hive)
        let deadline = Date().addingTimeInterval(5)
        while status["reconnects"] as? Int != 1 && Date() < deadline {
            usleep(50_000)
            status = try redisStatus(hive)
        }
        XCTAssertEqual(status["state"] as? String, "subscribed", "\(status)")
        XCTAssertEqual(status["reconnects"] as? Int, 1, "\(status)")
        XCTAssertTrue((status["lastError"] as? String ?? "").contains("connection closed by Redis"), "\(status)")
        XCTAssertEqual(try redis.publish(channel: "test", message: "after"), 1)
        XCTAssertEqual(try client.receiveMessage(), .text("after"))
        XCTAssertFalse(client.receivedAnything(within: 0.3), "a message came twice")
    }

    /// `kill -9` of worker 0 and `hive reload` under a steady publish: the new worker 0 subscribes again; after a
    /// crash one subscription at a time; during a reload the old and new worker 0 overlap for a moment and splice
    /// the stream at a marker (`RedisSplice`), so a client of another worker, handed over too, sees every message
    /// of the reload once and in order.
    func testWorker0KilledOrReloaded_underSteadyPublish_noDuplicateNoGapAcrossTheReload() throws {
        let (hive, port) = try startSubscribed(workers: 2)
        let bystander = try WebSocketTestClient(port: port)
        let onWorker1 = try WebSocketTestClient(port: port)
        XCTAssertEqual([try worker(of: bystander), try worker(of: onWorker1)], [0, 1])
        let publisher = SteadyPublisher(redis: redis)

        kill(try XCTUnwrap(hive.currentWorkerPIDs()[0]), SIGKILL)
        try hive.waitForLog(containing: "worker 0 pid", count: 2)
        try redis.waitForSubscribers(channel: "test", count: 1, timeout: 10)
        usleep(200_000)
        let afterKill = publisher.snapshot()
        XCTAssertEqual(afterKill.maxReceivers, 1, "two subscriptions at once after a crash")

        let reloaded = try HiveCLI.run(["reload", "--run-dir", hive.directory.appendingPathComponent("run").path])
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        try redis.waitForSubscribers(channel: "test", count: 1, timeout: 10)
        usleep(200_000)
        let result = publisher.stop()
        XCTAssertLessThanOrEqual(result.maxReceivers, 2, "at most the splice's overlap")
        XCTAssertGreaterThan(result.published, 20)
        XCTAssertGreaterThan(result.delivered, 0)
        XCTAssertEqual(try redis.publish(channel: "test", message: "end"), 1)

        // The worker-1 client stays connected throughout; from the first message after the crash's gap on, it
        // sees one increasing run without a hole or a repeat.
        var seen: [Int] = []
        while case .text(let text) = try onWorker1.receiveMessage(timeout: 5), text != "end" { seen.append(Int(text)!) }
        XCTAssertEqual(Set(seen).count, seen.count, "a message arrived twice")
        XCTAssertEqual(seen, seen.sorted())
        let afterGap = seen.drop { $0 < afterKill.published }
        XCTAssertEqual(Array(afterGap), Array((afterGap.first ?? 0)...(afterGap.last ?? -1)), "a message was lost")
        XCTAssertEqual(afterGap.last, result.published - 1)
    }

    func testTwoInstancesOnOneRedis_bothDeliverToTheirClients() throws {
        let (_, portA) = try startSubscribed(workers: 1)
        let (_, portB) = try startHive(workers: 1, ["--redis", redis.url])
        try redis.waitForSubscribers(channel: "test", count: 2)
        let a = try WebSocketTestClient(port: portA)
        let b = try WebSocketTestClient(port: portB)
        _ = try connectionID(of: a)
        _ = try connectionID(of: b)
        XCTAssertEqual(try redis.publish(channel: "test", message: "to every host"), 2)
        XCTAssertEqual(try a.receiveMessage(), .text("to every host"))
        XCTAssertEqual(try b.receiveMessage(), .text("to every host"))
    }

    func testHivePublish_reportsReceivers_andAnUnreachableRedisClearly() throws {
        let (_, port) = try startSubscribed(workers: 1)
        let client = try WebSocketTestClient(port: port)
        _ = try connectionID(of: client)
        let published = try HiveCLI.run(["publish", "test", "from hive publish", "--redis", redis.url])
        XCTAssertEqual(published.status, 0, published.stderr)
        XCTAssertEqual(published.stdout, "published to test on \(redis.url): 1 subscriber received it\n")
        XCTAssertEqual(try client.receiveMessage(), .text("from hive publish"))
        let unreachable = try HiveCLI.run(["publish", "test", "x", "--redis", "redis://127.0.0.1:1"])
        XCTAssertEqual(unreachable.status, 1)
        XCTAssertTrue(unreachable.stderr.contains("cannot connect: Connection refused; is redis-server running there?"), unreachable.stderr)
    }

    private func redisStatus(_ hive: HiveProcess) throws -> [String: Any] {
        let status = try XCTUnwrap(try HiveCLI.json(["status", "--json", "--run-dir", hive.directory.appendingPathComponent("run").path]) as? [String: Any])
        return try XCTUnwrap(status["redis"] as? [String: Any])
    }
}

/// Publishes an increasing counter on "test" every 5 ms from a background thread and records the largest receiver
/// count Redis reported for any PUBLISH.
final class SteadyPublisher: @unchecked Sendable {
    // @unchecked: the counters and `running` are guarded by `lock`.
    private let lock = NSLock()
    private var running = true
    private var published = 0
    private var delivered = 0
    private var maxReceivers = 0
    private let done = DispatchSemaphore(value: 0)

    init(redis: RedisServer) {
        Thread {
            var next = 0
            while self.lock.withLock({ self.running }) {
                let receivers = (try? redis.publish(channel: "test", message: String(next))) ?? 0
                next += 1
                self.lock.withLock {
                    self.published += 1
                    self.delivered += receivers
                    self.maxReceivers = max(self.maxReceivers, receivers)
                }
                usleep(5_000)
            }
            self.done.signal()
        }.start()
    }

    func snapshot() -> (published: Int, delivered: Int, maxReceivers: Int) {
        lock.withLock { (published, delivered, maxReceivers) }
    }

    func stop() -> (published: Int, delivered: Int, maxReceivers: Int) {
        lock.withLock { running = false }
        done.wait()
        return snapshot()
    }
}
