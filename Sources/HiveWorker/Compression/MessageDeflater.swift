import CZlib
import NIOCore

/// Compresses whole messages for permessage-deflate as raw DEFLATE (RFC 1951) with no context takeover: each
/// message starts from an empty window and ends with a sync flush whose 4-byte tail (00 00 FF FF) is cut off
/// (RFC 7692 7.2.1). The result is valid for every client that agreed to this window, so a worker compresses a
/// broadcast once for all of them.
///
/// One per worker and window size, on the event loop. zlib keeps about 256 KB for a 15-bit window (its window, hash
/// chains and pending buffer), allocated once.
final class MessageDeflater {
    private let stream: UnsafeMutablePointer<z_stream>
    let windowBits: Int

    /// Nil when zlib refuses the parameters or has no memory (the caller then sends messages uncompressed).
    init?(windowBits: Int, level: Int32 = 6) {
        self.windowBits = windowBits
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        // Negative window bits: raw deflate, no zlib header or checksum. memLevel 8 is zlib's default.
        guard CZlib_deflateInit2(self.stream, level, -Int32(windowBits), 8) == Z_OK else {
            self.stream.deallocate()
            return nil
        }
    }

    deinit {
        deflateEnd(self.stream)
        self.stream.deallocate()
    }

    /// Appends the compressed form of `payload` to `output` (without the 00 00 FF FF tail). Returns false, with
    /// `output` as it was, if zlib fails.
    func compress(_ payload: UnsafeRawBufferPointer, appendingTo output: inout ByteBuffer) -> Bool {
        let start = output.writerIndex
        guard deflateReset(self.stream) == Z_OK else { return false }
        self.stream.pointee.next_in = payload.baseAddress.map {
            UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self))
        }
        self.stream.pointee.avail_in = uInt(payload.count)
        // deflateBound covers the data; a sync flush adds at most an empty stored block (5 bytes) and a partial byte.
        let bound = Int(deflateBound(self.stream, uLong(payload.count))) + 16
        while true {
            var status = Z_OK
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { out in
                self.stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                self.stream.pointee.avail_out = uInt(out.count)
                status = deflate(self.stream, Z_SYNC_FLUSH)
                return out.count - Int(self.stream.pointee.avail_out)
            }
            guard status == Z_OK || status == Z_BUF_ERROR else {
                output.moveWriterIndex(to: start)
                return false
            }
            if self.stream.pointee.avail_in == 0 && self.stream.pointee.avail_out != 0 { break }
        }
        self.stream.pointee.next_in = nil
        self.stream.pointee.next_out = nil
        // A sync flush always ends with an empty stored block: 00 00 FF FF, which the receiver adds back.
        guard output.writerIndex - start >= 4,
            output.getBytes(at: output.writerIndex - 4, length: 4) == [0x00, 0x00, 0xFF, 0xFF]
        else {
            output.moveWriterIndex(to: start)
            return false
        }
        output.moveWriterIndex(to: output.writerIndex - 4)
        return true
    }
}

@available(*, unavailable)
extension MessageDeflater: Sendable {}
