import HiveIPC
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest
import Foundation

@testable import HiveWorker

/// The worker's whole pipeline (`WorkerPipeline.configure`) on an embedded channel, with a registry on the heap:
/// what a connection leaves behind once it is gone.
final class WorkerPipelineTests: XCTestCase {
    struct EchoApplication: HiveApplication {
        func request(_ request: HiveRequest, hive: HiveServer) throws -> HiveResponse { .text("ok\n") }
        func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws {
            try await hive.push(connection.id, message)
        }
    }

    private let loop = EmbeddedEventLoop()

    private func makeHive() -> HiveServer {
        HiveServer(
            workerID: 0, eventLoop: loop, registry: .heap(capacity: 1, workerCount: 1), limits: ConnectionLimits(),
            application: EchoApplication(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
    }

    /// A connection adopted as `InboxReader.adopt` does; socket -1 makes a session's direct writes fall back to NIO.
    private func connect(_ hive: HiveServer) throws -> (EmbeddedChannel, ConnectionID) {
        try hive.adoptTestConnection(on: loop)
    }

    private func assertGone(_ hive: HiveServer, _ id: ConnectionID, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNil(hive.registry.protocolState(of: id), "slot still in use", file: file, line: line)
        XCTAssertTrue(hive.table.isEmpty, "table still holds the channel", file: file, line: line)
        XCTAssertTrue(hive.table.sessions.isEmpty, "table still holds the session", file: file, line: line)
    }

    /// Found by the fuzz-http target: an upgrade request followed in the same read by bytes that are not HTTP
    /// (a `Connection` header without "upgrade" keeps NIO's decoder parsing them) fails the connection with a 400
    /// and closes it, while NIO's upgrade goes on. The upgrade then registered a WebSocket session for the closed
    /// connection, after its end had cleaned up: the session stayed in the worker's table for good, and the
    /// application heard `open` after `close`.
    func testUpgradeRacingAParseErrorThatClosesTheConnection_leavesNothingBehind() throws {
        let hive = makeHive()
        let (channel, id) = try connect(hive)
        let request = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        _ = try? channel.writeInbound(ByteBuffer(bytes: Array(request.utf8) + [0x82, 0xFE, 0x00, 0x82]))
        loop.run()
        var written = ""
        while let out = try channel.readOutbound(as: ByteBuffer.self) { written += String(buffer: out) }
        XCTAssertTrue(written.hasPrefix("HTTP/1.1 400 Bad Request"), written)
        _ = try? channel.finish(acceptAlreadyClosed: true)
        loop.run()
        assertGone(hive, id)
    }

    /// Found by the fuzz-http target (a leak): NIO's upgrade handler stores the upgrade it will run at the request's
    /// end in a closure that holds the handler and its context. A handshake announcing a body, on a connection that
    /// ended before the body did, kept that cycle, and the handler with everything it holds, for good.
    func testUpgradeRequestWithABody_isNotAnUpgrade_andLeavesNothingBehind() throws {
        let hive = makeHive()
        weak var upgradeHandler: HTTPServerUpgradeHandler?
        var written = ""
        var id: ConnectionID?
        try {
            let (channel, connection) = try connect(hive)
            id = connection
            // The fast path hands the connection to NIO's handlers at the Upgrade field, before the head is whole.
            try channel.writeInbound(
                ByteBuffer(string: "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"))
            upgradeHandler = try channel.pipeline.syncOperations.handler(type: HTTPServerUpgradeHandler.self)
            let request = "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 10\r\n\r\n"
            // The refused upgrade leaves the pipeline as an error, as for any invalid handshake.
            XCTAssertThrowsError(try channel.writeInbound(ByteBuffer(string: request + "12345")))
            loop.run()
            while let out = try channel.readOutbound(as: ByteBuffer.self) { written += String(buffer: out) }
            _ = try channel.finish(acceptAlreadyClosed: true)
            loop.run()
        }()
        XCTAssertFalse(written.contains("101 Switching Protocols"), written)
        assertGone(hive, try XCTUnwrap(id))
        XCTAssertNil(upgradeHandler, "the upgrade handler outlived its connection")
    }

    /// Found by the fuzz-http target (a trap that took the whole worker down): without "upgrade" in `Connection`,
    /// NIO's decoder does not stop at the handshake and parses a request pipelined behind it. NIO's upgrade handler
    /// buffers that request's parts and hands them on after the upgrade, where the frame handler, which reads
    /// bytes, trapped on them.
    func testUpgradeFollowedByAPipelinedRequest_closesTheConnectionInsteadOfTrapping() throws {
        let hive = makeHive()
        let (channel, id) = try connect(hive)
        let request = "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET /favicon.ico HTTP/1.1\r\nHost: a\r\n\r\n"
        _ = try? channel.writeInbound(ByteBuffer(string: request))
        loop.run()
        XCTAssertFalse(channel.isActive, "a connection that sent HTTP after its handshake is closed")
        _ = try? channel.finish(acceptAlreadyClosed: true)
        loop.run()
        assertGone(hive, id)
    }

    /// An upgrade request to /chat and, in the same read, a client text frame.
    private func upgradeWithTextFrame(_ text: String) -> ByteBuffer {
        let request = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        var bytes = ByteBuffer(string: request)
        bytes.writeImmutableBuffer(serialize(clientFrame(.text, text)))
        return bytes
    }

    /// An established WebSocket keeps only its record and frame handlers: the leftover guard is gone once the
    /// upgrade is done, and frames sent with the handshake are still read.
    func testUpgrade_leavesOnlyTheFrameHandler_andReadsFramesSentWithTheHandshake() throws {
        let hive = makeHive()
        let (channel, id) = try connect(hive)
        let bytes = upgradeWithTextFrame("hi")
        try channel.writeInbound(bytes)
        loop.run()
        XCTAssertThrowsError(try channel.pipeline.syncOperations.handler(type: UpgradeLeftoverHandler.self))
        XCTAssertNoThrow(try channel.pipeline.syncOperations.handler(type: WebSocketFrameHandler.self))
        XCTAssertEqual(hive.registry.protocolState(of: id), .websocket)
        // One table entry per connection: the session holds the channel (a second entry cost ~94 B per connection
        // at 16,700 per worker).
        XCTAssertEqual(hive.table.count, 1)
        XCTAssertTrue(hive.table.plainChannels.isEmpty)
        XCTAssertTrue(hive.table.channel(id) === channel)
        var written = ByteBuffer()
        while let out = try channel.readOutbound(as: ByteBuffer.self) { written.writeImmutableBuffer(out) }
        // The echo of "hi" (a server text frame) follows the 101 response.
        XCTAssertTrue(written.readableBytesView.reversed().starts(with: Array("ih".utf8) + [2, 0x81]), "\(written)")
        _ = try channel.finish(acceptAlreadyClosed: true)
        loop.run()
        assertGone(hive, id)
    }

    /// An established WebSocket is one handler: the frame handler takes the connection's record over from the
    /// record handler at the upgrade (a handler and a pipeline context fewer per connection), and goes on counting
    /// bytes both ways and ending the connection as the record handler did.
    func testUpgrade_leavesOneHandler_whichKeepsTheRecord() throws {
        let hive = makeHive()
        let (channel, id) = try connect(hive)
        let bytes = upgradeWithTextFrame("hi")
        var sent = bytes.readableBytes
        try channel.writeInbound(bytes)
        loop.run()
        XCTAssertThrowsError(try channel.pipeline.syncOperations.handler(type: ConnectionRecordHandler.self),
                             "the record handler stayed in an established WebSocket's pipeline")
        let frameHandler = try channel.pipeline.syncOperations.handler(type: WebSocketFrameHandler.self)
        XCTAssertEqual(frameHandler.record?.id, id)
        let frame = serialize(clientFrame(.text, "again"))
        sent += frame.readableBytes
        try channel.writeInbound(frame)
        loop.run()
        var received = 0
        while let out = try channel.readOutbound(as: ByteBuffer.self) { received += out.readableBytes }
        let snapshot = try XCTUnwrap(hive.registry.lookup(id, withUser: false))
        XCTAssertEqual(snapshot.bytesIn, UInt64(sent))
        XCTAssertEqual(snapshot.bytesOut, UInt64(received), "the 101 and both echoes")
        _ = try channel.finish(acceptAlreadyClosed: true)
        loop.run()
        assertGone(hive, id)
    }
}
