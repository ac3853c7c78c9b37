import Foundation
import Logging
import XCTest

@testable import HiveRedis

#if canImport(Glibc)
import Glibc
#endif

final class RedisPublisherTests: XCTestCase {
    private let logger = Logger(label: "test.redis.publisher", factory: { _ in SwiftLogNoOpLogHandler() })

    /// As in a worker: hiredis writes AUTH with write(), which must not kill the test runner if Redis just died.
    override class func setUp() {
        super.setUp()
        signal(SIGPIPE, SIG_IGN)
    }

    private func publisher(_ url: RedisURL, timeout: Double = 3, maxMessageSize: Int = 1 << 20, connections: Int = 1,
                           maxPending: Int = 10_000) -> RedisPublisher {
        RedisPublisher(
            configuration: .init(url: url, timeout: timeout, maxMessageSize: maxMessageSize, connections: connections, maxPending: maxPending),
            logger: logger
        )
    }

    /// Polls until `publisher` has `count` publishes queued or waiting for a reply; with `taken`, also until its
    /// threads have taken every one of them (each then written on the connection the thread had).
    private func waitForPending(_ publisher: RedisPublisher, _ count: Int, taken: Bool = false,
                                file: StaticString = #filePath, line: UInt = #line) async throws {
        let deadline = Monotonic.seconds() + 5
        while publisher.pendingCount != count || (taken && publisher.queuedCount != 0) {
            guard Monotonic.seconds() < deadline else {
                return XCTFail("pending stayed at \(publisher.pendingCount) (\(publisher.queuedCount) not taken), expected \(count)",
                               file: file, line: line)
            }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
    }

    // MARK: Delivery

    func testPublish_withPassword_reachesRealSubscribers_andReturnsTheReceiverCount() async throws {
        let redis = try TestRedisServer(password: "s3cret-pw")
        try redis.start()
        let first = try redis.subscribe("news")
        let second = try redis.subscribe("news")
        let publisher = publisher(redis.url)
        defer { publisher.shutdown() }

        let receivers = try await publisher.publish(channel: "news", payload: Array("hello".utf8))
        XCTAssertEqual(receivers, 2)
        XCTAssertEqual(try first.messages(1), [Array("hello".utf8)])
        XCTAssertEqual(try second.messages(1), [Array("hello".utf8)])
        let binary: [UInt8] = [0, 13, 10, 255, 42]
        let binaryReceivers = try await publisher.publish(channel: "news", payload: binary)
        XCTAssertEqual(binaryReceivers, 2)
        XCTAssertEqual(try first.messages(1), [binary])
        let none = try await publisher.publish(channel: "nobody-listens", payload: [])
        XCTAssertEqual(none, 0)
    }

    /// Many tasks publish at once through one connection: every call gets its own reply, and each caller's
    /// messages arrive in the order it published them.
    func testThousandConcurrentPublishes_allSucceed_inEachCallersOrder() async throws {
        let redis = try TestRedisServer()
        try redis.start()
        let subscriber = try redis.subscribe("load")
        let publisher = publisher(redis.url)
        defer { publisher.shutdown() }
        let callers = 100
        let perCaller = 10

        let counts = try await within(30, "\(callers * perCaller) publishes") {
            try await withThrowingTaskGroup(of: [Int].self) { group in
                for caller in 0..<callers {
                    group.addTask {
                        var receivers: [Int] = []
                        for sequence in 0..<perCaller {
                            receivers.append(try await publisher.publish(channel: "load", payload: Array("\(caller):\(sequence)".utf8)))
                        }
                        return receivers
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }
        XCTAssertEqual(counts, Array(repeating: 1, count: callers * perCaller))

        var next = Array(repeating: 0, count: callers)
        for payload in try subscriber.messages(callers * perCaller) {
            let parts = String(decoding: payload, as: UTF8.self).split(separator: ":").compactMap { Int($0) }
            XCTAssertEqual(parts.count, 2, String(decoding: payload, as: UTF8.self))
            guard parts.count == 2 else { continue }
            XCTAssertEqual(parts[1], next[parts[0]], "caller \(parts[0]) out of order")
            next[parts[0]] = parts[1] + 1
        }
        XCTAssertEqual(next, Array(repeating: perCaller, count: callers))
        XCTAssertEqual(publisher.pendingCount, 0)
    }

    /// With several connections, every publish still gets exactly its reply.
    func testSeveralConnections_shareThePublishes() async throws {
        let redis = try TestRedisServer()
        try redis.start()
        let subscriber = try redis.subscribe("multi")
        let publisher = publisher(redis.url, connections: 3)
        defer { publisher.shutdown() }
        let counts = try await within(30, "300 publishes") {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<300 {
                    group.addTask { try await publisher.publish(channel: "multi", payload: Array(String(index).utf8)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        XCTAssertEqual(counts, Array(repeating: 1, count: 300))
        XCTAssertEqual(Set(try subscriber.messages(300).map { String(decoding: $0, as: UTF8.self) }), Set((0..<300).map(String.init)))
    }

    // MARK: Failures

    func testUnreachableRedis_failsAtOnce_namingTheAddressButNotThePassword() async throws {
        let port = freeLoopbackPort()
        let url = RedisURL(endpoint: .tcp(host: "127.0.0.1", port: port), password: "s3cret-pw")
        let publisher = publisher(url, timeout: 2)
        defer { publisher.shutdown() }

        let started = Monotonic.seconds()
        let error = await publishError(publisher, "alerts")
        XCTAssertLessThan(Monotonic.seconds() - started, 2.5, "an unreachable Redis must fail within the timeout")
        XCTAssertEqual(error?.code, .unreachable)
        let text = "\(error.map { "\($0)" } ?? "")"
        XCTAssertTrue(text.contains("PUBLISH to channel \"alerts\" on redis://127.0.0.1:\(port) failed: Redis is unreachable"), text)
        XCTAssertTrue(text.contains("is redis-server running there?"), text)
        XCTAssertTrue(text.contains("nothing was sent"), text)
        XCTAssertFalse(text.contains("s3cret"), text)

        // Right after a failed attempt, publishes fail at once instead of hammering the address.
        let again = await publishError(publisher, "alerts")
        XCTAssertEqual(again?.code, .unreachable)
        XCTAssertTrue("\(again.map { "\($0)" } ?? "")".contains("(back-off)"), "\(String(describing: again))")
        XCTAssertEqual(publisher.pendingCount, 0)
    }

    /// A server that accepts and never answers: the publish fails within the timeout (no PUBLISH reply), and so
    /// does the connection attempt when there is a password (no AUTH reply).
    func testUnresponsiveRedis_failsWithinTheTimeout() async throws {
        let silent = try SilentListener()
        let url = RedisURL(endpoint: .tcp(host: "127.0.0.1", port: silent.port))
        let publisher = publisher(url, timeout: 0.5)
        defer { publisher.shutdown() }
        var started = Monotonic.seconds()
        let error = await publishError(publisher, "slow")
        var elapsed = Monotonic.seconds() - started
        XCTAssertEqual(error?.code, .timedOut)
        XCTAssertTrue("\(error.map { "\($0)" } ?? "")".contains("no reply from Redis within 0.5 s (--redis-timeout)"), "\(String(describing: error))")
        XCTAssertTrue(elapsed >= 0.45 && elapsed < 2, "took \(elapsed) s")

        let withPassword = self.publisher(RedisURL(endpoint: .tcp(host: "127.0.0.1", port: silent.port), password: "pw"), timeout: 0.5)
        defer { withPassword.shutdown() }
        started = Monotonic.seconds()
        let authError = await publishError(withPassword, "slow")
        elapsed = Monotonic.seconds() - started
        XCTAssertEqual(authError?.code, .unreachable)
        XCTAssertTrue("\(authError.map { "\($0)" } ?? "")".contains("timed out: no reply to AUTH within 0.5 s"), "\(String(describing: authError))")
        XCTAssertTrue(elapsed < 2, "took \(elapsed) s")
    }

    /// Redis dies with publishes waiting for their replies: they fail (connection lost), and once Redis is back a
    /// later publish reconnects and is delivered.
    func testRedisKilledMidway_failsWaitingCalls_thenReconnectsAfterRestart() async throws {
        let redis = try TestRedisServer()
        try redis.start()
        let publisher = publisher(redis.url, timeout: 5)
        defer { publisher.shutdown() }
        let before = try await publisher.publish(channel: "live", payload: Array("before".utf8))
        XCTAssertEqual(before, 0)

        redis.kill(SIGSTOP)  // the publishes below are written but never answered
        let waiting = Task {
            await withTaskGroup(of: RedisPublishError?.self) { group in
                for index in 0..<10 {
                    group.addTask { await publishError(publisher, "live", Array("lost \(index)".utf8)) }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
        }
        // Taken by the thread, so written on the live connection: the kill then loses them (connection lost).
        // Killed before the thread takes them, they would find no connection and fail as unreachable instead.
        try await waitForPending(publisher, 10, taken: true)
        redis.kill(SIGKILL)
        let errors = try await within(10, "the waiting publishes to fail") { await waiting.value }
        XCTAssertEqual(errors.compactMap { $0?.code }, Array(repeating: .connectionLost, count: 10))
        let text = "\(errors.first.flatMap { $0 }.map { "\($0)" } ?? "")"
        XCTAssertTrue(text.contains("on redis://127.0.0.1:\(redis.port) failed:"), text)
        XCTAssertTrue(text.contains("may or may not have been published"), text)
        XCTAssertEqual(publisher.pendingCount, 0)

        try redis.start()
        let subscriber = try redis.subscribe("live")
        let deadline = Monotonic.seconds() + 15
        var receivers: Int?
        while receivers == nil && Monotonic.seconds() < deadline {
            do {
                receivers = try await publisher.publish(channel: "live", payload: Array("after".utf8))
            } catch let error as RedisPublishError {
                XCTAssertEqual(error.code, .unreachable, "\(error)")
                try await Task.sleep(nanoseconds: 50_000_000)
            }
        }
        XCTAssertEqual(receivers, 1)
        XCTAssertEqual(try subscriber.messages(1), [Array("after".utf8)])
    }

    func testQueueFull_refusesAtOnce_namingTheChannelAndWhatToDo() async throws {
        let silent = try SilentListener()
        let publisher = publisher(RedisURL(endpoint: .tcp(host: "127.0.0.1", port: silent.port)), timeout: 2, maxPending: 4)
        defer { publisher.shutdown() }
        let waiting = Task {
            await withTaskGroup(of: RedisPublishError?.self) { group in
                for _ in 0..<4 { group.addTask { await publishError(publisher, "busy") } }
                return await group.reduce(into: []) { $0.append($1) }
            }
        }
        try await waitForPending(publisher, 4)
        let started = Monotonic.seconds()
        let full = await publishError(publisher, "busy-channel")
        XCTAssertLessThan(Monotonic.seconds() - started, 1, "a full queue must refuse at once")
        XCTAssertEqual(full?.code, .queueFull)
        let text = "\(full.map { "\($0)" } ?? "")"
        XCTAssertTrue(text.contains("PUBLISH to channel \"busy-channel\""), text)
        XCTAssertTrue(text.contains("4 publishes"), text)
        XCTAssertTrue(text.contains("await each publish before the next"), text)
        // The four waiting ones end on their own, by the timeout.
        let ended = try await within(10, "the waiting publishes to time out") { await waiting.value }
        XCTAssertEqual(ended.map { $0?.code }, Array(repeating: .timedOut, count: 4))
        XCTAssertEqual(publisher.pendingCount, 0)
    }

    func testPayloadOverTheLimit_isRefusedWithoutConnecting() async throws {
        let publisher = publisher(RedisURL(endpoint: .tcp(host: "127.0.0.1", port: freeLoopbackPort())), maxMessageSize: 10)
        defer { publisher.shutdown() }
        let error = await publishError(publisher, "big", Array(repeating: 65, count: 11))
        XCTAssertEqual(error?.code, .payloadTooLarge)
        XCTAssertTrue("\(error.map { "\($0)" } ?? "")".contains("11 bytes, over the limit of 10 (--max-redis-message)"), "\(String(describing: error))")
    }

    func testShutdown_refusesLaterPublishes() async throws {
        let idle = publisher(RedisURL(endpoint: .tcp(host: "127.0.0.1", port: freeLoopbackPort())))
        idle.shutdown()  // never started: returns at once
        let late = await publishError(idle, "late")
        XCTAssertEqual(late?.code, .shutDown)

        let redis = try TestRedisServer()
        try redis.start()
        let publisher = publisher(redis.url)
        let first = try await publisher.publish(channel: "c", payload: [1])
        XCTAssertEqual(first, 0)
        publisher.shutdown()
        let error = await publishError(publisher, "c")
        XCTAssertEqual(error?.code, .shutDown)
        XCTAssertTrue("\(error.map { "\($0)" } ?? "")".contains("the publisher was shut down"), "\(String(describing: error))")
    }

    /// shutdown() lets publishes already sent get their replies before it closes the connection.
    func testShutdown_waitsForPublishesInFlight() async throws {
        let redis = try TestRedisServer()
        try redis.start()
        let subscriber = try redis.subscribe("last")
        let publisher = publisher(redis.url, timeout: 5)
        redis.kill(SIGSTOP)
        let waiting = Task {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<5 { group.addTask { try await publisher.publish(channel: "last", payload: Array(String(index).utf8)) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        try await waitForPending(publisher, 5)
        let stopped = Task.detached { publisher.shutdown() }
        try await Task.sleep(nanoseconds: 100_000_000)
        let late = await publishError(publisher, "last")
        XCTAssertEqual(late?.code, .shutDown)  // refused while the five are still waiting
        redis.kill(SIGCONT)
        try await within(10, "shutdown()") { await stopped.value }
        let receivers = try await within(10, "the publishes in flight") { try await waiting.value }
        XCTAssertEqual(receivers, Array(repeating: 1, count: 5))
        XCTAssertEqual(Set(try subscriber.messages(5).map { String(decoding: $0, as: UTF8.self) }), ["0", "1", "2", "3", "4"])
    }

    /// shutdown() against a Redis that never answers still returns, once the waiting publishes timed out.
    func testShutdown_isBoundedByTheTimeout() async throws {
        let silent = try SilentListener()
        let publisher = publisher(RedisURL(endpoint: .tcp(host: "127.0.0.1", port: silent.port)), timeout: 0.5)
        let waiting = Task { await publishError(publisher, "stuck") }
        try await waitForPending(publisher, 1)
        let started = Monotonic.seconds()
        try await within(10, "shutdown()") { await Task.detached { publisher.shutdown() }.value }
        XCTAssertLessThan(Monotonic.seconds() - started, 2)
        let error = try await within(10, "the publish to time out") { await waiting.value }
        XCTAssertEqual(error?.code, .timedOut)
    }

    /// The hand-written PUBLISH encoding is the same RESP every command gets.
    func testPublishEncoding_matchesTheGenericEncoder() {
        var output: [UInt8] = []
        PublisherLane.encodePublish(channel: "chän", payload: [0, 13, 10], into: &output)
        XCTAssertEqual(output, RESPStream.encode([Array("PUBLISH".utf8), Array("chän".utf8), [0, 13, 10]]))
    }

    // MARK: Measurement (not a test: HIVE_PUBLISH_BENCH=1 to run)

    /// Publishes per second through one connection: one caller awaiting each publish (one round trip each), many
    /// callers at once (pipelined batches), and a new connection per publish (the shell's one-shot path).
    func testThroughput_report() async throws {
        guard ProcessInfo.processInfo.environment["HIVE_PUBLISH_BENCH"] == "1" else { throw XCTSkip("set HIVE_PUBLISH_BENCH=1 to measure") }
        let redis = try TestRedisServer()
        try redis.start()
        let publisher = publisher(redis.url)
        defer { publisher.shutdown() }
        let payload = Array(repeating: UInt8(ascii: "x"), count: 64)
        _ = try await publisher.publish(channel: "bench", payload: payload)

        var started = Monotonic.seconds()
        for _ in 0..<5_000 { _ = try await publisher.publish(channel: "bench", payload: payload) }
        let sequential = 5_000 / (Monotonic.seconds() - started)

        started = Monotonic.seconds()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<100 {
                group.addTask { for _ in 0..<500 { _ = try await publisher.publish(channel: "bench", payload: payload) } }
            }
            try await group.waitForAll()
        }
        let pipelined = 50_000 / (Monotonic.seconds() - started)

        started = Monotonic.seconds()
        for _ in 0..<1_000 { _ = try RedisPublisher.publish(url: redis.url, channel: "bench", payload: payload) }
        let oneShot = 1_000 / (Monotonic.seconds() - started)
        let line = "publishes/s, 64-byte payload: one caller awaiting each \(Int(sequential)), 100 concurrent callers (pipelined) "
            + "\(Int(pipelined)), new connection per publish \(Int(oneShot))\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

/// The error a publish throws; fails the test when it returns instead.
private func publishError(_ publisher: RedisPublisher, _ channel: String, _ payload: [UInt8] = Array("x".utf8),
                          file: StaticString = #filePath, line: UInt = #line) async -> RedisPublishError? {
    do {
        let receivers = try await within(10, "publish to \(channel)") { try await publisher.publish(channel: channel, payload: payload) }
        XCTFail("publish to \(channel) returned \(receivers) instead of failing", file: file, line: line)
    } catch let error as RedisPublishError {
        return error
    } catch {
        XCTFail("not a RedisPublishError: \(error)", file: file, line: line)
    }
    return nil
}

/// `operation`'s result, or a failure once `seconds` have passed without one: a publish that is never resumed must
/// fail the test, not hang it (the operation is then left running).
func within<T: Sendable>(_ seconds: Double, _ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let box = ResultBox<T>()
    Task { box.result = await Result(catching: { try await operation() }) }
    let deadline = Monotonic.seconds() + seconds
    while Monotonic.seconds() < deadline {
        if let result = box.result { return try result.get() }
        try await Task.sleep(nanoseconds: 2_000_000)
    }
    throw TimedOut(description: "no result within \(seconds) s: \(what)")
}

struct TimedOut: Error, CustomStringConvertible {
    let description: String
}

/// `@unchecked`: `stored` is guarded by `lock`.
private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Result<T, any Error>?
    var result: Result<T, any Error>? {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
