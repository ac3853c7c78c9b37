import HTTPTypes
import HiveIPC
import Logging
import NIOCore
import NIOEmbedded
import XCTest

@testable import HiveWorker

/// The synchronous request hook (`respondNow`) in the worker's pipeline: it answers first, nil leaves the request
/// to the async `request` hook, and responses stay in request order behind a suspended async hook.
final class HTTPSyncHookPipelineTests: XCTestCase {
    /// `respondNow` answers `/now...` ("now"), throws on `/throw`, and leaves the rest to `request` ("later"),
    /// whose `/wait` suspends until the test opens `gate`.
    struct TwoHookApplication: HiveApplication {
        struct Failure: Error {}
        let gate: EventLoopFuture<Void>

        func respondNow(to request: HiveRequest, hive: HiveServer) throws -> HiveResponse? {
            if request.path == "/throw" { throw Failure() }
            return request.path.hasPrefix("/now") ? .text("now \(request.method) \(request.path)\n") : nil
        }

        func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse {
            if request.path == "/wait" { try await gate.get() }
            return .text("later \(request.method) \(request.path)\n")
        }
    }

    private let loop = EmbeddedEventLoop()
    private var gate: EventLoopPromise<Void>!

    override func setUp() {
        gate = loop.makePromise()
    }

    override func tearDown() {
        gate.succeed()  // a hook still waiting ends
        loop.run()
    }

    private func connect() throws -> EmbeddedChannel {
        let hive = HiveServer(
            workerID: 0, eventLoop: loop, registry: .heap(capacity: 1, workerCount: 1), limits: ConnectionLimits(),
            application: TwoHookApplication(gate: gate.futureResult),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        return try hive.adoptTestConnection(on: loop).0
    }

    private func send(_ text: String, on channel: EmbeddedChannel) throws -> String {
        _ = try? channel.writeInbound(ByteBuffer(string: text))
        loop.run()
        return written(on: channel)
    }

    private func written(on channel: EmbeddedChannel) -> String {
        var written = ""
        while let out = try? channel.readOutbound(as: ByteBuffer.self) { written += String(buffer: out) }
        return written
    }

    /// The first line of each response's body, in order.
    private func answers(_ written: String) -> [String] {
        written.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.components(separatedBy: "\n")[0] }
    }

    func testSyncAnswer_isTheResponse_andNilFallsBackToTheAsyncHook() throws {
        let channel = try connect()
        let written = try send(
            "GET /now HTTP/1.1\r\nHost: h\r\n\r\nGET /other HTTP/1.1\r\nHost: h\r\n\r\n"
                + "POST /now/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", on: channel)
        XCTAssertEqual(answers(written), ["now GET /now", "later GET /other", "now POST /now/echo"], written)
        XCTAssertTrue(written.hasPrefix("HTTP/1.1 200 OK\r\n"), written)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    /// Requests NIO's decoder delivers (after a chunked body the fast path leaves to it) take the same way.
    func testSyncAnswer_forRequestsNIOsDecoderDelivers() throws {
        let channel = try connect()
        let written = try send(
            "POST /now HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
                + "GET /now/2 HTTP/1.1\r\nHost: h\r\n\r\nGET /other HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)
        XCTAssertEqual(answers(written), ["now POST /now", "now GET /now/2", "later GET /other"], written)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    /// A request read while an async hook is suspended waits for its response, and is still answered by the sync
    /// hook when its turn comes: the same answer whatever the timing.
    func testRequestsBehindASuspendedAsyncHook_waitForItsResponse_inOrder() throws {
        let channel = try connect()
        let before = try send(
            "GET /wait HTTP/1.1\r\nHost: h\r\n\r\nGET /now HTTP/1.1\r\nHost: h\r\n\r\n"
                + "GET /other HTTP/1.1\r\nHost: h\r\n\r\nGET /now/2 HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)
        XCTAssertEqual(before, "", "nothing may overtake the suspended hook's response")
        gate.succeed()
        loop.run()
        let after = written(on: channel)
        XCTAssertEqual(answers(after), ["later GET /wait", "now GET /now", "later GET /other", "now GET /now/2"], after)
        // Once the queue is idle again, the sync hook answers at once.
        XCTAssertEqual(answers(try send("GET /now/3 HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)), ["now GET /now/3"])
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    func testHead_getsTheSyncAnswersLengthWithoutItsBody() throws {
        let channel = try connect()
        let written = try send("HEAD /now HTTP/1.1\r\nHost: h\r\n\r\nGET /now/next HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)
        let length = "now HEAD /now\n".utf8.count
        XCTAssertTrue(written.hasPrefix("HTTP/1.1 200 OK\r\n"), written)
        XCTAssertTrue(written.contains("Content-Length: \(length)\r\n"), written)
        XCTAssertFalse(written.contains("now HEAD"), "a HEAD response has no body: \(written)")
        XCTAssertEqual(written.components(separatedBy: "HTTP/1.1 200 OK\r\n").count, 3, "two responses: \(written)")
        XCTAssertTrue(written.hasSuffix("\r\n\r\nnow GET /now/next\n"), "the next response follows the head: \(written)")
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    func testConnectionClose_afterASyncAnswer_closes_andLaterRequestsAreNeverAnswered() throws {
        let channel = try connect()
        let written = try send(
            "GET /now HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /now/2 HTTP/1.1\r\nHost: h\r\n\r\n"
                + "GET /other HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)
        XCTAssertEqual(answers(written), ["now GET /now"], written)
        XCTAssertTrue(written.contains("Connection: close\r\n"), written)
        XCTAssertFalse(channel.isActive, "the connection should be closed after its Connection: close response")
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    func testHTTP10_withoutKeepAlive_getsTheSyncAnswer_andIsClosed() throws {
        let channel = try connect()
        let written = try send("GET /now HTTP/1.0\r\n\r\n", on: channel)
        XCTAssertTrue(written.hasPrefix("HTTP/1.0 200 OK\r\n"), written)
        XCTAssertEqual(answers(written), ["now GET /now"], written)
        XCTAssertFalse(channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    func testThrowingSyncHook_answers500_likeTheAsyncHook_andTheConnectionGoesOn() throws {
        let channel = try connect()
        let written = try send("GET /throw HTTP/1.1\r\nHost: h\r\n\r\nGET /now HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)
        XCTAssertTrue(written.hasPrefix("HTTP/1.1 500 Internal Server Error\r\n"), written)
        XCTAssertEqual(answers(written), ["internal server error", "now GET /now"], written)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    /// An application that implements only the async hook is served as before (the default `respondNow` is nil).
    func testDefaultSyncHook_leavesEveryRequestToTheAsyncHook() throws {
        struct AsyncOnly: HiveApplication {
            func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse {
                .text("async \(request.path)\n")
            }
        }
        let hive = HiveServer(
            workerID: 0, eventLoop: loop, registry: .heap(capacity: 1, workerCount: 1), limits: ConnectionLimits(),
            application: AsyncOnly(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let channel = try hive.adoptTestConnection(on: loop).0
        XCTAssertEqual(answers(try send("GET /now HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)), ["async /now"])
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
