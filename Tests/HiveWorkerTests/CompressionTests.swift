import NIOCore
import NIOEmbedded
import NIOWebSocket
import XCTest

@testable import HiveWorker

/// permessage-deflate on the wire: inflating client messages within --max-message-size, and compressing
/// server frames once for every session (the shared compressor).
final class CompressionTests: XCTestCase {
    /// What a client sends: `bytes` deflated without context takeover, the 00 00 FF FF tail cut off.
    private func deflated(_ bytes: [UInt8], windowBits: Int = 15) -> [UInt8] {
        let deflater = MessageDeflater(windowBits: windowBits)!
        var out = ByteBuffer()
        XCTAssertTrue(bytes.withUnsafeBytes { deflater.compress($0, appendingTo: &out) })
        return Array(buffer: out)
    }

    private func inflated(_ bytes: [UInt8], limit: Int = 1 << 24) throws -> [UInt8] {
        let result = MessageInflater()!.inflate(ByteBuffer(bytes: bytes), limit: limit, allocator: ByteBufferAllocator())
        return Array(buffer: try result.get())
    }

    // MARK: Inflater

    func testInflate_roundTrip_ofDeflatedMessage() throws {
        let text = Array(String(repeating: "{\"price\": 42, \"symbol\": \"HIVE\"} ", count: 100).utf8)
        let compressed = deflated(text)
        XCTAssertLessThan(compressed.count, text.count / 5)
        XCTAssertEqual(try inflated(compressed), text)
    }

    func testInflate_rfc7692Example_helloInOneBlock() throws {
        // RFC 7692 7.2.3.1: "Hello" in one compressed block (this one with BFINAL set, which a client may send).
        XCTAssertEqual(try inflated([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]), Array("Hello".utf8))
        // Uncompressed (stored) block, 7.2.3.3.
        XCTAssertEqual(try inflated([0x00, 0x05, 0x00, 0xFA, 0xFF, 0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x00]),
                       Array("Hello".utf8))
    }

    func testInflate_zipBomb_stopsAtTheLimit() throws {
        // 4 MiB of zeros deflate to about 4 KB.
        let bomb = deflated([UInt8](repeating: 0, count: 4 << 20))
        XCTAssertLessThan(bomb.count, 8 * 1024)
        let inflater = MessageInflater()!
        let result = inflater.inflate(ByteBuffer(bytes: bomb), limit: 1 << 20, allocator: ByteBufferAllocator())
        XCTAssertEqual(result.failure, .tooLarge)
        // Exactly at the limit is fine, and the inflater is usable again after a failure.
        let exact = deflated([UInt8](repeating: 7, count: 1 << 20))
        let ok = inflater.inflate(ByteBuffer(bytes: exact), limit: 1 << 20, allocator: ByteBufferAllocator())
        XCTAssertEqual(try ok.get().readableBytes, 1 << 20)
    }

    func testInflate_garbage_isCorrupt() {
        let result = MessageInflater()!.inflate(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x12]), limit: 100,
                                                allocator: ByteBufferAllocator())
        XCTAssertEqual(result.failure, .corrupt)
    }

    // MARK: State machine

    func testStateMachine_withoutNegotiation_rsv1StillFails() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 1 << 20)
        XCTAssertEqual(machine.receive(clientFrame(.text, deflated(Array("hi".utf8)), rsv1: true)),
                       .fail(.protocolError, reason: "reserved bits set"))
    }

    func testStateMachine_compressedFragmentedText_isInflatedAndDelivered() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 1 << 20, inflater: MessageInflater()!)
        let text = String(repeating: "héllo wörld ", count: 50)
        let compressed = deflated(Array(text.utf8))
        let cut = compressed.count / 2
        XCTAssertEqual(machine.receive(clientFrame(.text, Array(compressed[..<cut]), fin: false, rsv1: true)), .none)
        XCTAssertEqual(machine.receive(clientFrame(.continuation, Array(compressed[cut...]))),
                       .deliver(WebSocketMessage(kind: .text, data: ByteBuffer(string: text))))
        // Uncompressed messages still go through on the same connection.
        XCTAssertEqual(machine.receive(clientFrame(.binary, [1, 2, 3])),
                       .deliver(WebSocketMessage(kind: .binary, data: ByteBuffer(bytes: [1, 2, 3]))))
    }

    func testStateMachine_rsv1OnContinuationOrControlFrame_fails() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 1 << 20, inflater: MessageInflater()!)
        XCTAssertEqual(machine.receive(clientFrame(.text, Array("a".utf8), fin: false)), .none)
        XCTAssertEqual(machine.receive(clientFrame(.continuation, Array("b".utf8), rsv1: true)),
                       .fail(.protocolError, reason: "reserved bits set"))
        var other = WebSocketFrameHandler.StateMachine(maxMessageSize: 1 << 20, inflater: MessageInflater()!)
        XCTAssertEqual(other.receive(clientFrame(.ping, [], rsv1: true)), .fail(.protocolError, reason: "reserved bits set"))
        var third = WebSocketFrameHandler.StateMachine(maxMessageSize: 1 << 20, inflater: MessageInflater()!)
        XCTAssertEqual(third.receive(clientFrame(.text, [], rsv2: true)), .fail(.protocolError, reason: "reserved bits set"))
    }

    func testStateMachine_compressedInvalidUTF8_fails1007() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 1 << 20, inflater: MessageInflater()!)
        XCTAssertEqual(machine.receive(clientFrame(.text, deflated([0x68, 0xC0, 0xAF]), rsv1: true)),
                       .fail(.dataInconsistentWithMessage, reason: "invalid UTF-8"))
    }

    func testFrameHandler_zipBomb_closes1009() throws {
        let channel = EmbeddedChannel()
        let delegate = RecordingDelegate()
        let limits = WebSocketLimits(maxMessageSize: 1 << 20, pingInterval: nil, pongTimeout: .seconds(3))
        let handler = WebSocketFrameHandler(limits: limits, delegate: delegate, inflater: MessageInflater()!)
        try channel.pipeline.syncOperations.addHandler(ClientFrameSerializer())
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9001)).wait()
        let fixture = Fixture(channel: channel, handler: handler, delegate: delegate)

        let bomb = deflated([UInt8](repeating: 0x20, count: 4 << 20))
        XCTAssertLessThan(bomb.count, 8 * 1024)
        try channel.writeInbound(clientFrame(.text, bomb, rsv1: true))
        XCTAssertEqual(delegate.messages, [])
        try assertFailed(fixture, code: 1009)
    }

    // MARK: Shared compressor

    func testBroadcastCompressor_compressesLongMessagesOnce_andLeavesShortOnes() throws {
        let compressor = BroadcastCompressor(minSize: 256)
        let long = String(repeating: "{\"n\": 12345} ", count: 100)
        let frames = HiveServer.encodeFrames([.text("short"), .text(long), .binary([UInt8](repeating: 9, count: 1000))])
        let compressed = compressor.compress(frames, windowBits: 15)
        XCTAssertLessThan(compressed.readableBytes, frames.readableBytes / 3)

        let decoded = try decodeServerFrames(compressed)
        XCTAssertEqual(decoded.map(\.opcode), [.text, .text, .binary])
        XCTAssertEqual(decoded.map(\.rsv1), [false, true, true])
        XCTAssertEqual(decoded.map(\.fin), [true, true, true])
        XCTAssertEqual(String(buffer: decoded[0].data), "short")
        XCTAssertEqual(try inflated(Array(buffer: decoded[1].data)), Array(long.utf8))
        XCTAssertEqual(try inflated(Array(buffer: decoded[2].data)), [UInt8](repeating: 9, count: 1000))
    }

    func testBroadcastCompressor_nothingToCompress_returnsTheSameBuffer() {
        let compressor = BroadcastCompressor(minSize: 256)
        let frames = HiveServer.encodeFrames([.text("short"), .text("also short")])
        XCTAssertEqual(compressor.compress(frames, windowBits: 15), frames)
        // Incompressible: sent as it is (RSV1 clear) rather than larger.
        var random = SystemRandomNumberGenerator()
        let noise = (0..<2000).map { _ in UInt8.random(in: 0...255, using: &random) }
        let noisy = HiveServer.encodeFrames([.binary(noise)])
        XCTAssertEqual(compressor.compress(noisy, windowBits: 15), noisy)
    }

    func testCompressedFrames_compressOncePerWindowSize() throws {
        let frames = HiveServer.encodeFrames([.text(String(repeating: "abc", count: 200))])
        var shared = CompressedFrames(plain: frames, compressor: BroadcastCompressor(minSize: 0))
        let first = shared.frames(windowBits: 15)
        let second = shared.frames(windowBits: 15)
        // The same storage: written to every session without a copy or a second deflate.
        first.withUnsafeReadableBytes { a in
            second.withUnsafeReadableBytes { b in XCTAssertEqual(a.baseAddress, b.baseAddress) }
        }
        let small = shared.frames(windowBits: 9)
        XCTAssertEqual(try inflated(Array(buffer: try decodeServerFrames(small)[0].data)),
                       Array(String(repeating: "abc", count: 200).utf8))
        let again = shared.frames(windowBits: 15)
        first.withUnsafeReadableBytes { a in
            again.withUnsafeReadableBytes { b in XCTAssertEqual(a.baseAddress, b.baseAddress) }
        }
    }

    private func decodeServerFrames(_ buffer: ByteBuffer) throws -> [WebSocketFrame] {
        let decoder = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 24)))
        try decoder.writeInbound(buffer)
        var frames: [WebSocketFrame] = []
        while let frame = try decoder.readInbound(as: WebSocketFrame.self) { frames.append(frame) }
        return frames
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
