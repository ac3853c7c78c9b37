import NIOCore
import NIOWebSocket

/// Cuts the bytes a client sends into WebSocket frames (RFC 6455 5.2), inside the frame handler, so an established
/// connection needs no decoder handler (and no `ByteToMessageHandler` with its buffers) of its own.
///
/// The checks and their errors are those of NIO's `WebSocketFrameDecoder`, made as soon as a frame's length is
/// known, before its payload arrives: a frame longer than `maxFrameSize` (`.invalidFrameLength`), a fragmented
/// control frame (`.fragmentedControlFrame`) and a control frame over 125 bytes (`.multiByteControlFrameLength`).
/// After an error the parser returns nothing more: the connection is being failed.
///
/// Between reads it keeps only the bytes of an incomplete frame; an idle connection holds no buffer here.
struct WebSocketFrameParser {
    private let maxFrameSize: Int
    /// Bytes of a frame that is not complete yet (nil when every byte read so far was a whole frame).
    private var partial: ByteBuffer?
    private var failed = false

    init(maxFrameSize: Int) {
        self.maxFrameSize = maxFrameSize
    }

    /// The bytes of an incomplete frame, as read (a reload hands them to the replacement with the connection).
    var leftover: ByteBuffer? { self.failed ? nil : self.partial }

    /// A parser that continues after `leftover`, the incomplete frame another process's parser held.
    init(maxFrameSize: Int, leftover: ByteBuffer?) {
        self.maxFrameSize = maxFrameSize
        self.partial = leftover.flatMap { $0.readableBytes > 0 ? $0 : nil }
    }

    /// Capacity of the buffer holding an incomplete frame (0 when there is none), for tests.
    var bufferedCapacity: Int { self.partial?.capacity ?? 0 }

    /// Adds bytes read from the socket; call `next()` until it returns nil.
    mutating func append(_ bytes: ByteBuffer) {
        if self.partial == nil {
            self.partial = bytes
        } else {
            self.partial!.writeImmutableBuffer(bytes)
        }
    }

    /// The next complete frame, nil when more bytes are needed, or the protocol error that ends the connection.
    mutating func next() throws(NIOWebSocketError) -> WebSocketFrame? {
        guard !self.failed, var buffer = self.partial else {
            return nil
        }
        let frame: WebSocketFrame?
        do {
            frame = try Self.parse(&buffer, maxFrameSize: self.maxFrameSize)
        } catch {
            self.failed = true
            self.partial = nil
            throw error
        }
        if buffer.readableBytes == 0 {
            // Used up: let go, so the receive buffer it may share is free for NIO's next read.
            self.partial = nil
        } else {
            if frame == nil {
                // The rest is an incomplete frame, kept until more bytes come. Move it to the front (into a buffer
                // of its own if it shares NIO's receive buffer): otherwise a stream whose reads always end inside
                // a frame would grow the buffer with every read, the consumed frames still at its front.
                buffer.discardReadBytes()
            }
            self.partial = buffer
        }
        return frame
    }

    /// Reads one frame from the front of `buffer`, or nothing (and consumes nothing) if it is not all there.
    private static func parse(_ buffer: inout ByteBuffer, maxFrameSize: Int) throws(NIOWebSocketError) -> WebSocketFrame? {
        let start = buffer.readerIndex
        guard let first = buffer.getInteger(at: start, as: UInt8.self),
            let second = buffer.getInteger(at: start + 1, as: UInt8.self)
        else {
            return nil
        }
        let masked = second & 0x80 != 0
        var offset = start + 2
        let length: Int
        switch second & 0x7F {
        case 126:
            guard let word = buffer.getInteger(at: offset, as: UInt16.self) else { return nil }
            length = Int(word)
            offset += 2
        case 127:
            guard let word = buffer.getInteger(at: offset, as: UInt64.self) else { return nil }
            guard word <= UInt64(Int.max) else { throw .invalidFrameLength }
            length = Int(word)
            offset += 8
        case let short:
            length = Int(short)
        }
        let isControl = first & 0x08 != 0
        guard length <= maxFrameSize else { throw .invalidFrameLength }
        if isControl && first & 0x80 == 0 { throw .fragmentedControlFrame }
        if isControl && length > WebSocketFrameCodec.maxControlPayload { throw .multiByteControlFrameLength }

        var maskKey: WebSocketMaskingKey?
        if masked {
            guard let key = buffer.getBytes(at: offset, length: 4) else { return nil }
            maskKey = WebSocketMaskingKey(key)
            offset += 4
        }
        guard let data = buffer.getSlice(at: offset, length: length) else {
            return nil
        }
        buffer.moveReaderIndex(to: offset + length)
        return WebSocketFrame(
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            rsv2: first & 0x20 != 0,
            rsv3: first & 0x10 != 0,
            opcode: WebSocketOpcode(encodedWebSocketOpcode: first & 0x0F)!,
            maskKey: maskKey,
            data: data
        )
    }
}
