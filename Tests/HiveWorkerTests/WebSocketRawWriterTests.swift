import NIOCore
import NIOEmbedded
import NIOWebSocket
import XCTest

@testable import HiveWorker

// MARK: - Raw writer

final class WebSocketRawWriterTests: XCTestCase {
    func testWrite_whenFirstInPipeline_bypassesNIOFrameEncoder() throws {
        // The layout after an upgrade: the encoder NIO installed, our writer in front of it.
        let channel = EmbeddedChannel()
        let writer = WebSocketRawWriter()
        try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        try channel.pipeline.syncOperations.addHandler(writer, position: .first)

        let encoded = WebSocketFrameCodec.encode(
            opcode: .text,
            payload: ByteBuffer(string: "pre-encoded"),
            allocator: channel.allocator
        )
        writer.write(encoded, promise: nil)
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "not flushed yet")
        writer.flush()
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), encoded)

        // Frames written the NIO way still go through the encoder and then pass through the writer unchanged.
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: [7])), promise: nil)
        var output = ByteBuffer()
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            output.writeBuffer(&buffer)
        }
        XCTAssertEqual(output, ByteBuffer(bytes: [0x82, 0x01, 0x07]))
        XCTAssertTrue(try channel.finish().isClean)
    }

    /// The session writes to the socket directly only while NIO holds nothing for it: the writer must count every
    /// write it handed to NIO until NIO is done with it, flushed or failed.
    func testUnfinishedWrites_countsWritesUntilNIOIsDoneWithThem() throws {
        let channel = EmbeddedChannel()
        let writer = WebSocketRawWriter()
        try channel.pipeline.syncOperations.addHandler(writer)
        XCTAssertEqual(writer.unfinishedWrites, 0)
        writer.write(ByteBuffer(bytes: [0x81, 0x00]), promise: nil)
        let callerPromise = channel.eventLoop.makePromise(of: Void.self)
        writer.write(ByteBuffer(bytes: [0x81, 0x00]), promise: callerPromise)
        XCTAssertEqual(writer.unfinishedWrites, 2, "written but not flushed: NIO still holds them")
        writer.flush()
        XCTAssertEqual(writer.unfinishedWrites, 0)
        XCTAssertNoThrow(try callerPromise.futureResult.wait(), "the caller's promise is still completed")
        _ = try channel.readOutbound(as: ByteBuffer.self)
        _ = try channel.readOutbound(as: ByteBuffer.self)
        XCTAssertTrue(try channel.finish().isClean)
    }

    func testWrite_afterHandlerRemoved_failsPromise() throws {
        let channel = EmbeddedChannel()
        let writer = WebSocketRawWriter()
        try channel.pipeline.syncOperations.addHandler(writer)
        try channel.pipeline.syncOperations.removeHandler(writer).wait()
        let promise = channel.eventLoop.makePromise(of: Void.self)
        var result: Result<Void, Error>?
        promise.futureResult.assumeIsolated().whenComplete { result = $0 }
        writer.write(ByteBuffer(string: "late"), promise: promise)
        writer.flush()
        // Checked without waiting: a promise nobody completes would hang the test instead of failing it.
        switch result {
        case .failure(let error):
            XCTAssertEqual(error as? ChannelError, .ioOnClosedChannel)
        case .success, .none:
            XCTFail("the write should have failed at once, got \(String(describing: result))")
            promise.succeed(())
        }
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self))
        XCTAssertTrue(try channel.finish().isClean)
    }
}
