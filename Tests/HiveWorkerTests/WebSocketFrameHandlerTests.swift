import NIOCore
import NIOEmbedded
import NIOWebSocket
import XCTest

@testable import HiveWorker

// MARK: - Test support

private final class RecordingDelegate: WebSocketFrameHandlerDelegate {
    struct Closing: Equatable {
        var code: WebSocketErrorCode
        var initiatedByPeer: Bool
    }

    var messages: [WebSocketMessage] = []
    var framesRead: [Int] = []
    var framesWritten: [Int] = []
    var closings: [Closing] = []
    /// Lets a test act from inside the callback, as the owner would (echo, initiateClose).
    var onMessage: ((WebSocketMessage) -> Void)?

    func webSocketReceived(_ message: WebSocketMessage) {
        self.messages.append(message)
        self.onMessage?(message)
    }

    func webSocketFrameRead(bytes: Int) {
        self.framesRead.append(bytes)
    }

    func webSocketFrameWritten(bytes: Int) {
        self.framesWritten.append(bytes)
    }

    func webSocketClosing(code: WebSocketErrorCode, initiatedByPeer: Bool) {
        self.closings.append(Closing(code: code, initiatedByPeer: initiatedByPeer))
    }
}

private struct Fixture {
    let channel: EmbeddedChannel
    let writer: WebSocketRawWriter
    let handler: WebSocketFrameHandler
    /// The handler holds its delegate weakly: the fixture keeps it alive.
    let delegate: RecordingDelegate
}

private let testMaskKey: WebSocketMaskingKey = [0x12, 0x34, 0x56, 0x78]

private func makeFixture(
    maxMessageSize: Int = 1 << 20,
    pingInterval: TimeAmount? = nil,
    pongTimeout: TimeAmount = .seconds(3)
) throws -> Fixture {
    let channel = EmbeddedChannel()
    let delegate = RecordingDelegate()
    let writer = WebSocketRawWriter()
    let limits = WebSocketLimits(maxMessageSize: maxMessageSize, pingInterval: pingInterval, pongTimeout: pongTimeout)
    let handler = WebSocketFrameHandler(limits: limits, writer: writer, delegate: delegate)
    try channel.pipeline.syncOperations.addHandler(writer, position: .first)
    try channel.pipeline.syncOperations.addHandler(handler)
    try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9001)).wait()
    return Fixture(channel: channel, writer: writer, handler: handler, delegate: delegate)
}

/// A frame as a browser sends it: masked unless told otherwise.
private func clientFrame(
    _ opcode: WebSocketOpcode,
    _ bytes: [UInt8] = [],
    fin: Bool = true,
    masked: Bool = true,
    rsv1: Bool = false,
    rsv2: Bool = false,
    rsv3: Bool = false
) -> WebSocketFrame {
    var data = ByteBuffer(bytes: bytes)
    if masked {
        data.webSocketMask(testMaskKey)
    }
    return WebSocketFrame(
        fin: fin,
        rsv1: rsv1,
        rsv2: rsv2,
        rsv3: rsv3,
        opcode: opcode,
        maskKey: masked ? testMaskKey : nil,
        data: data
    )
}

private func clientFrame(_ opcode: WebSocketOpcode, _ text: String, fin: Bool = true) -> WebSocketFrame {
    clientFrame(opcode, Array(text.utf8), fin: fin)
}

private func closeFrame(code: UInt16, reason: [UInt8] = []) -> WebSocketFrame {
    var payload = [UInt8(code >> 8), UInt8(code & 0xFF)]
    payload.append(contentsOf: reason)
    return clientFrame(.connectionClose, payload)
}

/// Decodes everything the server flushed with NIO's own decoder, so the codec is checked against an independent
/// parser. Server frames must never be masked.
private func readFrames(
    _ channel: EmbeddedChannel,
    file: StaticString = #filePath,
    line: UInt = #line
) throws
    -> [WebSocketFrame]
{
    let decoder = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 24)))
    while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
        try decoder.writeInbound(buffer)
    }
    var frames: [WebSocketFrame] = []
    while let frame = try decoder.readInbound(as: WebSocketFrame.self) {
        XCTAssertNil(frame.maskKey, "server frames are never masked", file: file, line: line)
        frames.append(frame)
    }
    XCTAssertTrue(try decoder.finish().isClean, "partial frame written", file: file, line: line)
    return frames
}

private func closeCode(of frame: WebSocketFrame) -> UInt16? {
    frame.data.getInteger(at: frame.data.readerIndex, as: UInt16.self)
}

/// The connection was failed: one close frame with `code` was written, the channel is closed, the owner was told.
private func assertFailed(
    _ fixture: Fixture,
    code: UInt16,
    file: StaticString = #filePath,
    line: UInt = #line
) throws {
    let frames = try readFrames(fixture.channel, file: file, line: line)
    XCTAssertEqual(frames.last?.opcode, .connectionClose, "last frame is a close", file: file, line: line)
    XCTAssertEqual(frames.filter { $0.opcode == .connectionClose }.count, 1, "one close", file: file, line: line)
    XCTAssertEqual(frames.last.flatMap(closeCode(of:)), code, file: file, line: line)
    XCTAssertFalse(fixture.channel.isActive, "channel closed", file: file, line: line)
    XCTAssertEqual(
        fixture.delegate.closings,
        [.init(code: WebSocketErrorCode(codeNumber: Int(code)), initiatedByPeer: false)],
        file: file,
        line: line
    )
    XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true), file: file, line: line)
}

private func assertStillOpen(_ fixture: Fixture, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertTrue(fixture.channel.isActive, "channel open", file: file, line: line)
    XCTAssertEqual(fixture.delegate.closings, [], file: file, line: line)
}

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

    // MARK: Close handshake, peer-initiated

    func testClose_whenValidCode_echoesCodeAndClosesChannel() throws {
        for code: UInt16 in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
            4999,
        ] {
            let fixture = try makeFixture()
            try fixture.channel.writeInbound(closeFrame(code: code, reason: Array("bye".utf8)))
            let frames = try readFrames(fixture.channel)
            XCTAssertEqual(frames.map(\.opcode), [.connectionClose], "code \(code)")
            XCTAssertEqual(frames.first.flatMap(closeCode(of:)), code)
            XCTAssertEqual(frames.first?.data.readableBytes, 2, "echoes the code only")
            XCTAssertFalse(fixture.channel.isActive, "code \(code)")
            XCTAssertEqual(
                fixture.delegate.closings,
                [.init(code: WebSocketErrorCode(codeNumber: Int(code)), initiatedByPeer: true)]
            )
            XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
        }
    }

    func testClose_whenEmptyPayload_answers1000AndReports1005() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.connectionClose))
        let frames = try readFrames(fixture.channel)
        XCTAssertEqual(frames.map(\.opcode), [.connectionClose])
        XCTAssertEqual(frames.first.flatMap(closeCode(of:)), 1000)
        XCTAssertFalse(fixture.channel.isActive)
        XCTAssertEqual(fixture.delegate.closings, [.init(code: .unknown(1005), initiatedByPeer: true)])
        XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
    }

    func testClose_whenPayloadIsOneByte_failsWith1002() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.connectionClose, [0x03]))
        try assertFailed(fixture, code: 1002)
    }

    func testClose_whenCodeInvalid_failsWith1002() throws {
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            let fixture = try makeFixture()
            try fixture.channel.writeInbound(closeFrame(code: code))
            try assertFailed(fixture, code: 1002)
        }
    }

    func testClose_whenReasonNotUTF8_failsWith1007() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(closeFrame(code: 1000, reason: [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xED, 0xA0]))
        try assertFailed(fixture, code: 1007)
    }

    func testClose_whenPayloadLongerThan125_failsWith1002() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(closeFrame(code: 1000, reason: [UInt8](repeating: 0x61, count: 124)))
        try assertFailed(fixture, code: 1002)
    }

    func testClose_whenInMiddleOfFragmentedMessage_answersPeersCode() throws {
        // Autobahn 7.1.5: a close between fragments is a normal close, not a protocol error.
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, "fragment1", fin: false))
        try fixture.channel.writeInbound(closeFrame(code: 1000))
        let frames = try readFrames(fixture.channel)
        XCTAssertEqual(frames.map(\.opcode), [.connectionClose])
        XCTAssertEqual(frames.first.flatMap(closeCode(of:)), 1000)
        XCTAssertEqual(fixture.delegate.messages, [])
        XCTAssertFalse(fixture.channel.isActive)
        XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
    }

    func testDataFrames_inSameBatchAfterPeerClose_areIgnored() throws {
        let fixture = try makeFixture()
        fixture.channel.pipeline.syncOperations.fireChannelRead(NIOAny(closeFrame(code: 1000)))
        fixture.channel.pipeline.syncOperations.fireChannelRead(NIOAny(clientFrame(.text, "late")))
        fixture.channel.pipeline.syncOperations.fireChannelRead(NIOAny(clientFrame(.ping, "late")))
        fixture.channel.pipeline.syncOperations.fireChannelReadComplete()
        XCTAssertEqual(fixture.delegate.messages, [])
        XCTAssertEqual(try readFrames(fixture.channel).map(\.opcode), [.connectionClose])
        XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
    }

    // MARK: Close handshake, server-initiated

    func testInitiateClose_sendsCloseFrameAndWaitsForPeer() throws {
        let fixture = try makeFixture()
        fixture.handler.initiateClose(code: .goingAway, reason: "restart")
        let frames = try readFrames(fixture.channel)
        XCTAssertEqual(frames.map(\.opcode), [.connectionClose])
        XCTAssertEqual(frames.first.flatMap(closeCode(of:)), 1001)
        XCTAssertEqual(frames.first.map { String(buffer: $0.data.getSlice(at: 2, length: 7)!) }, "restart")
        XCTAssertTrue(fixture.channel.isActive, "waits for the peer's close")
        XCTAssertEqual(fixture.delegate.closings, [.init(code: .goingAway, initiatedByPeer: false)])
        XCTAssertEqual(fixture.delegate.framesWritten, [9])

        try fixture.channel.writeInbound(closeFrame(code: 1001))
        XCTAssertEqual(try readFrames(fixture.channel), [], "no second close frame")
        XCTAssertFalse(fixture.channel.isActive)
        XCTAssertEqual(fixture.delegate.closings.count, 1, "reported once")
        XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
    }

    func testInitiateClose_whenCalledTwice_sendsOneCloseFrame() throws {
        let fixture = try makeFixture()
        fixture.handler.initiateClose(code: .goingAway, reason: "")
        fixture.handler.initiateClose(code: .normalClosure, reason: "")
        XCTAssertEqual(try readFrames(fixture.channel).map(\.opcode), [.connectionClose])
        XCTAssertEqual(fixture.delegate.closings.count, 1)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testInitiateClose_whenPeerNeverAnswers_closesAfterTimeout() throws {
        let fixture = try makeFixture()
        fixture.handler.initiateClose(code: .normalClosure, reason: "")
        fixture.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1999))
        XCTAssertTrue(fixture.channel.isActive)
        fixture.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(fixture.channel.isActive)
        XCTAssertEqual(try readFrames(fixture.channel).map(\.opcode), [.connectionClose])
        XCTAssertNoThrow(try fixture.channel.finish(acceptAlreadyClosed: true))
    }

    func testDataFrames_afterInitiateClose_areIgnored() throws {
        let fixture = try makeFixture()
        try fixture.channel.writeInbound(clientFrame(.text, "partial", fin: false))
        fixture.handler.initiateClose(code: .goingAway, reason: "")
        try fixture.channel.writeInbound(clientFrame(.continuation, "rest", fin: true))
        try fixture.channel.writeInbound(clientFrame(.text, "late"))
        try fixture.channel.writeInbound(clientFrame(.ping, "late"))
        XCTAssertEqual(fixture.delegate.messages, [])
        XCTAssertEqual(try readFrames(fixture.channel).map(\.opcode), [.connectionClose], "no pong after close")
        XCTAssertTrue(fixture.channel.isActive)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testInitiateClose_fromMessageCallback_stopsDeliveryOfRestOfBatch() throws {
        let fixture = try makeFixture()
        fixture.delegate.onMessage = { [handler = fixture.handler] _ in
            handler.initiateClose(code: .policyViolation, reason: "one is enough")
        }
        fixture.channel.pipeline.syncOperations.fireChannelRead(NIOAny(clientFrame(.text, "one")))
        fixture.channel.pipeline.syncOperations.fireChannelRead(NIOAny(clientFrame(.text, "two")))
        fixture.channel.pipeline.syncOperations.fireChannelReadComplete()
        XCTAssertEqual(fixture.delegate.messages.map(\.text), ["one"])
        XCTAssertEqual(try readFrames(fixture.channel).compactMap(closeCode(of:)), [1008])
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testQuiesceEvent_startsCloseWithGoingAway() throws {
        let fixture = try makeFixture()
        fixture.channel.pipeline.syncOperations.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        XCTAssertEqual(try readFrames(fixture.channel).compactMap(closeCode(of:)), [1001])
        XCTAssertEqual(fixture.delegate.closings, [.init(code: .goingAway, initiatedByPeer: false)])
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    // MARK: Decoder errors

    func testDecoderError_whenFrameTooLarge_failsWith1009() throws {
        let fixture = try makeFixture()
        fixture.channel.pipeline.syncOperations.fireErrorCaught(NIOWebSocketError.invalidFrameLength)
        XCTAssertThrowsError(try fixture.channel.throwIfErrorCaught(), "the error is forwarded")
        try assertFailed(fixture, code: 1009)
    }

    func testDecoderError_whenControlFrameFragmentedOrTooLong_failsWith1002() throws {
        for error in [NIOWebSocketError.fragmentedControlFrame, .multiByteControlFrameLength] {
            let fixture = try makeFixture()
            fixture.channel.pipeline.syncOperations.fireErrorCaught(error)
            XCTAssertThrowsError(try fixture.channel.throwIfErrorCaught())
            try assertFailed(fixture, code: 1002)
        }
    }

    func testDecoderError_fromRealDecoderOnOversizedPing_failsWith1002() throws {
        // Bytes through NIO's decoder, as on a socket: a masked ping claiming 126 bytes of payload.
        let fixture = try makeFixture()
        try fixture.channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)),
            position: .before(fixture.handler)
        )
        var bytes = ByteBuffer(bytes: [0x89, 0x80 | 126, 0x00, 126, 1, 2, 3, 4])
        bytes.writeRepeatingByte(0, count: 126)
        XCTAssertThrowsError(try fixture.channel.writeInbound(bytes))
        try assertFailed(fixture, code: 1002)
    }

    func testRealDecoder_whenRFCExampleMaskedHello_deliversHello() throws {
        let fixture = try makeFixture()
        try fixture.channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)),
            position: .before(fixture.handler)
        )
        // RFC 6455 5.7: a single-frame masked text message containing "Hello".
        try fixture.channel.writeInbound(
            ByteBuffer(bytes: [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        )
        XCTAssertEqual(fixture.delegate.messages.map(\.text), ["Hello"])
        XCTAssertTrue(try fixture.channel.finish().isClean)
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
        let writer = WebSocketRawWriter()
        let limits = WebSocketLimits(maxMessageSize: 100, pingInterval: .seconds(1), pongTimeout: .seconds(30))
        try channel.pipeline.syncOperations.addHandler(writer, position: .first)
        try channel.pipeline.syncOperations.addHandler(
            WebSocketFrameHandler(limits: limits, writer: writer, delegate: delegate)
        )
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

    func testDelegate_isHeldWeakly() throws {
        var delegate: RecordingDelegate? = RecordingDelegate()
        weak let weakDelegate = delegate
        let writer = WebSocketRawWriter()
        let limits = WebSocketLimits(maxMessageSize: 100, pingInterval: nil, pongTimeout: .seconds(1))
        let handler = WebSocketFrameHandler(limits: limits, writer: writer, delegate: delegate!)
        delegate = nil
        XCTAssertNil(weakDelegate)
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(writer, position: .first)
        try channel.pipeline.syncOperations.addHandler(handler)
        XCTAssertNoThrow(try channel.writeInbound(clientFrame(.text, "nobody listens")))
        XCTAssertTrue(try channel.finish().isClean)
    }
}

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

// MARK: - Codec

final class WebSocketFrameCodecTests: XCTestCase {
    private let allocator = ByteBufferAllocator()

    private func header(ofEncodedLength length: Int) -> [UInt8] {
        let payload = ByteBuffer(repeating: 0x61, count: length)
        let encoded = WebSocketFrameCodec.encode(opcode: .binary, payload: payload, allocator: self.allocator)
        let headerLength = encoded.readableBytes - length
        return encoded.getBytes(at: encoded.readerIndex, length: headerLength) ?? []
    }

    func testEncode_whenPayloadUpTo125Bytes_usesOneByteLength() {
        XCTAssertEqual(self.header(ofEncodedLength: 0), [0x82, 0])
        XCTAssertEqual(self.header(ofEncodedLength: 125), [0x82, 125])
    }

    func testEncode_whenPayload126To65535Bytes_usesTwoByteLength() {
        XCTAssertEqual(self.header(ofEncodedLength: 126), [0x82, 126, 0x00, 0x7E])
        XCTAssertEqual(self.header(ofEncodedLength: 65535), [0x82, 126, 0xFF, 0xFF])
    }

    func testEncode_whenPayload65536BytesOrMore_usesEightByteLength() {
        XCTAssertEqual(self.header(ofEncodedLength: 65536), [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0])
    }

    func testEncode_whenFinFalse_clearsFinBitAndKeepsOpcode() {
        let encoded = WebSocketFrameCodec.encode(
            opcode: .text,
            payload: ByteBuffer(string: "x"),
            fin: false,
            allocator: self.allocator
        )
        XCTAssertEqual(Array(encoded.readableBytesView), [0x01, 0x01, 0x78])
    }

    func testEncode_atLengthBoundaries_roundTripsThroughNIODecoder() throws {
        for length in [0, 1, 125, 126, 127, 65535, 65536, 70000] {
            let payload = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            let encoded = WebSocketFrameCodec.encode(opcode: .binary, payload: payload, allocator: self.allocator)
            let decoder = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
            try decoder.writeInbound(encoded)
            let frame = try XCTUnwrap(try decoder.readInbound(as: WebSocketFrame.self), "length \(length)")
            XCTAssertEqual(frame.opcode, .binary)
            XCTAssertTrue(frame.fin)
            XCTAssertNil(frame.maskKey)
            XCTAssertEqual(frame.data, payload, "length \(length)")
            XCTAssertTrue(try decoder.finish().isClean)
        }
    }

    func testEncodeClose_writesCodeThenReason() {
        let encoded = WebSocketFrameCodec.encodeClose(code: .goingAway, reason: "bye", allocator: self.allocator)
        XCTAssertEqual(Array(encoded.readableBytesView), [0x88, 5, 0x03, 0xE9, 0x62, 0x79, 0x65])
    }

    func testEncodeClose_whenReasonTooLong_truncatesOnCharacterBoundaryWithin125Bytes() {
        // 62 two-byte characters: a cut at 123 bytes would split the 62nd.
        let reason = String(repeating: "é", count: 62) + "abc"
        let encoded = WebSocketFrameCodec.encodeClose(code: .normalClosure, reason: reason, allocator: self.allocator)
        let payloadLength = Int(encoded.getInteger(at: 1, as: UInt8.self) ?? 0)
        XCTAssertLessThanOrEqual(payloadLength, 125)
        XCTAssertEqual(payloadLength, 2 + 122)
        let reasonBytes = encoded.getSlice(at: 4, length: payloadLength - 2)!
        XCTAssertTrue(UTF8Validator.isValid(reasonBytes))
        XCTAssertEqual(String(buffer: reasonBytes), String(repeating: "é", count: 61))
    }

    func testEncodeClose_whenCodeMayNotBeSent_sendsEmptyCloseFrame() {
        for code in [1005, 1006, 1015] {
            let encoded = WebSocketFrameCodec.encodeClose(
                code: WebSocketErrorCode(codeNumber: code),
                reason: "x",
                allocator: self.allocator
            )
            XCTAssertEqual(Array(encoded.readableBytesView), [0x88, 0], "code \(code)")
        }
    }

    func testIsValidReceivedCloseCode_acceptsOnlyRFCRanges() {
        let valid = Set((0...UInt16.max).filter(WebSocketFrameCodec.isValidReceivedCloseCode))
        let expected = Set<UInt16>(Array(1000...1003) + Array(1007...1014) + Array(3000...4999))
        XCTAssertEqual(valid, expected)
    }

    func testUnmask_matchesNIOForAllLengthsAndOffsets() {
        let key: WebSocketMaskingKey = [0xA1, 0xB2, 0xC3, 0xD4]
        for length in 0..<40 {
            for offset in 0...min(length, 9) {
                let original = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) })
                var expected = original
                var tail = expected.getSlice(at: offset, length: length - offset)!
                tail.webSocketUnmask(key)
                expected.setBuffer(tail, at: offset)

                var actual = original
                WebSocketFrameCodec.unmask(&actual, key: key, fromReadableOffset: offset)
                XCTAssertEqual(actual, expected, "length \(length), offset \(offset)")
            }
        }
    }
}

// MARK: - State machine (no I/O)

final class WebSocketFrameHandlerStateMachineTests: XCTestCase {
    func testReceive_afterPeerClose_ignoresEverything() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        XCTAssertEqual(
            machine.receive(closeFrame(code: 1000)),
            .answerClose(peerCode: .normalClosure, replyCode: .normalClosure)
        )
        XCTAssertEqual(machine.state, .closed)
        XCTAssertEqual(machine.receive(clientFrame(.text, "late")), .none)
        XCTAssertEqual(machine.receive(clientFrame(.ping, "late")), .none)
        XCTAssertEqual(machine.receive(clientFrame(.text, Array("bad".utf8), masked: false)), .none)
        XCTAssertEqual(machine.receive(closeFrame(code: 1000)), .none)
    }

    func testReceive_closeInMiddleOfFragmentedMessage_thenRest_answersCloseAndDropsRest() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        XCTAssertEqual(machine.receive(clientFrame(.text, "frag", fin: false)), .none)
        XCTAssertEqual(
            machine.receive(closeFrame(code: 1000)),
            .answerClose(peerCode: .normalClosure, replyCode: .normalClosure)
        )
        XCTAssertEqual(machine.receive(clientFrame(.continuation, "ment", fin: true)), .none)
    }

    func testReceive_whileCloseSent_onlyPeerCloseMatters() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        XCTAssertTrue(machine.startClose())
        XCTAssertFalse(machine.startClose())
        XCTAssertEqual(machine.receive(clientFrame(.text, "late")), .none)
        XCTAssertEqual(machine.receive(clientFrame(.ping, "late")), .none)
        XCTAssertEqual(machine.receive(clientFrame(.continuation, "orphan")), .none)
        XCTAssertEqual(machine.receive(clientFrame(.connectionClose)), .closeConnection)
        XCTAssertEqual(machine.state, .closed)
    }

    func testReceiveDecoderError_whileCloseSent_closesWithoutSecondCloseFrame() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        XCTAssertTrue(machine.startClose())
        XCTAssertEqual(machine.receiveDecoderError(.invalidFrameLength), .closeConnection)
        XCTAssertEqual(machine.receiveDecoderError(.invalidFrameLength), .none)
    }

    func testReceive_afterFailure_ignoresEverything() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        XCTAssertEqual(
            machine.receive(clientFrame(.continuation, "orphan")),
            .fail(.protocolError, reason: "continuation frame without a message")
        )
        XCTAssertEqual(machine.receive(clientFrame(.text, "ok")), .none)
        XCTAssertFalse(machine.startClose())
    }
}
