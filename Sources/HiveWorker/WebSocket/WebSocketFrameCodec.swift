import HiveIPC
import NIOCore
import NIOWebSocket

/// Server-side frame encoding (RFC 6455 section 5.2) and the byte-level helpers the frame handler needs.
///
/// Frames from a server are never masked. The whole frame goes into one buffer so that a broadcast can encode a
/// message once per worker and write the same (reference-counted, never copied) buffer to every connection.
enum WebSocketFrameCodec {
    /// Largest payload of a control frame (RFC 6455 5.5).
    static let maxControlPayload = 125

    /// Encodes one unmasked frame: header and payload in a single buffer.
    ///
    /// - Parameters:
    ///   - opcode: The frame's opcode.
    ///   - payload: The readable bytes are the payload; the buffer itself is not consumed.
    ///   - fin: False for every fragment of a message except the last.
    ///   - allocator: Allocates the returned buffer.
    static func encode(
        opcode: WebSocketOpcode,
        payload: ByteBuffer,
        fin: Bool = true,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: self.headerLength(payload.readableBytes) + payload.readableBytes)
        self.write(opcode: opcode, payload: payload, fin: fin, to: &buffer)
        return buffer
    }

    /// Appends one unmasked frame to `buffer`, allocating it on the first call: several small frames (the pongs of
    /// one read batch) become one buffer and one write.
    static func append(
        opcode: WebSocketOpcode,
        payload: ByteBuffer,
        to buffer: inout ByteBuffer?,
        allocator: ByteBufferAllocator
    ) {
        if buffer == nil {
            buffer = allocator.buffer(capacity: self.headerLength(payload.readableBytes) + payload.readableBytes)
        }
        self.write(opcode: opcode, payload: payload, fin: true, to: &buffer!)
    }

    private static func headerLength(_ length: Int) -> Int {
        length <= 125 ? 2 : length <= Int(UInt16.max) ? 4 : 10
    }

    private static func write(opcode: WebSocketOpcode, payload: ByteBuffer, fin: Bool, to buffer: inout ByteBuffer) {
        writeHeader(opcode: opcode, length: payload.readableBytes, fin: fin, to: &buffer)
        buffer.writeImmutableBuffer(payload)
    }

    /// The header of an unmasked frame whose `length` payload bytes the caller writes next, straight from where
    /// they are (a broadcast's text or bytes), with no intermediate buffer.
    static func writeHeader(opcode: WebSocketOpcode, length: Int, fin: Bool = true, to buffer: inout ByteBuffer) {
        buffer.writeInteger((fin ? 0x80 : 0x00) | UInt8(webSocketOpcode: opcode))
        writeLength(length, to: &buffer)
    }

    /// The second byte and the extended length of an unmasked frame's header. The mask bit (0x80 of the second
    /// byte) stays clear: servers must not mask (RFC 6455 5.1).
    static func writeLength(_ length: Int, to buffer: inout ByteBuffer) {
        if length <= 125 {
            buffer.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(length))
        } else {
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(length))
        }
    }

    /// Encodes a close frame carrying `code` and `reason`.
    ///
    /// The reason is cut to fit the 125-byte control-frame limit, on a character boundary so that it stays valid
    /// UTF-8 (the peer must fail the connection otherwise). Codes that RFC 6455 7.4.1 reserves for reporting and
    /// forbids on the wire (1005, 1006, 1015), and anything else `isValidReceivedCloseCode` rejects, are sent as a
    /// close frame without a body, which the peer reads as 1005 "no status": better than making the peer fail us.
    static func encodeClose(code: WebSocketErrorCode, reason: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        let number = UInt16(webSocketErrorCode: code)
        var payload = allocator.buffer(capacity: self.maxControlPayload)
        if self.isValidReceivedCloseCode(number) {
            payload.writeInteger(number)
            let utf8 = reason.utf8
            let maxReason = self.maxControlPayload - 2
            if utf8.count <= maxReason {
                payload.writeString(reason)
            } else {
                var cut = maxReason
                // Back up over continuation bytes (10xxxxxx) so the cut falls before a lead byte.
                while cut > 0 && utf8[utf8.index(utf8.startIndex, offsetBy: cut)] & 0xC0 == 0x80 {
                    cut -= 1
                }
                payload.writeBytes(utf8.prefix(cut))
            }
        }
        return self.encode(opcode: .connectionClose, payload: payload, allocator: allocator)
    }

    /// Valid close codes a peer may send (RFC 6455 7.4: 1000-1003, 1007-1014, 3000-4999).
    ///
    /// 1012-1014 are registered with IANA after the RFC; 1004 is reserved, 1005, 1006 and 1015 must never be sent,
    /// 1016-2999 are reserved for future RFCs and 5000+ is outside the range (Autobahn 7.9.*, 7.13.*).
    /// The same set as the codes a server may send (`CloseCode`, which the CLI and the master check too).
    static func isValidReceivedCloseCode(_ code: UInt16) -> Bool {
        CloseCode.serverMaySend(code)
    }

    /// XORs `bytes` with the masking key, as if they started `keyOffset` bytes into a masked payload.
    ///
    /// Eight bytes at a time: NIO's `webSocketUnmask` goes byte by byte with a modulo, which costs tens of
    /// milliseconds per 16 MiB message (Autobahn 9.*) on a 2-core machine shared with the load generator.
    static func unmask(_ bytes: UnsafeMutableRawBufferPointer, key: WebSocketMaskingKey, keyOffset: Int) {
        // Built in memory order, so the same pattern works on either endianness. 8 is a multiple of the key's
        // length, so the pattern's phase is the same for every word.
        var pattern: UInt64 = 0
        withUnsafeMutableBytes(of: &pattern) { patternBytes in
            for index in 0..<8 {
                patternBytes[index] = key[(index + keyOffset) & 3]
            }
        }
        var index = 0
        let count = bytes.count
        while index &+ 8 <= count {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            bytes.storeBytes(of: word ^ pattern, toByteOffset: index, as: UInt64.self)
            index &+= 8
        }
        while index < count {
            bytes[index] ^= key[(index + keyOffset) & 3]
            index &+= 1
        }
    }

    /// Unmasks the readable bytes of `buffer` from `offset` (relative to the reader index) to the end. Those bytes
    /// must be one frame's whole masked payload, so its first byte is XORed with the key's first byte: this is how a
    /// fragment appended to a reassembly buffer is unmasked in place, without a second copy.
    static func unmask(_ buffer: inout ByteBuffer, key: WebSocketMaskingKey, fromReadableOffset offset: Int = 0) {
        buffer.withUnsafeMutableReadableBytes { readable in
            guard offset < readable.count else {
                return
            }
            self.unmask(UnsafeMutableRawBufferPointer(rebasing: readable[offset...]), key: key, keyOffset: 0)
        }
    }
}
