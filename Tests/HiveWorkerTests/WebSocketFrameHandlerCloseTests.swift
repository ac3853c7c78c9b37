import NIOCore
import NIOEmbedded
import NIOWebSocket
import XCTest

@testable import HiveWorker


// The close handshake and decoder errors, split from WebSocketFrameHandlerTests.swift.
extension WebSocketFrameHandlerTests {
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

    // MARK: Frame parsing errors (bytes as they come from the socket)

    func testParser_whenFrameLongerThanMaxMessageSize_failsWith1009BeforeThePayloadArrives() throws {
        let fixture = try makeFixture(maxMessageSize: 100, rawBytes: true)
        // Only the header of a masked 101-byte binary frame: the length alone fails it.
        try fixture.channel.writeInbound(ByteBuffer(bytes: [0x82, 0x80 | 101, 1, 2, 3, 4]))
        try assertFailed(fixture, code: 1009)
    }

    func testParser_whenLengthHasTopBitSet_failsWith1009() throws {
        let fixture = try makeFixture(rawBytes: true)
        try fixture.channel.writeInbound(ByteBuffer(bytes: [0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1]))
        try assertFailed(fixture, code: 1009)
    }

    func testParser_whenControlFrameFragmented_failsWith1002() throws {
        let fixture = try makeFixture(rawBytes: true)
        try fixture.channel.writeInbound(ByteBuffer(bytes: [0x09, 0x80, 1, 2, 3, 4]))  // ping without FIN
        try assertFailed(fixture, code: 1002)
    }

    func testParser_whenPingClaims126Bytes_failsWith1002() throws {
        let fixture = try makeFixture(rawBytes: true)
        var bytes = ByteBuffer(bytes: [0x89, 0x80 | 126, 0x00, 126, 1, 2, 3, 4])
        bytes.writeRepeatingByte(0, count: 126)
        try fixture.channel.writeInbound(bytes)
        try assertFailed(fixture, code: 1002)
    }

    func testParser_whenRFCExampleMaskedHello_deliversHello() throws {
        let fixture = try makeFixture(rawBytes: true)
        // RFC 6455 5.7: a single-frame masked text message containing "Hello".
        try fixture.channel.writeInbound(
            ByteBuffer(bytes: [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        )
        XCTAssertEqual(fixture.delegate.messages.map(\.text), ["Hello"])
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }

    func testParser_whenFramesArriveByteByByteAndSeveralInOneRead_deliversEachOnce() throws {
        let fixture = try makeFixture(rawBytes: true)
        var stream = ByteBuffer()
        for text in ["one", String(repeating: "x", count: 300), "three"] {
            var frame = serialize(clientFrame(.text, text))
            stream.writeBuffer(&frame)
        }
        let all = stream
        // First byte by byte, then the whole stream in one read.
        while let byte = stream.readSlice(length: 1) {
            try fixture.channel.writeInbound(byte)
        }
        try fixture.channel.writeInbound(all)
        let expected = ["one", String(repeating: "x", count: 300), "three"]
        XCTAssertEqual(fixture.delegate.messages.map(\.text), expected + expected)
        XCTAssertTrue(try fixture.channel.finish().isClean)
    }
}
