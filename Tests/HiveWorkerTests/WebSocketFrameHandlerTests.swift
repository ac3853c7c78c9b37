import NIOCore
import NIOEmbedded
import NIOWebSocket
import XCTest

@testable import HiveWorker

// MARK: - Frame handler

final class WebSocketFrameHandlerTests: XCTestCase {
    // MARK: Data frames and masking

    func testTextFrame_whenMasked_deliversUnmaskedText() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, "Hello, κόσμε"))
        XCTAssertEqual(fixture.delegate.messages.map(\.kind), [.text])
        XCTAssertEqual(fixture.delegate.messages.first?.text, "Hello, κόσμε")
        XCTAssertEqual(try readFrames(fixture.channel), [])
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testBinaryFrame_whenMasked_deliversUnmaskedBytesEvenIfNotUTF8() throws {
        let fixture = try makeFixture()
        let bytes: [UInt8] = [0xFF, 0x00, 0xED, 0xA0, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        try fixture.channel.writeInbound(clientFrame(.binary, bytes))
        XCTAssertEqual(fixture.delegate.messages, [WebSocketMessage(kind: .binary, data: ByteBuffer(bytes: bytes))])
        XCTAssertNil(fixture.delegate.messages.first?.text)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testTextFrame_whenEmpty_deliversEmptyMessage() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, ""))
        XCTAssertEqual(fixture.delegate.messages.first?.text, "")
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testDataFrame_whenUnmasked_failsWith1002() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, Array("abc".utf8), masked: false))
        XCTAssertEqual(fixture.delegate.messages, [])
        try assertFailed(fixture, code: 1002)
    }

    func testControlFrame_whenUnmasked_failsWith1002() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.ping, [1, 2], masked: false))
        try assertFailed(fixture, code: 1002)
    }

    func testFrame_whenAnyReservedBitSet_failsWith1002() throws {
        for (rsv1, rsv2, rsv3) in [(true, false, false), (false, true, false), (false, false, true)] {
            let fixture = try makeFixture()
            try fixture.channel.writeInbound(clientFrame(.text, Array("a".utf8), rsv1: rsv1, rsv2: rsv2, rsv3: rsv3))
            XCTAssertEqual(fixture.delegate.messages, [])
            try assertFailed(fixture, code: 1002)
        }
    }

    func testFrame_whenReservedOpcode_failsWith1002() throws {
        for encoded: UInt8 in [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            let fixture = try makeFixture()
            let opcode = try XCTUnwrap(WebSocketOpcode(encodedWebSocketOpcode: encoded))
            try fixture.channel.writeInbound(clientFrame(opcode, [0x61]))
            try assertFailed(fixture, code: 1002)
        }
    }

    func testFrames_afterFailure_areIgnored() throws {
        let fixture = try makeFixture()
        // All three frames in one read batch, as when the decoder finds them in one socket read.
        fixture.channel.pipeline.syncOperations.fireChannelRead(
            NIOAny(clientFrame(.text, Array("a".utf8), masked: false))
        )
        fixture.channel.pipeline.syncOperations.fireChannelRead(NIOAny(clientFrame(.text, "b")))
        fixture.channel.pipeline.syncOperations.fireChannelRead(NIOAny(clientFrame(.ping, "c")))
        fixture.channel.pipeline.syncOperations.fireChannelReadComplete()
        XCTAssertEqual(fixture.delegate.messages, [])
        try assertFailed(fixture, code: 1002)
    }

    // MARK: Ping and pong

    func testPing_whenPayloadGiven_answersPongWithSamePayload() throws {
        let fixture = try makeFixture()
        let payload = (0..<125).map { UInt8($0) }
        try fixture.channel.writeInbound(clientFrame(.ping, payload))
        let frames = try readFrames(fixture.channel)
        XCTAssertEqual(frames.map(\.opcode), [.pong])
        XCTAssertEqual(frames.first?.data, ByteBuffer(bytes: payload))
        XCTAssertEqual(fixture.delegate.framesWritten, [125])
        assertStillOpen(fixture)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testPing_whenEmpty_answersEmptyPong() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.ping))
        let frames = try readFrames(fixture.channel)
        XCTAssertEqual(frames.map(\.opcode), [.pong])
        XCTAssertEqual(frames.first?.data.readableBytes, 0)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testPings_whenSeveralInOneReadBatch_areFlushedOnceAtReadComplete() throws {
        let fixture = try makeFixture()
        for index in 0..<10 {
            fixture.channel.pipeline.syncOperations.fireChannelRead(NIOAny(clientFrame(.ping, [UInt8(index)])))
        }
        XCTAssertNil(try fixture.channel.readOutbound(as: ByteBuffer.self), "nothing flushed before read complete")
        fixture.channel.pipeline.syncOperations.fireChannelReadComplete()
        let frames = try readFrames(fixture.channel)
        XCTAssertEqual(frames.map(\.opcode), Array(repeating: .pong, count: 10))
        XCTAssertEqual(frames.map { $0.data.getInteger(at: 0, as: UInt8.self) }, (0..<10).map { UInt8($0) })
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    /// NIO's queue costs about 200 bytes per write on top of the bytes: a client that sends pings and never reads
    /// the pongs must cost one write per read batch, not one per ping.
    func testPings_whenSeveralInOneReadBatch_areOneWrite() throws {
        let fixture = try makeFixture()
        for index in 0..<10 {
            fixture.channel.pipeline.syncOperations.fireChannelRead(NIOAny(clientFrame(.ping, [UInt8(index)])))
        }
        fixture.channel.pipeline.syncOperations.fireChannelReadComplete()
        let write = try XCTUnwrap(try fixture.channel.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(write.readableBytes, 10 * 3, "ten pongs of 1 byte, each with its 2-byte header")
        XCTAssertNil(try fixture.channel.readOutbound(as: ByteBuffer.self), "the pongs were more than one write")
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testPings_thenClose_pongsAreWrittenBeforeTheCloseFrame() throws {
        let fixture = try makeFixture()
        fixture.channel.pipeline.syncOperations.fireChannelRead(NIOAny(clientFrame(.ping, [7])))
        fixture.channel.pipeline.syncOperations.fireChannelRead(NIOAny(closeFrame(code: 1000)))
        let frames = try readFrames(fixture.channel)
        XCTAssertEqual(frames.map(\.opcode), [.pong, .connectionClose])
    }

    func testPing_whenPayloadLongerThan125_failsWith1002() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.ping, [UInt8](repeating: 0x61, count: 126)))
        try assertFailed(fixture, code: 1002)
    }

    func testPing_whenFinNotSet_failsWith1002() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.ping, [1], fin: false))
        try assertFailed(fixture, code: 1002)
    }

    func testPong_whenUnsolicited_isIgnored() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.pong, "unsolicited"))
        XCTAssertEqual(try readFrames(fixture.channel), [])
        XCTAssertEqual(fixture.delegate.messages, [])
        assertStillOpen(fixture)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    // MARK: Fragmentation

    func testFragments_whenTextSplitInThree_deliversOneMessage() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, "Hello", fin: false))
        try fixture.channel.writeInbound(clientFrame(.continuation, ", ", fin: false))
        XCTAssertEqual(fixture.delegate.messages, [])
        try fixture.channel.writeInbound(clientFrame(.continuation, "World", fin: true))
        XCTAssertEqual(fixture.delegate.messages.map(\.text), ["Hello, World"])
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testFragments_whenFragmentLengthsAreNotMultiplesOfFour_unmaskEachFromKeyStart() throws {
        let fixture = try makeFixture()
        let bytes = (0..<100).map { UInt8($0) }
        try fixture.channel.writeInbound(clientFrame(.binary, Array(bytes[0..<3]), fin: false))
        try fixture.channel.writeInbound(clientFrame(.continuation, Array(bytes[3..<4]), fin: false))
        try fixture.channel.writeInbound(clientFrame(.continuation, [], fin: false))
        try fixture.channel.writeInbound(clientFrame(.continuation, Array(bytes[4..<61]), fin: false))
        try fixture.channel.writeInbound(clientFrame(.continuation, Array(bytes[61...]), fin: true))
        XCTAssertEqual(fixture.delegate.messages, [WebSocketMessage(kind: .binary, data: ByteBuffer(bytes: bytes))])
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testFragments_whenTenThousandSmallFragments_deliversWholeMessage() throws {
        // No cap on fragment count (Autobahn 9.3.1 sends 65,536), and reassembly must stay linear.
        let fixture = try makeFixture()
        let chunk = "0123456789"
        let count = 10_000
        let start = ContinuousClock.now
        try fixture.channel.writeInbound(clientFrame(.text, chunk, fin: false))
        for _ in 1..<(count - 1) {
            try fixture.channel.writeInbound(clientFrame(.continuation, chunk, fin: false))
        }
        try fixture.channel.writeInbound(clientFrame(.continuation, chunk, fin: true))
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(20), "reassembly should be linear")
        XCTAssertEqual(fixture.delegate.messages.count, 1)
        XCTAssertEqual(fixture.delegate.messages.first?.text, String(repeating: chunk, count: count))
        XCTAssertEqual(fixture.delegate.framesRead.count, count)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testFragments_whenManyKilobyteFragments_reassembleInLinearTime() throws {
        // 16 MiB in 16,384 fragments. Linear reassembly copies 16 MiB once (well under a second); a copy of the
        // whole message per fragment (a shared buffer hitting copy-on-write) would move about 137 GB.
        let fixture = try makeFixture(maxMessageSize: 16 << 20)
        let fragment = clientFrame(.continuation, [UInt8](repeating: 0x5A, count: 1024), fin: false)
        let count = 16_384
        let start = ContinuousClock.now
        try fixture.channel.writeInbound(clientFrame(.binary, [UInt8](repeating: 0x5A, count: 1024), fin: false))
        for _ in 1..<(count - 1) {
            try fixture.channel.writeInbound(fragment)
        }
        try fixture.channel.writeInbound(clientFrame(.continuation, [UInt8](repeating: 0x5A, count: 1024)))
        let elapsed = ContinuousClock.now - start
        XCTAssertLessThan(elapsed, .seconds(8), "reassembly should be linear in the message size")
        XCTAssertEqual(fixture.delegate.messages.map(\.data.readableBytes), [count * 1024])
        XCTAssertEqual(fixture.delegate.messages.first?.data, ByteBuffer(repeating: 0x5A, count: count * 1024))
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testContinuation_whenNoMessageStarted_failsWith1002() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.continuation, "orphan", fin: true))
        try assertFailed(fixture, code: 1002)
    }

    func testContinuation_afterMessageCompleted_failsWith1002() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, "done"))
        try fixture.channel.writeInbound(clientFrame(.continuation, "more"))
        XCTAssertEqual(fixture.delegate.messages.count, 1)
        try assertFailed(fixture, code: 1002)
    }

    func testDataFrame_whenMessageInProgress_failsWith1002() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, "first", fin: false))
        try fixture.channel.writeInbound(clientFrame(.binary, "second", fin: true))
        XCTAssertEqual(fixture.delegate.messages, [])
        try assertFailed(fixture, code: 1002)
    }

    func testPing_whenInterleavedBetweenFragments_isAnsweredBeforeMessageCompletes() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, "frag1", fin: false))
        try fixture.channel.writeInbound(clientFrame(.ping, "ping"))
        let frames = try readFrames(fixture.channel)
        XCTAssertEqual(frames.map(\.opcode), [.pong])
        XCTAssertEqual(frames.first.map { String(buffer: $0.data) }, "ping")
        XCTAssertEqual(fixture.delegate.messages, [])
        try fixture.channel.writeInbound(clientFrame(.pong, "unsolicited"))
        try fixture.channel.writeInbound(clientFrame(.continuation, "frag2", fin: true))
        XCTAssertEqual(fixture.delegate.messages.map(\.text), ["frag1frag2"])
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    // MARK: Size limit

    func testMessage_whenExactlyAtLimit_isDelivered() throws {
        let fixture = try makeFixture(maxMessageSize: 100)
        try fixture.channel.writeInbound(clientFrame(.binary, [UInt8](repeating: 1, count: 100)))
        try fixture.channel.writeInbound(clientFrame(.binary, [UInt8](repeating: 2, count: 50), fin: false))
        try fixture.channel.writeInbound(clientFrame(.continuation, [UInt8](repeating: 3, count: 50), fin: true))
        XCTAssertEqual(fixture.delegate.messages.map(\.data.readableBytes), [100, 100])
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testMessage_whenSingleFrameLargerThanLimit_failsWith1009() throws {
        let fixture = try makeFixture(maxMessageSize: 100)
        try fixture.channel.writeInbound(clientFrame(.binary, [UInt8](repeating: 1, count: 101)))
        XCTAssertEqual(fixture.delegate.messages, [])
        try assertFailed(fixture, code: 1009)
    }

    func testMessage_whenFragmentsExceedLimit_failsWith1009BeforeFinalFragment() throws {
        let fixture = try makeFixture(maxMessageSize: 100)
        try fixture.channel.writeInbound(clientFrame(.text, String(repeating: "a", count: 60), fin: false))
        assertStillOpen(fixture)
        try fixture.channel.writeInbound(clientFrame(.continuation, String(repeating: "b", count: 41), fin: false))
        XCTAssertEqual(fixture.delegate.messages, [])
        try assertFailed(fixture, code: 1009)
    }

    // MARK: UTF-8

    func testText_whenInvalidUTF8InSingleFrame_failsWith1007() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, Array("κόσμε".utf8) + [0xED, 0xA0, 0x80] + [0x61]))
        XCTAssertEqual(fixture.delegate.messages, [])
        try assertFailed(fixture, code: 1007)
    }

    func testText_whenInvalidUTF8InSecondFragment_failsWith1007BeforeFinalFragment() throws {
        // Autobahn 6.4.1: the third fragment is only sent later; the connection must already be failed.
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, "κόσμε", fin: false))
        assertStillOpen(fixture)
        try fixture.channel.writeInbound(clientFrame(.continuation, [0xF4, 0x90, 0x80, 0x80], fin: false))
        XCTAssertEqual(fixture.delegate.messages, [])
        try assertFailed(fixture, code: 1007)
    }

    func testText_whenInvalidSequenceStartsInOneFragmentAndEndsInNext_failsAtFirstImpossibleByte() throws {
        // Autobahn 6.4.2: F4 ends fragment 1, 90 (beyond U+10FFFF) starts fragment 2.
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, Array("κόσμε".utf8) + [0xF4], fin: false))
        assertStillOpen(fixture)
        try fixture.channel.writeInbound(clientFrame(.continuation, [0x90, 0x80, 0x80], fin: false))
        try assertFailed(fixture, code: 1007)
    }

    func testText_whenCharacterSplitAcrossFragments_isDelivered() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, [0xE2], fin: false))
        try fixture.channel.writeInbound(clientFrame(.continuation, [0x82], fin: false))
        try fixture.channel.writeInbound(clientFrame(.continuation, [0xAC], fin: true))
        XCTAssertEqual(fixture.delegate.messages.map(\.text), ["€"])
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testText_whenMessageEndsInsideCharacter_failsWith1007() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, "a", fin: false))
        try fixture.channel.writeInbound(clientFrame(.continuation, [0xE2, 0x82], fin: true))
        XCTAssertEqual(fixture.delegate.messages, [])
        try assertFailed(fixture, code: 1007)
    }

    func testText_whenSingleFrameEndsInsideCharacter_failsWith1007() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, [0x61, 0xF0, 0x9D]))
        try assertFailed(fixture, code: 1007)
    }

    // MARK: Keep-alive

    func testPingTimer_whenIntervalSet_sendsPingEveryInterval() throws {
        let fixture = try makeFixture(pingInterval: .seconds(10), pongTimeout: .seconds(5))
        fixture.channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        XCTAssertEqual(try readFrames(fixture.channel), [])
        fixture.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertEqual(try readFrames(fixture.channel).map(\.opcode), [.ping])
        try fixture.channel.writeInbound(clientFrame(.pong))
        fixture.channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        XCTAssertEqual(try readFrames(fixture.channel).map(\.opcode), [.ping])
        XCTAssertEqual(fixture.delegate.framesWritten, [0, 0])
        assertStillOpen(fixture)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testPingTimer_whenIntervalNil_sendsNothing() throws {
        let fixture = try makeFixture(pingInterval: nil)
        fixture.channel.embeddedEventLoop.advanceTime(by: .hours(1))
        XCTAssertEqual(try readFrames(fixture.channel), [])
        assertStillOpen(fixture)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testPongTimeout_whenNothingArrives_dropsConnectionWithoutCloseFrame() throws {
        let fixture = try makeFixture(pingInterval: .seconds(10), pongTimeout: .seconds(5))
        fixture.channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        XCTAssertEqual(try readFrames(fixture.channel).map(\.opcode), [.ping])
        fixture.channel.embeddedEventLoop.advanceTime(by: .milliseconds(4999))
        XCTAssertTrue(fixture.channel.isActive)
        fixture.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(fixture.channel.isActive)
        XCTAssertEqual(try readFrames(fixture.channel), [], "1006-style drop: no close frame")
        XCTAssertEqual(fixture.delegate.closings, [.init(code: .unknown(1006), initiatedByPeer: false)])
        XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
    }

    func testPongTimeout_whenAnyFrameArrives_keepsConnectionOpen() throws {
        let fixture = try makeFixture(pingInterval: .seconds(10), pongTimeout: .seconds(5))
        fixture.channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        fixture.channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        try fixture.channel.writeInbound(clientFrame(.text, "still here"))
        fixture.channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        assertStillOpen(fixture)
        XCTAssertEqual(try readFrames(fixture.channel).map(\.opcode), [.ping])
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testPongTimeout_whenLongerThanInterval_countsFromFirstUnansweredPing() throws {
        let fixture = try makeFixture(pingInterval: .seconds(2), pongTimeout: .seconds(5))
        fixture.channel.embeddedEventLoop.advanceTime(by: .seconds(6))  // pings at 2, 4, 6
        XCTAssertTrue(fixture.channel.isActive)
        fixture.channel.embeddedEventLoop.advanceTime(by: .seconds(1))  // 7 = 2 + 5
        XCTAssertFalse(fixture.channel.isActive)
        XCTAssertEqual(try readFrames(fixture.channel).map(\.opcode), [.ping, .ping, .ping])
        XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
    }

    func testPongTimeout_whenFrameArrivesAfterSeveralUnansweredPings_keepsConnectionOpen() throws {
        // Pings at 2, 4 and 6 s share the deadline of the first; the frame at 6.5 s must clear it for good.
        let fixture = try makeFixture(pingInterval: .seconds(2), pongTimeout: .seconds(5))
        fixture.channel.embeddedEventLoop.advanceTime(by: .milliseconds(6500))
        try fixture.channel.writeInbound(clientFrame(.pong))
        fixture.channel.embeddedEventLoop.advanceTime(by: .milliseconds(5500))  // 12 s: next deadline is 8 + 5
        assertStillOpen(fixture)
        XCTAssertEqual(try readFrames(fixture.channel).map(\.opcode), Array(repeating: .ping, count: 6))
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testTimers_afterChannelClosed_doNothing() throws {
        let fixture = try makeFixture(pingInterval: .seconds(1), pongTimeout: .seconds(1))
        try fixture.channel.close().wait()
        fixture.channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        XCTAssertEqual(try readFrames(fixture.channel), [])
        XCTAssertEqual(fixture.delegate.closings, [])
        XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
    }

    func testPingTimer_whenHandlerAddedToActiveChannel_starts() throws {
        // After an upgrade the handler joins an active channel and never sees channelActive.
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9001)).wait()
        let delegate = RecordingDelegate()
        let limits = WebSocketLimits(maxMessageSize: 100, pingInterval: .seconds(1), pongTimeout: .seconds(30))
        let handler = WebSocketFrameHandler(limits: limits, delegate: delegate)
        try channel.pipeline.syncOperations.addHandler(handler)
        startKeepAliveSweep(on: channel, limits: limits, handler: handler)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertEqual(try readFrames(channel).map(\.opcode), [.ping])
        XCTAssertTrue(try channel.finish().isClean)
    }

    // MARK: Delegate

    func testDelegate_receivesPayloadLengthOfEveryFrameReadAndWritten() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, "abc", fin: false))
        try fixture.channel.writeInbound(clientFrame(.ping, "xy"))
        try fixture.channel.writeInbound(clientFrame(.continuation, "defg", fin: true))
        try fixture.channel.writeInbound(closeFrame(code: 1000, reason: Array("ok".utf8)))
        XCTAssertEqual(fixture.delegate.framesRead, [3, 2, 4, 4])
        XCTAssertEqual(fixture.delegate.framesWritten, [2, 2], "pong, then the 2-byte close")
        XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
    }

    func testDelegate_isLetGoWhenTheHandlerLeavesThePipeline() throws {
        // The session holds its handler and the handler its session: the cycle must end with the connection.
        var delegate: RecordingDelegate? = RecordingDelegate()
        weak let weakDelegate = delegate
        let limits = WebSocketLimits(maxMessageSize: 100, pingInterval: nil, pongTimeout: .seconds(1))
        let handler = WebSocketFrameHandler(limits: limits, delegate: delegate!)
        delegate = nil
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ClientFrameSerializer())
        try channel.pipeline.syncOperations.addHandler(handler)
        XCTAssertNoThrow(try channel.writeInbound(clientFrame(.text, "someone listens")))
        XCTAssertEqual(weakDelegate?.messages.count, 1, "held while the handler is in the pipeline")
        XCTAssertTrue(try channel.finish().isClean)
        channel.embeddedEventLoop.run()
        XCTAssertNil(weakDelegate, "released once the channel closed")
    }
}
