import HiveIPC
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import HiveWorker

/// The fast path in the worker's pipeline: the requests it reads itself, and the hand-over of the rest of the
/// connection to NIO's HTTP handlers, in order.
final class HTTPFastPathPipelineTests: XCTestCase {
    /// Answers with the method, path and body length of each request.
    struct PathApplication: HiveApplication {
        func request(_ request: HiveRequest, hive: HiveServer) throws -> HiveResponse {
            .text("\(request.method) \(request.path) \(request.body.count)\n")
        }
    }

    private let loop = EmbeddedEventLoop()

    private func connect() throws -> EmbeddedChannel {
        let hive = HiveServer(
            workerID: 0, eventLoop: loop, registry: .heap(capacity: 1, workerCount: 1), limits: ConnectionLimits(),
            application: PathApplication(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        return try hive.adoptTestConnection(on: loop).0
    }

    private func send(_ text: String, on channel: EmbeddedChannel) throws -> String {
        _ = try? channel.writeInbound(ByteBuffer(string: text))
        loop.run()
        var written = ""
        while let out = try channel.readOutbound(as: ByteBuffer.self) { written += String(buffer: out) }
        return written
    }

    /// The lines of the bodies `PathApplication` answered, in order.
    private func answers(_ written: String) -> [String] {
        written.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.components(separatedBy: "\n")[0] }
    }

    private func has<Handler: ChannelHandler>(_ type: Handler.Type, _ channel: EmbeddedChannel) -> Bool {
        (try? channel.pipeline.syncOperations.handler(type: type)) != nil
    }

    func testCommonRequests_takeTheFastPath_andNIOTakesOverAtTheFirstItDoesNot_inOrder() throws {
        let channel = try connect()
        let first = try send(
            "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", on: channel)
        XCTAssertEqual(answers(first), ["GET /a 0", "POST /b 3"], first)
        XCTAssertTrue(has(HTTPFastPathHandler.self, channel))
        XCTAssertFalse(has(ByteToMessageHandler<HTTPRequestDecoder>.self, channel))
        XCTAssertFalse(has(HTTPServerUpgradeHandler.self, channel))

        let rest = try send(
            "GET /c HTTP/1.1\r\nHost: h\r\n\r\n"
                + "POST /d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
                + "GET /e HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)
        XCTAssertEqual(answers(rest), ["GET /c 0", "POST /d 2", "GET /e 0"], rest)
        XCTAssertFalse(has(HTTPFastPathHandler.self, channel), "the fast path left for good")
        XCTAssertTrue(has(ByteToMessageHandler<HTTPRequestDecoder>.self, channel))
        // NIO's upgrade handler looks at a connection's first request only: not added after one.
        XCTAssertFalse(has(HTTPServerUpgradeHandler.self, channel))
        XCTAssertEqual(answers(try send("GET /f HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)), ["GET /f 0"])
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    func testUpgradeAfterARequest_isAnOrdinaryRequest_asWithNIOsUpgradeHandler() throws {
        let channel = try connect()
        let written = try send(
            "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
                + "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            on: channel)
        XCTAssertFalse(written.contains("101"), written)
        XCTAssertEqual(answers(written), ["GET /a 0", "GET /chat 0"], written)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    func testFirstRequestAnUpgrade_goesToNIOsUpgradeHandler() throws {
        let channel = try connect()
        let written = try send(
            "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", on: channel)
        XCTAssertTrue(written.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), written)
        XCTAssertTrue(has(WebSocketFrameHandler.self, channel))
        XCTAssertFalse(has(HTTPFastPathHandler.self, channel))
        XCTAssertFalse(has(HTTPRequestHandler.self, channel))
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    func testRequestsSplitAcrossReads_areKeptUntilWhole_andPipelinedOnesFollow() throws {
        let channel = try connect()
        XCTAssertEqual(try send("GET /a HTTP/1.1\r\nHo", on: channel), "")
        XCTAssertEqual(answers(try send("st: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nab", on: channel)),
                       ["GET /a 0"])
        XCTAssertEqual(try send("cd", on: channel), "")
        XCTAssertEqual(answers(try send("efGET /c HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)), ["POST /b 6", "GET /c 0"])
        XCTAssertTrue(has(HTTPFastPathHandler.self, channel))
        XCTAssertFalse(has(ByteToMessageHandler<HTTPRequestDecoder>.self, channel))
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    func testRequestsAfterConnectionClose_areNeverAnswered() throws {
        let channel = try connect()
        let written = try send(
            "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                + "GET /c HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)
        XCTAssertEqual(answers(written), ["GET /a 0"], written)
        XCTAssertTrue(written.contains("Connection: close\r\n"), written)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    func testMalformedRequestAfterFastOnes_getsNIOs400_afterTheirAnswers() throws {
        let channel = try connect()
        let written = try send(
            "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy"
                + "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n", on: channel)
        XCTAssertTrue(written.hasPrefix("HTTP/1.1 200 OK\r\n"), written)
        XCTAssertTrue(written.contains("GET /a 0"), written)
        XCTAssertTrue(written.contains("HTTP/1.1 400 Bad Request\r\n"), written)
        XCTAssertFalse(written.contains("smuggled"), written)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
