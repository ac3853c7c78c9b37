import CZlib

/// permessage-deflate as a client does it, straight over zlib (independent of Hive's own code): raw DEFLATE,
/// each message on its own, the 00 00 FF FF tail of the sync flush cut off (RFC 7692 7.2.1).
enum RawDeflate {
    static func compress(_ bytes: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        precondition(deflateInit2_(&stream, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                                   Int32(MemoryLayout<z_stream>.size)) == Z_OK)
        defer { deflateEnd(&stream) }
        var input = bytes
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))) + 16)
        let produced = input.withUnsafeMutableBufferPointer { inPointer in
            output.withUnsafeMutableBufferPointer { outPointer in
                stream.next_in = inPointer.baseAddress
                stream.avail_in = uInt(inPointer.count)
                stream.next_out = outPointer.baseAddress
                stream.avail_out = uInt(outPointer.count)
                precondition(deflate(&stream, Z_SYNC_FLUSH) == Z_OK)
                return outPointer.count - Int(stream.avail_out)
            }
        }
        precondition(Array(output[produced - 4..<produced]) == [0, 0, 0xFF, 0xFF])
        return Array(output[..<(produced - 4)])
    }

    /// The inflated message, or nil when it is not valid DEFLATE data (or inflates past `limit`).
    static func decompress(_ bytes: [UInt8], limit: Int = 16 << 20) -> [UInt8]? {
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        var input = bytes + [0, 0, 0xFF, 0xFF]
        var output = [UInt8](repeating: 0, count: limit)
        var status: Int32 = Z_OK
        let produced = input.withUnsafeMutableBufferPointer { inPointer in
            output.withUnsafeMutableBufferPointer { outPointer in
                stream.next_in = inPointer.baseAddress
                stream.avail_in = uInt(inPointer.count)
                stream.next_out = outPointer.baseAddress
                stream.avail_out = uInt(outPointer.count)
                status = inflate(&stream, Z_SYNC_FLUSH)
                return outPointer.count - Int(stream.avail_out)
            }
        }
        guard status == Z_OK || status == Z_STREAM_END, stream.avail_in == 0 else { return nil }
        return Array(output[..<produced])
    }
}
