/// The bytes of one published message. The publish time travels inside it, so latency is receive time minus the
/// time written by the publisher, never an estimate:
///
///     "hb" <run id: 8 hex> <sequence: 8 hex> <publish time, CLOCK_MONOTONIC ns: 16 hex> JSON-like padding to `size`
///
/// Plain ASCII on purpose: it is valid UTF-8, so Hive sends it as a text frame (its usual path for JSON pushes). The
/// run id tells this run's messages from anything else published on the channel (another test, a stale run).
enum Payload {
    static let headerSize = 2 + 8 + 8 + 16
    static let minimumSize = headerSize

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    static func encode(runID: UInt32, sequence: UInt32, publishedAt: UInt64, size: Int, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "h"))
        bytes.append(UInt8(ascii: "b"))
        appendHex(UInt64(runID), digits: 8, to: &bytes)
        appendHex(UInt64(sequence), digits: 8, to: &bytes)
        appendHex(publishedAt, digits: 16, to: &bytes)
        appendPadding(seed: sequence, count: max(size, headerSize) - headerSize, to: &bytes)
    }

    /// JSON-like records with varying numbers (`{"id":7,"sym":"HV3","px":10412,"qty":58},` ...), cut to `count`
    /// bytes: about as compressible as real market-data or chat JSON (4-5 times with permessage-deflate), where a
    /// run of one repeated byte would deflate a hundredfold and flatter compression.
    private static func appendPadding(seed: UInt32, count: Int, to bytes: inout [UInt8]) {
        guard count > 0 else { return }
        var state = seed | 1
        var id = 0
        var padding: [UInt8] = []
        padding.reserveCapacity(count + 64)
        while padding.count < count {
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            let record = "{\"id\":\(id),\"sym\":\"HV\(state % 10)\",\"px\":\(10_000 + state % 1000),\"qty\":\(state >> 24)},"
            padding.append(contentsOf: record.utf8)
            id += 1
        }
        bytes.append(contentsOf: padding.prefix(count))
    }

    private static func appendHex(_ value: UInt64, digits: Int, to bytes: inout [UInt8]) {
        for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
            bytes.append(hex[Int((value >> UInt64(shift)) & 0xF)])
        }
    }

    enum Decoded {
        case ok(sequence: UInt32, publishedAt: UInt64)
        /// Well-formed, but from another run (or another publisher) on the same channel.
        case foreign
        /// Not a payload of ours, or not of the expected size: a corrupted or truncated delivery.
        case corrupt
    }

    @inline(__always)
    static func decode(_ bytes: UnsafeRawBufferPointer, runID: UInt32, size: Int) -> Decoded {
        guard bytes.count >= headerSize, bytes[0] == UInt8(ascii: "h"), bytes[1] == UInt8(ascii: "b") else { return .corrupt }
        guard let run = parseHex(bytes, from: 2, digits: 8),
            let sequence = parseHex(bytes, from: 10, digits: 8),
            let time = parseHex(bytes, from: 18, digits: 16)
        else { return .corrupt }
        guard UInt32(truncatingIfNeeded: run) == runID else { return .foreign }
        guard bytes.count == max(size, headerSize) else { return .corrupt }
        return .ok(sequence: UInt32(truncatingIfNeeded: sequence), publishedAt: time)
    }

    @inline(__always)
    private static func parseHex(_ bytes: UnsafeRawBufferPointer, from start: Int, digits: Int) -> UInt64? {
        var value: UInt64 = 0
        for i in start..<(start + digits) {
            let c = bytes[i]
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c &- UInt8(ascii: "a") &+ 10
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }
}
