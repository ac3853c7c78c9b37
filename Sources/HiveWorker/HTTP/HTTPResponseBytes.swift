import HTTPTypes
import NIOCore
import NIOHTTP1

/// A whole response as the bytes that go on the wire: status line, header fields, framing and body in one buffer,
/// handed to the record handler in one write. NIO's `HTTPResponseEncoder` and its header validator cost about a
/// third of a `GET /hello` (three writes through two more handlers, a `HTTPHeaders` built and checked again, the
/// head written field by field); the fields of a `HiveResponse` are swift-http-types' and were checked as they were
/// made (a value with CR, LF or NUL cannot be represented), so there is nothing left to validate here.
enum HTTPResponseBytes {
    /// The response to a request of `method` (nil: not known, such as the answer to a request that failed to parse),
    /// with the server's framing as NIO's encoder set it: `Content-Length` of the body, also for `HEAD` (whose body is
    /// then not sent, RFC 9110 section 9.3.2), none for 1xx, 204 and 304 and the answer to `CONNECT` (no body
    /// either), and `Connection`. The application's own `Content-Length` and `Connection` are replaced.
    static func encode(
        _ response: HiveResponse, method: HTTPMethod?, version: HTTPVersion, keepAlive: Bool,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        let status = HTTPResponseStatus(response.status)
        let code = status.code
        let mayHaveBody = !(100..<200).contains(code) && code != 204 && code != 304 && method != .CONNECT
        let sendsBody = mayHaveBody && method != .HEAD && !response.body.isEmpty
        // The fields are copied in one pass over the buffer's memory: a write per piece costs an exclusivity check
        // and a capacity check each, about a third of this function's cost with three fields.
        var size = 2
        for field in response.headerFields where !isFraming(field.name) {
            size += field.name.rawName.utf8.count + field.value.utf8.count + 4
        }
        var buffer = allocator.buffer(capacity: 128 + size + (sendsBody ? response.body.count : 0))
        writeStatusLine(status, version: version, into: &buffer)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { memory in
            var at = 0
            for field in response.headerFields where !isFraming(field.name) {
                copy(field.name.rawName, to: memory, at: &at)
                copy(": ", to: memory, at: &at)
                copy(field.value, to: memory, at: &at)
                copy("\r\n", to: memory, at: &at)
            }
            return at
        }
        if mayHaveBody {
            buffer.writeStaticString("Content-Length: ")
            writeDecimal(response.body.count, into: &buffer)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString(keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n")
        if sendsBody { buffer.writeBytes(response.body) }
        return buffer
    }

    /// `Content-Length` or `Connection`, which the server sets (canonical names are lowercase).
    @inline(__always)
    private static func isFraming(_ name: HTTPField.Name) -> Bool {
        let canonical = name.canonicalName.utf8
        switch canonical.count {
        case 10: return name == .connection
        case 14: return name == .contentLength
        default: return false
        }
    }

    /// Copies the UTF-8 of `string` into `memory` at `at`, which it advances. The caller made room for it.
    @inline(__always)
    private static func copy(_ string: String, to memory: UnsafeMutableRawBufferPointer, at: inout Int) {
        let count = string.utf8.count
        let copied = string.utf8.withContiguousStorageIfAvailable { bytes in
            UnsafeMutableRawBufferPointer(rebasing: memory[at..<(at + count)]).copyMemory(from: UnsafeRawBufferPointer(bytes))
        }
        if copied == nil {
            var index = at
            for byte in string.utf8 {
                memory[index] = byte
                index += 1
            }
        }
        at += count
    }

    /// "HTTP/1.1 100 Continue", the interim answer to `Expect: 100-continue` (RFC 9110 section 10.1.1).
    static func continueResponse(version: HTTPVersion, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 32)
        writeStatusLine(.continue, version: version, into: &buffer)
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// "HTTP/1.1 200 OK\r\n". A code NIO knows gets its standard reason phrase (as NIO's encoder wrote it).
    private static func writeStatusLine(_ status: HTTPResponseStatus, version: HTTPVersion, into buffer: inout ByteBuffer) {
        if version.major == 1 && version.minor == 1 {
            if status == .ok {
                buffer.writeStaticString("HTTP/1.1 200 OK\r\n")
                return
            }
            buffer.writeStaticString("HTTP/1.1 ")
        } else {
            buffer.writeStaticString("HTTP/")
            writeDecimal(version.major, into: &buffer)
            buffer.writeStaticString(".")
            writeDecimal(version.minor, into: &buffer)
            buffer.writeStaticString(" ")
        }
        writeDecimal(Int(status.code), into: &buffer)
        buffer.writeStaticString(" ")
        buffer.writeString(status.reasonPhrase)
        buffer.writeStaticString("\r\n")
    }

    /// `value` (not negative) in decimal, without making a `String`.
    private static func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
        if value < 10 {
            buffer.writeInteger(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: any Int has at most 20 digits
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { bytes in
            while rest > 0 {
                bytes[23 - count] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
                count += 1
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[(24 - count)...]))
        }
    }
}
