import HiveIPC
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import HiveWorker

/// The bytes a plain HTTP connection reads are counted once each (the registry's `bytesIn`): by the fast path while
/// it reads the connection, by the record handler after the hand-over to NIO's decoder. And the fast path keeps
/// `channelReadComplete` to itself until then, which NIO's decoder gets after it.
final class HTTPReadCountingTests: XCTestCase {
    struct OKApplication: HiveApplication {
        func request(_ request: HiveRequest, hive: HiveServer) throws -> HiveResponse { .text("ok\n") }
    }

    /// Counts the `channelReadComplete`s that reach the end of the pipeline.
    final class ReadCompleteCounter: ChannelInboundHandler {
        typealias InboundIn = Any
        var count = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.fireChannelRead(data) }
        func channelReadComplete(context: ChannelHandlerContext) { count += 1 }
    }

    private let loop = EmbeddedEventLoop()

    func testBytesIn_countedOnce_beforeAndAfterTheHandOver_andReadCompleteReachesNIOsHandlersOnlyAfterIt() throws {
        let hive = HiveServer(
            workerID: 0, eventLoop: loop, registry: .heap(capacity: 1, workerCount: 1), limits: ConnectionLimits(),
            application: OKApplication(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let (channel, id) = try hive.adoptTestConnection(on: loop)
        let counter = ReadCompleteCounter()
        try channel.pipeline.syncOperations.addHandler(counter)
        let reads = [
            "GET /a HTTP/1.1\r\nHo", "st: h\r\n\r\n",  // a fast-path request split across two reads
            "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n",  // the hand-over
            "0\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n",  // NIO's decoder from now on
        ]
        var sent = 0
        var answered = ""
        var completesSeen: [Int] = []
        for read in reads {
            sent += read.utf8.count
            _ = try? channel.writeInbound(ByteBuffer(string: read))
            loop.run()
            while let out = try channel.readOutbound(as: ByteBuffer.self) { answered += String(buffer: out) }
            completesSeen.append(counter.count)
        }
        XCTAssertEqual(answered.components(separatedBy: "HTTP/1.1 200 OK").count - 1, 3, answered)
        let snapshot = try XCTUnwrap(hive.registry.lookup(id, withUser: false))
        XCTAssertEqual(snapshot.bytesIn, UInt64(sent))
        XCTAssertEqual(completesSeen, [0, 0, 1, 2], "read-complete passes the fast path only once it handed over")
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
