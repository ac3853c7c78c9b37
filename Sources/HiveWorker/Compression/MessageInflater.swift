import CZlib
import NIOCore

/// Inflates whole permessage-deflate messages from clients that agreed to `client_no_context_takeover`: each
/// message from an empty window, so one inflater serves every connection of a worker, and an idle compressed
/// connection costs nothing. zlib allocates its state (about 7 KB) here and its 32 KB window at the first message.
///
/// The inflated size is bounded while inflating: a message that would grow past the limit stops there (a 1 KB "zip
/// bomb" of a gigabyte of zeros costs the limit plus one byte, not a gigabyte).
final class MessageInflater {
    enum Failure: Error, Equatable {
        /// The inflated message would be larger than the limit.
        case tooLarge
        /// Not a valid DEFLATE stream (or zlib failed).
        case corrupt
    }

    private let stream: UnsafeMutablePointer<z_stream>

    /// Nil when zlib has no memory for its state.
    init?() {
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        guard CZlib_inflateInit2(self.stream, -15) == Z_OK else {
            self.stream.deallocate()
            return nil
        }
    }

    deinit {
        inflateEnd(self.stream)
        self.stream.deallocate()
    }

    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    /// The message compressed in the readable bytes of `compressed` (the 00 00 FF FF tail cut off, as sent), at
    /// most `limit` bytes once inflated.
    func inflate(_ compressed: ByteBuffer, limit: Int, allocator: ByteBufferAllocator) -> Result<ByteBuffer, Failure> {
        guard inflateReset(self.stream) == Z_OK else { return .failure(.corrupt) }
        defer {
            self.stream.pointee.next_in = nil
            self.stream.pointee.next_out = nil
        }
        // A guess that fits most text; grown by doubling, never past limit + 1 (the byte that proves "too large").
        var output = allocator.buffer(capacity: min(limit + 1, max(256, compressed.readableBytes * 4)))
        var finished = false
        var result = compressed.withUnsafeReadableBytes { self.feed($0, into: &output, limit: limit, finished: &finished) }
        if result == nil && !finished {
            result = Self.tail.withUnsafeBytes { self.feed($0, into: &output, limit: limit, finished: &finished) }
        }
        if let failure = result { return .failure(failure) }
        return .success(output)
    }

    /// Inflates all of `input` into `output`; nil when it went in, or why it failed. `finished` is set when the
    /// stream ended (a final block): anything after it is ignored.
    private func feed(
        _ input: UnsafeRawBufferPointer,
        into output: inout ByteBuffer,
        limit: Int,
        finished: inout Bool
    ) -> Failure? {
        guard input.count > 0 else { return nil }
        self.stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
        self.stream.pointee.avail_in = uInt(input.count)
        while true {
            let room = limit + 1 - output.readableBytes
            guard room > 0 else { return .tooLarge }
            if output.writableBytes == 0 {
                output.reserveCapacity(min(limit + 1, output.capacity * 2))
            }
            var status = Z_OK
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { out in
                let count = min(out.count, room)
                self.stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                self.stream.pointee.avail_out = uInt(count)
                status = CZlib.inflate(self.stream, Z_SYNC_FLUSH)
                return count - Int(self.stream.pointee.avail_out)
            }
            if output.readableBytes > limit { return .tooLarge }
            switch status {
            case Z_STREAM_END:
                finished = true
                return nil
            case Z_OK, Z_BUF_ERROR:
                // Done once all the input went in and zlib had room to spare (it holds nothing back then).
                if self.stream.pointee.avail_in == 0 && self.stream.pointee.avail_out != 0 { return nil }
                if status == Z_BUF_ERROR && self.stream.pointee.avail_out != 0 { return .corrupt }
            default:
                return .corrupt
            }
        }
    }
}

@available(*, unavailable)
extension MessageInflater: Sendable {}
