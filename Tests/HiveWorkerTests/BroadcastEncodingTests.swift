import NIOCore
import NIOWebSocket
import XCTest

@testable import HiveWorker

/// A broadcast writes its frames straight into one buffer: byte for byte what the codec encodes one by one.
final class BroadcastEncodingTests: XCTestCase {
    func testEncodeFrames_equalsTheCodecsFrames_atEveryLengthEncoding() {
        for length in [0, 1, 125, 126, 65_535, 65_536, 70_000] {
            let text = String(repeating: "é", count: length / 2) + (length % 2 == 1 ? "a" : "")
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let frames = HiveServer.encodeFrames([.text(text), .binary(bytes)])
            var expected = WebSocketFrameCodec.encode(opcode: .text, payload: ByteBuffer(string: text), allocator: ByteBufferAllocator())
            var binary = WebSocketFrameCodec.encode(opcode: .binary, payload: ByteBuffer(bytes: bytes), allocator: ByteBufferAllocator())
            expected.writeBuffer(&binary)
            XCTAssertEqual(frames, expected, "length \(length)")

            var pushed = ByteBufferAllocator().buffer(capacity: 0)
            HiveServer.appendFrame(opcode: 0x2, payload: bytes, to: &pushed)
            XCTAssertEqual(pushed, WebSocketFrameCodec.encode(opcode: .binary, payload: ByteBuffer(bytes: bytes), allocator: ByteBufferAllocator()))
        }
    }
}
