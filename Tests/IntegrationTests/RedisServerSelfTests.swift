import Foundation
import XCTest

/// Checks the RedisServer test support itself (process lifecycle, RESP parsing, pub/sub counts) against a real
/// redis-server, so a Hive Redis test that fails is about Hive, not about its harness.
final class RedisServerSelfTests: XCTestCase {
    private var servers: [RedisServer] = []

    private func startRedis() throws -> RedisServer {
        let redis = try RedisServer()
        self.servers.append(redis)
        try redis.start()
        return redis
    }

    override func tearDown() {
        for redis in self.servers {
            redis.stop()
            if (self.testRun?.totalFailureCount ?? 0) > 0 {
                FileHandle.standardError.write(Data("----- redis log (\(redis.logURL.path)) -----\n\(redis.log())\n".utf8))
            }
        }
        self.servers = []
        super.tearDown()
    }

    func testStartedServerAnswersPingAndStopClosesThePort() throws {
        let redis = try self.startRedis()
        XCTAssertEqual(redis.url, "redis://127.0.0.1:\(redis.port)")
        XCTAssertEqual(try redis.command(["PING"]), .simple("PONG"))
        XCTAssertTrue(redis.isRunning)

        redis.stop()
        XCTAssertFalse(redis.isRunning)
        XCTAssertThrowsError(try redis.connect(timeout: 1), "nothing should listen after stop()")
        XCTAssertTrue(redis.log().contains("Ready to accept connections"))
    }

    func testPublishWithoutSubscribersReachesNobody() throws {
        let redis = try self.startRedis()
        XCTAssertEqual(try redis.publish(channel: "hive", message: "nobody listens"), 0)
        XCTAssertEqual(try redis.numsub("hive"), 0)
        XCTAssertEqual(try redis.numpat(), 0)
    }

    func testRawSocketSubscriberIsCountedAndReceivesPublishedMessages() throws {
        let redis = try self.startRedis()
        // Bytes written and expected by hand, so this does not rely on the RESP encoder or parser under test.
        let subscriber = try TestSocket(port: redis.port, timeout: 2)
        try subscriber.send(Array("*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nnews\r\n".utf8))
        let confirmation = Array("*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n".utf8)
        XCTAssertEqual(
            try subscriber.read(exactly: confirmation.count, deadline: TestDeadline(seconds: 2), waitingFor: "confirm"),
            confirmation)

        try redis.waitForSubscribers(channel: "news", count: 1, timeout: 2)
        XCTAssertEqual(try redis.numsub("news"), 1)
        XCTAssertEqual(try redis.numsub("other"), 0)
        XCTAssertTrue(try redis.clientList().contains("sub=1"))

        XCTAssertEqual(try redis.publish(channel: "news", message: "hello"), 1)
        let message = Array("*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n".utf8)
        XCTAssertEqual(
            try subscriber.read(exactly: message.count, deadline: TestDeadline(seconds: 2), waitingFor: "message"),
            message)

        // Binary-safe: CR LF, NUL and invalid UTF-8 inside the payload.
        let binary: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF, 0x24, 0x2A, 0x0D, 0x0A]
        XCTAssertEqual(try redis.publish(channel: "news", bytes: binary), 1)
        XCTAssertEqual(
            try RESPParser.read(from: subscriber, deadline: TestDeadline(seconds: 2), waitingFor: "binary message"),
            .array([.text("message"), .text("news"), .bulk(binary)]))

        subscriber.close()
        try redis.waitForSubscribers(channel: "news", count: 0, timeout: 2)
        XCTAssertEqual(try redis.publish(channel: "news", message: "gone"), 0)
    }

    func testPatternSubscriberIsCountedByNumpatAndGetsPmessage() throws {
        let redis = try self.startRedis()
        let subscriber = try redis.connect(timeout: 2)
        try subscriber.psubscribe(["news.*"])
        try redis.waitForPatternSubscribers(count: 1, timeout: 2)
        XCTAssertEqual(try redis.numsub("news.sport"), 0, "NUMSUB does not count pattern subscriptions")

        XCTAssertEqual(try redis.publish(channel: "news.sport", message: "goal"), 1)
        XCTAssertEqual(
            try subscriber.readPubSubMessage(timeout: 2),
            RESPPubSubMessage(pattern: "news.*", channel: "news.sport", payload: Array("goal".utf8)))
        XCTAssertFalse(subscriber.receivedAnything(within: 0.05))

        subscriber.close()
        try redis.waitForPatternSubscribers(count: 0, timeout: 2)
    }

    func testRestartKeepsThePortAndDropsOldConnections() throws {
        let redis = try self.startRedis()
        let port = redis.port
        let firstPID = redis.pid
        let subscriber = try redis.connect(timeout: 2)
        try subscriber.subscribe(["news"])
        try redis.waitForSubscribers(channel: "news", count: 1, timeout: 2)

        try redis.restart()
        XCTAssertEqual(redis.port, port)
        XCTAssertNotEqual(redis.pid, firstPID)
        XCTAssertEqual(try redis.command(["PING"]), .simple("PONG"))
        XCTAssertTrue(subscriber.isClosedByPeer(within: 2))
        XCTAssertEqual(try redis.numsub("news"), 0)
        let ready = redis.log().components(separatedBy: "Ready to accept connections").count - 1
        XCTAssertEqual(ready, 2, "the log keeps both runs")

        // A crash (SIGKILL) and a start again on the same port.
        redis.kill9()
        XCTAssertFalse(redis.isRunning)
        try redis.waitUntilPortIsFree(timeout: 2)
        try redis.start()
        XCTAssertEqual(try redis.command(["PING"]), .simple("PONG"))
    }

    func testRepliesOfAnySizeNestingAndNullsAreParsed() throws {
        let redis = try self.startRedis()
        let connection = try redis.connect(timeout: 5)
        let big = (0..<(1 << 20) + 7).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        XCTAssertEqual(try connection.command([Array("SET".utf8), Array("big".utf8), big]), .simple("OK"))
        XCTAssertEqual(try connection.command(["GET", "big"]), .bulk(big))
        XCTAssertEqual(try connection.command(["GET", "missing"]), .bulk(nil))
        XCTAssertEqual(try connection.command(["SET", "empty", ""]), .simple("OK"))
        XCTAssertEqual(try connection.command(["GET", "empty"]), .bulk([]))
        XCTAssertEqual(try connection.command(["BLPOP", "missing-list", "0.01"]), .array(nil))
        XCTAssertEqual(
            try connection.command(["EVAL", "return {1, {2, 'x', {}}, 'y'}", "0"]),
            .array([.integer(1), .array([.integer(2), .text("x"), .array([])]), .text("y")]))
        let unknown = try connection.command(["NO-SUCH-COMMAND"])
        XCTAssertTrue(unknown.isError)
        XCTAssertTrue(unknown.stringValue == nil && "\(unknown)".hasPrefix("-ERR unknown command"), "\(unknown)")
    }

    func testSecondServerOnATakenPortFailsFastWithTheLog() throws {
        let redis = try self.startRedis()
        let intruder = try RedisServer(port: redis.port)
        self.servers.append(intruder)
        let started = Date()
        XCTAssertThrowsError(try intruder.start(timeout: 10)) { error in
            guard case RedisServerError.portInUse = error else {
                return XCTFail("expected portInUse, got \(error)")
            }
            XCTAssertTrue("\(error)".contains(RedisServer.bindFailure), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 3)
        XCTAssertFalse(intruder.isRunning)
        XCTAssertEqual(try redis.command(["PING"]), .simple("PONG"), "the first server is untouched")
    }

    func testMissingRedisServerTellsToRunMakeDeps() {
        XCTAssertThrowsError(
            try RedisServer.locateExecutable(environment: ["PATH": "/nonexistent"], extraDirectories: [])
        ) { error in
            XCTAssertTrue("\(error)".contains("make deps"), "\(error)")
        }
    }
}
