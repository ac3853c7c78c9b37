// libFuzzer target: bytes a WebSocket client sends after the upgrade, through Hive's frame parser, frame handler
// (state machine, reassembly, UTF-8 validation, close handshake, keep-alive) and frame codec.
//
// Input: [max read size][options][bytes from the client]. options bit 0-1: message size limit (125, 1000, 64 KiB,
// 1 MiB); bit 2: echo each message back, as an application would.
//
// Beyond "never crash, never trap" it checks:
// - the parser cuts the same frames (and fails at the same point) whether the bytes come in one read or in many;
// - the UTF-8 validator agrees with the standard library, at once and fed in pieces;
// - everything the server wrote is well-formed unmasked frames with at most one close frame, and that last.
import HiveFuzzSupport
import NIOCore
import NIOEmbedded
import NIOWebSocket

@testable import HiveWorker

/// Echoes messages through the handler, as an application replying from its message hook would.
final class EchoDelegate: WebSocketFrameHandlerDelegate {
    let echo: Bool
    unowned(unsafe) var handler: WebSocketFrameHandler?

    init(echo: Bool) {
        self.echo = echo
    }

    func webSocketReceived(_ message: WebSocketMessage) {
        guard self.echo, let handler = self.handler else { return }
        if message.kind == .text {
            fuzzCheck(message.text.map { Array($0.utf8) } == Array(buffer: message.data), "text message is not UTF-8")
        }
        let frame = WebSocketFrameCodec.encode(
            opcode: message.kind == .text ? .text : .binary, payload: message.data, allocator: ByteBufferAllocator()
        )
        handler.write(frame, promise: nil)
    }

    func webSocketFrameRead(bytes: Int) {}
    func webSocketFrameWritten(bytes: Int) {}
    func webSocketClosing(code: WebSocketErrorCode, initiatedByPeer: Bool) {}
}

let messageLimits = [125, 1000, 1 << 16, 1 << 20]

/// Every frame the parser yields from `reads`, then the error that stopped it (if any).
func parseAll(_ reads: [ByteBuffer], maxFrameSize: Int) -> (frames: [WebSocketFrame], error: NIOWebSocketError?) {
    var parser = WebSocketFrameParser(maxFrameSize: maxFrameSize)
    var frames: [WebSocketFrame] = []
    for read in reads {
        parser.append(read)
        do {
            while let frame = try parser.next() { frames.append(frame) }
        } catch {
            return (frames, error)
        }
    }
    return (frames, nil)
}

func checkParserSplitInvariance(_ input: FuzzInput, maxFrameSize: Int) {
    let whole = parseAll([ByteBuffer(bytes: input.payload)], maxFrameSize: maxFrameSize)
    let split = parseAll(input.reads(), maxFrameSize: maxFrameSize)
    fuzzCheck(whole.frames == split.frames, "frames differ when the bytes arrive in several reads")
    fuzzCheck(whole.error == split.error, "parse error differs when the bytes arrive in several reads")
}

func checkUTF8Validator(_ input: FuzzInput) {
    let bytes = Array(input.payload)
    let expected = String(validating: bytes, as: UTF8.self) != nil
    fuzzCheck(UTF8Validator.isValid(ByteBuffer(bytes: bytes)) == expected, "UTF8Validator disagrees with the stdlib")
    var validator = UTF8Validator()
    var valid = true
    for read in input.reads() where valid {
        valid = validator.feed(read)
    }
    fuzzCheck((valid && validator.isAtBoundary) == expected, "UTF8Validator fed in pieces disagrees with the stdlib")
}

/// Runs the bytes through a frame handler on an embedded channel, then lets its timers run out.
func runHandler(_ input: FuzzInput, maxMessageSize: Int, echo: Bool) {
    let channel = EmbeddedChannel()
    let delegate = EchoDelegate(echo: echo)
    let limits = WebSocketLimits(maxMessageSize: maxMessageSize, pingInterval: .seconds(1), pongTimeout: .seconds(1))
    let handler = WebSocketFrameHandler(limits: limits, delegate: delegate)
    delegate.handler = handler
    try! channel.pipeline.syncOperations.addHandler(handler)
    let sweep = KeepAliveSweep(eventLoop: channel.embeddedEventLoop) { [weak handler] now in handler?.keepAliveTick(now: now) }
    sweep.start(period: KeepAliveSweep.period(for: limits)!)
    try! channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9001)).wait()

    var written = ByteBuffer()
    for read in input.reads() where channel.isActive {
        // The handler consumes every byte and reports protocol errors with a close frame, never as an error.
        try! channel.writeInbound(read)
        while let out = try! channel.readOutbound(as: ByteBuffer.self) { written.writeImmutableBuffer(out) }
    }
    channel.embeddedEventLoop.advanceTime(by: .seconds(5))
    while let out = try! channel.readOutbound(as: ByteBuffer.self) { written.writeImmutableBuffer(out) }
    sweep.stop()
    _ = try? channel.finish(acceptAlreadyClosed: true)

    let server = parseAll([written], maxFrameSize: Int.max)
    fuzzCheck(server.error == nil, "the server wrote a malformed frame")
    fuzzCheck(server.frames.allSatisfy { $0.maskKey == nil }, "the server wrote a masked frame")
    let closes = server.frames.filter { $0.opcode == .connectionClose }
    fuzzCheck(closes.count <= 1, "the server wrote \(closes.count) close frames")
    fuzzCheck(closes.isEmpty || server.frames.last?.opcode == .connectionClose, "the server wrote after its close")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let input = FuzzInput(data, size, headerBytes: 1) else { return 0 }
    let maxMessageSize = messageLimits[Int(input.options[0] & 0x03)]
    checkParserSplitInvariance(input, maxFrameSize: maxMessageSize)
    checkUTF8Validator(input)
    runHandler(input, maxMessageSize: maxMessageSize, echo: input.options[0] & 0x04 != 0)
    return 0
}

runFuzzer(fuzzFrames)
