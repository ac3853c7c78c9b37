import NIOCore
import NIOWebSocket

/// A worker's "shared compressor" (uWebSockets' term): turns a buffer of encoded server frames (a broadcast, or a
/// push) into the same frames compressed for permessage-deflate, once per worker and window size, so every
/// compressed session of the worker is written the same buffer. Messages under `minSize` bytes, and those that
/// deflate does not make smaller, stay as they are (RSV1 clear), which RFC 7692 6 allows per message.
///
/// Event loop only. The deflaters (one per window size a client asked for; browsers never ask, so one) are made at
/// the first message that needs them.
final class BroadcastCompressor {
    /// Messages shorter than this many bytes go uncompressed (--compression-min-size).
    let minSize: Int
    /// Indexed by window bits - 9 (9...15).
    private var deflaters: [MessageDeflater?] = Array(repeating: nil, count: 7)
    /// Messages deflated so far (for tests: once per broadcast and window size, not per session).
    private(set) var deflatedMessages = 0

    init(minSize: Int) {
        self.minSize = minSize
    }

    /// `frames` with every data message of at least `minSize` bytes compressed for a client whose window is
    /// `windowBits`; `frames` itself when none is (the same storage: nothing copied).
    ///
    /// `frames` holds whole, unmasked, unfragmented frames back to back, as `Hive.encodeFrames` and
    /// `Hive.appendFrame` write them; anything else (a control frame, a fragment, a frame already compressed) is
    /// copied through unchanged.
    func compress(_ frames: ByteBuffer, windowBits: Int) -> ByteBuffer {
        guard self.containsCompressible(frames), let deflater = self.deflater(windowBits: windowBits) else {
            return frames
        }
        var output = ByteBufferAllocator().buffer(capacity: frames.readableBytes)
        var input = frames
        while let (first, payload) = Self.nextFrame(&input) {
            let isData = first & 0x70 == 0 && first & 0x80 != 0 && (first & 0x0F == 0x1 || first & 0x0F == 0x2)
            if isData && payload.readableBytes >= self.minSize,
                self.appendCompressed(first: first, payload: payload, deflater: deflater, to: &output)
            {
                continue
            }
            output.writeInteger(first)
            WebSocketFrameCodec.writeLength(payload.readableBytes, to: &output)
            output.writeImmutableBuffer(payload)
        }
        return output
    }

    /// Whether some frame of `frames` is a message long enough to compress (cheap: headers only).
    private func containsCompressible(_ frames: ByteBuffer) -> Bool {
        var input = frames
        while let (_, payload) = Self.nextFrame(&input) {
            if payload.readableBytes >= self.minSize { return true }
        }
        return false
    }

    /// Appends the compressed frame, RSV1 set; false (nothing appended) if it would not be smaller.
    private func appendCompressed(
        first: UInt8,
        payload: ByteBuffer,
        deflater: MessageDeflater,
        to output: inout ByteBuffer
    ) -> Bool {
        var compressed = ByteBufferAllocator().buffer(capacity: payload.readableBytes / 2 + 64)
        let ok = payload.withUnsafeReadableBytes { deflater.compress($0, appendingTo: &compressed) }
        deflatedMessages += 1
        guard ok, compressed.readableBytes < payload.readableBytes else { return false }
        output.writeInteger(first | 0x40)
        WebSocketFrameCodec.writeLength(compressed.readableBytes, to: &output)
        output.writeBuffer(&compressed)
        return true
    }

    private func deflater(windowBits: Int) -> MessageDeflater? {
        let index = min(max(windowBits, 9), 15) - 9
        if let deflater = self.deflaters[index] { return deflater }
        let deflater = MessageDeflater(windowBits: index + 9)
        self.deflaters[index] = deflater
        return deflater
    }

    /// The first header byte and the payload of the next unmasked frame of `buffer`, nil at its end (or if the rest
    /// is not a whole frame, which a server-encoded buffer never has).
    private static func nextFrame(_ buffer: inout ByteBuffer) -> (UInt8, ByteBuffer)? {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let second = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self)
        else { return nil }
        var offset = buffer.readerIndex + 2
        var length = Int(second & 0x7F)
        if length == 126 {
            guard let word = buffer.getInteger(at: offset, as: UInt16.self) else { return nil }
            length = Int(word)
            offset += 2
        } else if length == 127 {
            guard let word = buffer.getInteger(at: offset, as: UInt64.self), word <= UInt64(Int32.max) else {
                return nil
            }
            length = Int(word)
            offset += 8
        }
        guard second & 0x80 == 0, let payload = buffer.getSlice(at: offset, length: length) else { return nil }
        buffer.moveReaderIndex(to: offset + length)
        return (first, payload)
    }
}

@available(*, unavailable)
extension BroadcastCompressor: Sendable {}

/// The compressed forms of one broadcast's frames, made at the first session that needs each window size: the
/// broadcast loop asks for every compressed session, zlib runs once per window size.
struct CompressedFrames {
    let plain: ByteBuffer
    let compressor: BroadcastCompressor?
    /// The last window size asked for and its frames (every session of a worker usually has the same).
    private var last: (windowBits: Int, frames: ByteBuffer)?
    /// The others, rare (a client that asked for a smaller window).
    private var others: [Int: ByteBuffer] = [:]

    init(plain: ByteBuffer, compressor: BroadcastCompressor?) {
        self.plain = plain
        self.compressor = compressor
    }

    mutating func frames(windowBits: Int) -> ByteBuffer {
        if let last, last.windowBits == windowBits { return last.frames }
        guard let compressor else { return plain }
        let frames = others[windowBits] ?? compressor.compress(plain, windowBits: windowBits)
        if let last { others[last.windowBits] = last.frames }
        last = (windowBits, frames)
        return frames
    }
}
