import HTTPTypes
import NIOCore
import NIOHTTP1

/// A whole response as the bytes that go on the wire: status line, header fields, framing and body in one buffer,
/// handed to the record handler in one write. NIO's `HTTPResponseEncoder` and its header validator cost about a
/// third of a `GET /hello` (three writes through two more handlers, a `HTTPHeaders` built and checked again, the
/// head written field by field); the fields of a `HiveResponse` are swift-http-types' and were checked as they were
/// made (a value with CR, LF or NUL cannot be represented), so there is nothing left to validate here.
enum HTTPResponseBytes {
    /// The allocator of every response: NIO's default, which every Hive channel has (no option sets another);
    /// asking the channel for it cost about 110 instructions a response.
    static let allocator = ByteBufferAllocator()

    /// The response to a request of `method` (nil: not known, such as the answer to a request that failed to parse),
    /// with the server's framing as NIO's encoder set it: `Content-Length` of the body, also for `HEAD` (whose body is
    /// then not sent, RFC 9110 section 9.3.2), none for 1xx, 204 and 304 and the answer to `CONNECT` (no body
    /// either), and `Connection`. The application's own `Content-Length` and `Connection` are replaced.
    static func encode(
        _ response: HiveResponse, method: HTTPMethod?, version: HTTPVersion, keepAlive: Bool,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        let code = response.status.code
        let (isHead, isConnect) = framing(method)
        let mayHaveBody = !(100..<200).contains(code) && code != 204 && code != 304 && !isConnect
        let sendsBody = mayHaveBody && !isHead && !response.body.isEmpty
        // The head is copied in one pass over the buffer's memory: a write per piece costs an exclusivity check
        // and a capacity check each, which was half of this function's cost with three fields.
        var fieldBytes = 0
        for field in response.headerFields where !isFraming(field.name) {
            fieldBytes += field.name.rawName.utf8.count + field.value.utf8.count + 4
        }
        // HTTP/1.1 200 is written from a constant; any other status line as NIO's encoder wrote it, so a code NIO
        // knows gets NIO's standard phrase (converting the status costs a string comparison or two).
        let fastStatusLine = version.major == 1 && version.minor == 1 && code == 200
        let status = fastStatusLine ? nil : HTTPResponseStatus(response.status)
        let reason = status?.reasonPhrase ?? ""
        let numeric = response.numericFields
        // "HTTP/" major "." minor " " code " " reason CRLF, fields, numeric fields, "Content-Length: " digits CRLF,
        // Connection, CRLF
        let headBytes =
            5 + 20 + 1 + 20 + 1 + 20 + 1 + reason.utf8.count + 2 + fieldBytes + numeric.maxBytes + 16 + 20 + 2 + 26
        var buffer = allocator.buffer(capacity: headBytes + (sendsBody ? response.body.count : 0))
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: headBytes) { memory in
            var at = 0
            if let status {
                copyStatic("HTTP/", to: memory, at: &at)
                copyDecimal(version.major, to: memory, at: &at)
                copyStatic(".", to: memory, at: &at)
                copyDecimal(version.minor, to: memory, at: &at)
                copyStatic(" ", to: memory, at: &at)
                copyDecimal(Int(status.code), to: memory, at: &at)
                copyStatic(" ", to: memory, at: &at)
                copy(reason, to: memory, at: &at)
                copyStatic("\r\n", to: memory, at: &at)
            } else {
                copyStatic("HTTP/1.1 200 OK\r\n", to: memory, at: &at)
            }
            for field in response.headerFields where !isFraming(field.name) {
                copy(field.name.rawName, to: memory, at: &at)
                copyStatic(": ", to: memory, at: &at)
                copy(field.value, to: memory, at: &at)
                copyStatic("\r\n", to: memory, at: &at)
            }
            numeric.write(to: memory, at: &at)
            if mayHaveBody {
                copyStatic("Content-Length: ", to: memory, at: &at)
                copyDecimal(response.body.count, to: memory, at: &at)
                copyStatic("\r\n", to: memory, at: &at)
            }
            copyStatic(keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n", to: memory, at: &at)
            return at
        }
        if sendsBody { buffer.writeBytes(response.body) }
        return buffer
    }

    /// Whether `method` is `HEAD` or `CONNECT`, by a switch over the unwrapped case: NIO's `HTTPMethod` is
    /// `RawRepresentable`, and `==` or an optional pattern compiled to comparisons of its raw strings (100
    /// instructions a response).
    @inline(__always)
    private static func framing(_ method: HTTPMethod?) -> (isHead: Bool, isConnect: Bool) {
        guard let method else { return (false, false) }
        switch method {
        case .HEAD: return (true, false)
        case .CONNECT: return (false, true)
        default: return (false, false)
        }
    }

    /// `Content-Length` or `Connection`, which the server sets (canonical names are lowercase).
    @inline(__always)
    static func isFraming(_ name: HTTPField.Name) -> Bool {
        let canonical = name.canonicalName.utf8
        switch canonical.count {
        case 10: return name == .connection
        case 14: return name == .contentLength
        default: return false
        }
    }

    /// Copies `string` into `memory` at `at`, which it advances. The caller made room for it.
    @inline(__always)
    private static func copyStatic(_ string: StaticString, to memory: UnsafeMutableRawBufferPointer, at: inout Int) {
        let count = string.utf8CodeUnitCount
        UnsafeMutableRawBufferPointer(rebasing: memory[at..<(at + count)])
            .copyMemory(from: UnsafeRawBufferPointer(start: string.utf8Start, count: count))
        at += count
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
        var buffer = allocator.buffer(capacity: 64)
        buffer.writeString("HTTP/\(version.major).\(version.minor) 100 Continue\r\n\r\n")
        return buffer
    }

    /// `value` (not negative) in decimal into `memory` at `at`, which it advances; at most 20 bytes.
    @inline(__always)
    private static func copyDecimal(_ value: Int, to memory: UnsafeMutableRawBufferPointer, at: inout Int) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        rest = value
        for index in stride(from: at + digits - 1, through: at, by: -1) {
            memory[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
        }
        at += digits
    }
}
