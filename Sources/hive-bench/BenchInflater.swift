import CZlib
import NIOPosix

/// Inflates permessage-deflate messages for the clients of one event-loop thread: one zlib stream per thread, reset
/// for every message, since Hive answers every offer with no context takeover (a stream per connection would cost
/// 10,000 clients about 400 MB).
// @unchecked: each instance lives in one thread's slot and is used by that thread only.
final class BenchInflater: @unchecked Sendable {
    private var stream = z_stream()
    private var output = [UInt8](repeating: 0, count: 1 << 16)

    private static let perThread = ThreadSpecificVariable<BenchInflater>()

    static var forThisThread: BenchInflater {
        if let inflater = perThread.currentValue { return inflater }
        let inflater = BenchInflater()
        perThread.currentValue = inflater
        return inflater
    }

    private init() {
        precondition(inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    }

    deinit { inflateEnd(&stream) }

    /// The message, or nil if it is not valid DEFLATE data or inflates past 16 MiB.
    func inflate(_ payload: UnsafeRawBufferPointer) -> [UInt8]? {
        guard inflateReset(&stream) == Z_OK else { return nil }
        var result: [UInt8] = []
        guard feed(payload, into: &result), Self.tail.withUnsafeBytes({ feed($0, into: &result) }) else { return nil }
        return result
    }

    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    private func feed(_ input: UnsafeRawBufferPointer, into result: inout [UInt8]) -> Bool {
        guard let base = input.baseAddress, input.count > 0 else { return true }
        stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        while true {
            let (status, produced) = output.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                let status = CZlib.inflate(&stream, Z_SYNC_FLUSH)
                return (status, out.count - Int(stream.avail_out))
            }
            result.append(contentsOf: output[..<produced])
            guard result.count <= 16 << 20 else { return false }
            switch status {
            case Z_STREAM_END: return true
            case Z_OK, Z_BUF_ERROR:
                if stream.avail_in == 0 && stream.avail_out != 0 { return true }
                if status == Z_BUF_ERROR && stream.avail_out != 0 { return false }
            default: return false
            }
        }
    }
}
