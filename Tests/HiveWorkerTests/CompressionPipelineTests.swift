import HiveIPC
import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
import XCTest

@testable import HiveWorker

/// permessage-deflate through the worker's whole pipeline (`WorkerPipeline.configure`, embedded channels, a heap
/// registry): the 101 answers the offer, and a broadcast is deflated once for all the worker's compressed sessions.
final class CompressionPipelineTests: XCTestCase {
    struct QuietApplication: HiveApplication {
        func request(_ request: HiveRequest, hive: HiveServer) throws -> HiveResponse { .text("ok\n") }
        func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) throws {}
    }

    private let loop = EmbeddedEventLoop()

    private func makeHive(compression: Bool) -> HiveServer {
        var limits = ConnectionLimits()
        limits.compression = compression
        limits.compressionMinSize = 100
        return HiveServer(
            workerID: 0, eventLoop: loop, registry: .heap(capacity: 8, workerCount: 1), limits: limits,
            application: QuietApplication(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
    }

    /// An upgraded connection; returns its channel and the 101 response.
    private func upgrade(_ hive: HiveServer, extensions: String?) throws -> (EmbeddedChannel, String) {
        let (channel, _) = try hive.adoptTestConnection(on: loop)
        let offer = extensions.map { "Sec-WebSocket-Extensions: \($0)\r\n" } ?? ""
        let request = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\(offer)\r\n"
        try channel.writeInbound(ByteBuffer(string: request))
        loop.run()
        var response = ""
        while let out = try channel.readOutbound(as: ByteBuffer.self) { response += String(buffer: out) }
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 101"), response)
        return (channel, response)
    }

    private func frames(_ channel: EmbeddedChannel) throws -> [WebSocketFrame] {
        let decoder = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 24)))
        while let out = try channel.readOutbound(as: ByteBuffer.self) { try decoder.writeInbound(out) }
        var frames: [WebSocketFrame] = []
        while let frame = try decoder.readInbound(as: WebSocketFrame.self) { frames.append(frame) }
        return frames
    }

    func testBroadcast_isDeflatedOncePerWorker_forEveryCompressedSession() throws {
        let hive = makeHive(compression: true)
        var compressed: [EmbeddedChannel] = []
        for _ in 0..<3 {
            let (channel, response) = try upgrade(hive, extensions: "permessage-deflate; client_max_window_bits")
            XCTAssertTrue(response.contains(
                "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
                response)
            compressed.append(channel)
        }
        let (plain, plainResponse) = try upgrade(hive, extensions: nil)
        XCTAssertFalse(plainResponse.contains("Sec-WebSocket-Extensions"), plainResponse)

        let message = String(repeating: "{\"symbol\": \"HIVE\", \"price\": 1234} ", count: 40)
        hive.broadcastNow([.text(message), .text("short")])
        loop.run()

        XCTAssertEqual(hive.table.compressor?.deflatedMessages, 1, "one deflate for three sessions; short stays plain")
        for channel in compressed {
            let got = try frames(channel)
            XCTAssertEqual(got.map(\.rsv1), [true, false])
            XCTAssertLessThan(got[0].data.readableBytes, message.utf8.count / 4)
            let inflated = MessageInflater()!.inflate(got[0].data, limit: 1 << 20, allocator: ByteBufferAllocator())
            XCTAssertEqual(try inflated.get(), ByteBuffer(string: message))
            XCTAssertEqual(String(buffer: got[1].data), "short")
        }
        let got = try frames(plain)
        XCTAssertEqual(got.map(\.rsv1), [false, false])
        XCTAssertEqual(String(buffer: got[0].data), message)
    }

    func testCompressionOff_declinesTheOffer_andMakesNoZlibState() throws {
        let hive = makeHive(compression: false)
        let (channel, response) = try upgrade(hive, extensions: "permessage-deflate")
        XCTAssertFalse(response.contains("Sec-WebSocket-Extensions"), response)
        hive.broadcastNow([.text(String(repeating: "x", count: 500))])
        loop.run()
        XCTAssertEqual(try frames(channel).map(\.rsv1), [false])
        XCTAssertNil(hive.table.compressor)
        XCTAssertNil(hive.table.inflater)
    }
}
