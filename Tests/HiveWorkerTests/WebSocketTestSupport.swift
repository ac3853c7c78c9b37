import NIOCore
import NIOEmbedded
import NIOWebSocket
import XCTest

@testable import HiveWorker

// MARK: - Test support

final class RecordingDelegate: WebSocketFrameHandlerDelegate {
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

struct Fixture {
    let channel: EmbeddedChannel
    let handler: WebSocketFrameHandler
    /// The handler lets go of its delegate when it leaves the pipeline: the fixture keeps it for the assertions.
    let delegate: RecordingDelegate
}

let testMaskKey: WebSocketMaskingKey = [0x12, 0x34, 0x56, 0x78]

/// A handler connected to an embedded channel. Tests write `WebSocketFrame`s inbound, which `ClientFrameSerializer`
/// turns into bytes as a client would send them; with `rawBytes` they write the bytes themselves.
func makeFixture(
    maxMessageSize: Int = 1 << 20,
    pingInterval: TimeAmount? = nil,
    pongTimeout: TimeAmount = .seconds(3),
    rawBytes: Bool = false
) throws -> Fixture {
    let channel = EmbeddedChannel()
    let delegate = RecordingDelegate()
    let limits = WebSocketLimits(maxMessageSize: maxMessageSize, pingInterval: pingInterval, pongTimeout: pongTimeout)
    let handler = WebSocketFrameHandler(limits: limits, delegate: delegate)
    if !rawBytes {
        try channel.pipeline.syncOperations.addHandler(ClientFrameSerializer())
    }
    try channel.pipeline.syncOperations.addHandler(handler)
    startKeepAliveSweep(on: channel, limits: limits, handler: handler)
    try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9001)).wait()
    return Fixture(channel: channel, handler: handler, delegate: delegate)
}

/// Ticks the handler's keep-alive as the worker's sweep does, from time 0 of the embedded loop.
func startKeepAliveSweep(on channel: EmbeddedChannel, limits: WebSocketLimits, handler: WebSocketFrameHandler) {
    guard let period = KeepAliveSweep.period(for: limits) else { return }
    KeepAliveSweep(eventLoop: channel.embeddedEventLoop) { [weak handler] now in handler?.keepAliveTick(now: now) }
        .start(period: period)
}

/// Writes each inbound `WebSocketFrame` as the bytes a client sends (RFC 6455 5.2), one read per frame. The payload
/// is taken as it is: `clientFrame` has already masked it.
final class ClientFrameSerializer: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(Self.wrapInboundOut(serialize(Self.unwrapInboundIn(data))))
    }
}

func serialize(_ frame: WebSocketFrame) -> ByteBuffer {
    var bytes = ByteBuffer()
    var first = UInt8(webSocketOpcode: frame.opcode)
    if frame.fin { first |= 0x80 }
    if frame.rsv1 { first |= 0x40 }
    if frame.rsv2 { first |= 0x20 }
    if frame.rsv3 { first |= 0x10 }
    bytes.writeInteger(first)
    let mask: UInt8 = frame.maskKey == nil ? 0 : 0x80
    let length = frame.data.readableBytes
    if length <= 125 {
        bytes.writeInteger(mask | UInt8(length))
    } else if length <= Int(UInt16.max) {
        bytes.writeInteger(mask | 126)
        bytes.writeInteger(UInt16(length))
    } else {
        bytes.writeInteger(mask | 127)
        bytes.writeInteger(UInt64(length))
    }
    if let key = frame.maskKey {
        bytes.writeBytes(key)
    }
    bytes.writeImmutableBuffer(frame.data)
    return bytes
}

/// A frame as a browser sends it: masked unless told otherwise.
func clientFrame(
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

func clientFrame(_ opcode: WebSocketOpcode, _ text: String, fin: Bool = true) -> WebSocketFrame {
    clientFrame(opcode, Array(text.utf8), fin: fin)
}

func closeFrame(code: UInt16, reason: [UInt8] = []) -> WebSocketFrame {
    var payload = [UInt8(code >> 8), UInt8(code & 0xFF)]
    payload.append(contentsOf: reason)
    return clientFrame(.connectionClose, payload)
}

/// Decodes everything the server flushed with NIO's own decoder, so the codec is checked against an independent
/// parser. Server frames must never be masked.
func readFrames(
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

func closeCode(of frame: WebSocketFrame) -> UInt16? {
    frame.data.getInteger(at: frame.data.readerIndex, as: UInt16.self)
}

/// The connection was failed: one close frame with `code` was written, the channel is closed, the owner was told.
func assertFailed(
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

func assertStillOpen(_ fixture: Fixture, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertTrue(fixture.channel.isActive, "channel open", file: file, line: line)
    XCTAssertEqual(fixture.delegate.closings, [], file: file, line: line)
}

/// Deterministic generator, so a failing random input can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var value = self.state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}
