import NIOCore
import NIOEmbedded
import NIOWebSocket
import XCTest

@testable import HiveWorker

// MARK: - Writes of pre-encoded frames

final class WebSocketFrameHandlerWriteTests: XCTestCase {
    func testWrite_sendsPreEncodedFramesUnchangedOnFlush() throws {
        let fixture = try makeFixture()
        let encoded = WebSocketFrameCodec.encode(
            opcode: .text,
            payload: ByteBuffer(string: "pre-encoded"),
            allocator: fixture.channel.allocator
        )
        fixture.handler.write(encoded, promise: nil)
        XCTAssertNil(try fixture.channel.readOutbound(as: ByteBuffer.self), "not flushed yet")
        fixture.handler.flush()
        XCTAssertEqual(try fixture.channel.readOutbound(as: ByteBuffer.self), encoded)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    /// The session writes to the socket directly only while NIO holds nothing for it: the handler must count every
    /// write it handed to NIO until NIO is done with it, flushed or failed.
    func testUnfinishedWrites_countsWritesUntilNIOIsDoneWithThem() throws {
        let fixture = try makeFixture()
        let handler = fixture.handler
        XCTAssertEqual(handler.unfinishedWrites, 0)
        handler.write(ByteBuffer(bytes: [0x81, 0x00]), promise: nil)
        let callerPromise = fixture.channel.eventLoop.makePromise(of: Void.self)
        handler.write(ByteBuffer(bytes: [0x81, 0x00]), promise: callerPromise)
        XCTAssertEqual(handler.unfinishedWrites, 2, "written but not flushed: NIO still holds them")
        handler.flush()
        XCTAssertEqual(handler.unfinishedWrites, 0)
        XCTAssertNoThrow(try callerPromise.futureResult.wait(), "the caller's promise is still completed")
        _ = try fixture.channel.readOutbound(as: ByteBuffer.self)
        _ = try fixture.channel.readOutbound(as: ByteBuffer.self)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testWrite_afterFrameHandlerLeftThePipeline_failsPromise() throws {
        let fixture = try makeFixture()
        try fixture.channel.close().wait()
        fixture.channel.embeddedEventLoop.run()  // the pipeline removes its handlers after the close
        let promise = fixture.channel.eventLoop.makePromise(of: Void.self)
        var result: Result<Void, Error>?
        promise.futureResult.assumeIsolated().whenComplete { result = $0 }
        fixture.handler.write(ByteBuffer(string: "late"), promise: promise)
        fixture.handler.flush()
        // Checked without waiting: a promise nobody completes would hang the test instead of failing it.
        switch result {
        case .failure(let error):
            XCTAssertEqual(error as? ChannelError, .ioOnClosedChannel)
        case .success, .none:
            XCTFail("the write should have failed at once, got \(String(describing: result))")
            promise.succeed(())
        }
        XCTAssertNil(try fixture.channel.readOutbound(as: ByteBuffer.self))
        XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
    }
}

final class WebSocketFrameHandlerChannelStateTests: XCTestCase {
    /// The session's fast path reads activity and writability from the handler, not from the channel.
    func testActiveAndWritable_followTheChannelsEvents() throws {
        let fixture = try makeFixture()
        XCTAssertTrue(fixture.handler.isActive)
        XCTAssertTrue(fixture.handler.isWritable)
        fixture.channel.isWritable = false
        fixture.channel.pipeline.fireChannelWritabilityChanged()
        XCTAssertFalse(fixture.handler.isWritable)
        fixture.channel.isWritable = true
        fixture.channel.pipeline.fireChannelWritabilityChanged()
        XCTAssertTrue(fixture.handler.isWritable)
        try fixture.channel.close().wait()
        XCTAssertFalse(fixture.handler.isActive, "inactive as soon as the channel is closed")
        XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
    }
}
