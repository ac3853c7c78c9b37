import NIOCore
import NIOEmbedded
import NIOWebSocket
import XCTest

@testable import HiveWorker

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
