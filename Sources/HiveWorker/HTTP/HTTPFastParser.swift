import HTTPTypes
import NIOHTTP1

/// A request the fast path read whole: what `HTTPRequestHandler` answers, without NIO's `HTTPRequestHead`.
struct ParsedHTTPRequest {
    /// NIO's method, for the response's framing (`HEAD`, `CONNECT`).
    var method: HTTPMethod
    var version: HTTPVersion
    /// Whether the connection stays open after the response (RFC 9112 section 9.3, NIO's `isKeepAlive`).
    var keepAlive: Bool
    var head: HTTPRequest
    var body: [UInt8]
}

/// Hive's own parser for the requests nearly every client sends, so `GET /hello` skips NIO's decoder (llhttp behind
/// a `ByteToMessageHandler`), its `HTTPRequestHead` and `HTTPHeaders`, and the conversion to swift-http-types.
///
/// It is strict on purpose and accepts only a conservative subset, whole within one read: the request line
/// `METHOD SP origin-form SP HTTP/1.1` (or 1.0) with a common method, CRLF line ends, header names that are tokens,
/// values of visible ASCII, spaces and tabs without trailing whitespace (so no obs-fold), at most one plain decimal
/// `Content-Length`, exactly one `Host` (at most one in 1.0), `Connection` only as `close` or `keep-alive`, and
/// no `Transfer-Encoding`, `Expect` or `Upgrade`, within --max-header-size and --max-body-size. Everything else
/// (chunked bodies, upgrades, smuggling attempts, limits exceeded, a request split across reads, garbage) is
/// `handOver`: the connection goes to NIO's decoder for good, which answers it exactly as before. A request accepted
/// here is one NIO's decoder reads the same way and `HTTPRequestHandler` accepts (`fuzz-http-parser` compares the
/// two on every input).
enum HTTPFastParser {
    enum Outcome {
        /// A request and the bytes it took (head and body).
        case request(ParsedHTTPRequest, consumed: Int)
        /// The start of a head this parser may take, within --max-header-size: the rest is still to come.
        case needMore
        /// A head this parser takes whole, whose body is still to come: the request ends at `total` bytes.
        case needBody(total: Int, path: String)
        /// Not a request this parser takes: NIO's decoder reads these bytes.
        case handOver
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")
    private static let space = UInt8(ascii: " ")
    private static let tab = UInt8(ascii: "\t")

    /// Parses one request at the start of `bytes`.
    static func parse(_ bytes: UnsafeRawBufferPointer, maxHeaderSize: Int, maxBodySize: Int) -> Outcome {
        let count = bytes.count
        // What bytes that end inside a head so far acceptable mean: wait for more, unless the head is over its limit
        // already (NIO's decoder answers that).
        let short = count <= maxHeaderSize ? Outcome.needMore : .handOver
        guard let (method, nioMethod, methodLength) = knownMethod(bytes) else {
            return isMethodPrefix(bytes) ? short : .handOver
        }
        var at = methodLength + 1  // the space after the method, checked by knownMethod
        // origin-form (RFC 9112 section 3.2.1) of RFC 3986's path and query characters; anything else (a fragment,
        // "<", "{" and the like) is left to NIO.
        let targetStart = at
        guard at < count else { return short }
        guard bytes[at] == UInt8(ascii: "/") else { return .handOver }
        while at < count, isTargetByte(bytes[at]) { at += 1 }
        guard at < count else { return short }
        guard bytes[at] == space else { return .handOver }
        let targetEnd = at
        at += 1
        // "HTTP/1.1" or "HTTP/1.0", CRLF.
        if count - at < 10 { return isVersionPrefix(bytes, from: at) ? short : .handOver }
        guard bytes[at] == UInt8(ascii: "H"), bytes[at + 1] == UInt8(ascii: "T"),
            bytes[at + 2] == UInt8(ascii: "T"), bytes[at + 3] == UInt8(ascii: "P"),
            bytes[at + 4] == UInt8(ascii: "/"), bytes[at + 5] == UInt8(ascii: "1"),
            bytes[at + 6] == UInt8(ascii: "."),
            bytes[at + 7] == UInt8(ascii: "1") || bytes[at + 7] == UInt8(ascii: "0"),
            bytes[at + 8] == cr, bytes[at + 9] == lf
        else { return .handOver }
        let version = bytes[at + 7] == UInt8(ascii: "1") ? HTTPVersion.http1_1 : HTTPVersion.http1_0
        at += 10
        // RequestHeadFacts' measure of the head, checked against the same limit.
        var size = methodLength + (targetEnd - targetStart) + 12
        var hostCount = 0
        var authority: String?
        var contentLength: Int?
        var keepAlive: Bool?
        var fields = HTTPFields()
        while true {
            guard at < count else { return short }
            if bytes[at] == cr {
                guard at + 1 < count else { return short }
                guard bytes[at + 1] == lf else { return .handOver }
                at += 2
                break
            }
            let nameStart = at
            while at < count, isTokenByte(bytes[at]) { at += 1 }
            guard at < count else { return short }
            guard at > nameStart, bytes[at] == UInt8(ascii: ":") else { return .handOver }
            let nameEnd = at
            at += 1
            while at < count, bytes[at] == space || bytes[at] == tab { at += 1 }
            let valueStart = at
            while at < count, (bytes[at] >= space && bytes[at] < 0x7F) || bytes[at] == tab { at += 1 }
            guard at + 1 < count else { return at < count && bytes[at] != cr ? .handOver : short }
            guard bytes[at] == cr, bytes[at + 1] == lf else { return .handOver }
            let valueEnd = at
            // Trailing whitespace is not part of a value (RFC 9112 section 5.1); how a parser trims it is a detail
            // not worth matching here.
            if valueEnd > valueStart, bytes[valueEnd - 1] == space || bytes[valueEnd - 1] == tab { return .handOver }
            at += 2
            size += (nameEnd - nameStart) + (valueEnd - valueStart) + 4
            guard size <= maxHeaderSize, at <= maxHeaderSize else { return .handOver }
            let name = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<nameEnd])
            let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd])
            switch name.count {
            case 4 where isName(name, "host"):
                hostCount += 1
                authority = String(decoding: value, as: UTF8.self)
                continue  // the authority, not a field (as HTTPRequest has it)
            case 14 where isName(name, "content-length"):
                guard contentLength == nil, let length = decimal(value) else { return .handOver }
                contentLength = length
            case 10 where isName(name, "connection"):
                guard keepAlive == nil else { return .handOver }
                if isName(value, "close") {
                    keepAlive = false
                } else if isName(value, "keep-alive") {
                    keepAlive = true
                } else {
                    return .handOver
                }
            case 17 where isName(name, "transfer-encoding"), 6 where isName(name, "expect"),
                7 where isName(name, "upgrade"):
                return .handOver
            default:
                break
            }
            let nameString = String(decoding: name, as: UTF8.self)
            guard let fieldName = HTTPRequest.knownName(nameString) ?? HTTPField.Name(nameString) else { return .handOver }
            fields.append(HTTPField(name: fieldName, value: String(decoding: value, as: UTF8.self)))
        }
        guard hostCount == 1 || (hostCount == 0 && version == .http1_0) else { return .handOver }
        let length = contentLength ?? 0
        guard length <= maxBodySize else { return .handOver }
        let path = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[targetStart..<targetEnd]), as: UTF8.self)
        guard count - at >= length else { return .needBody(total: at + length, path: path) }
        let body = length == 0 ? [] : Array(UnsafeRawBufferPointer(rebasing: bytes[at..<(at + length)]))
        at += length
        let head = HTTPRequest(method: method, scheme: "http", authority: authority, path: path, headerFields: fields)
        let request = ParsedHTTPRequest(
            method: nioMethod, version: version, keepAlive: keepAlive ?? (version == .http1_1), head: head, body: body)
        return .request(request, consumed: at)
    }

    /// The method at the start of `bytes` and its length, when it is a common one followed by a space (whole).
    @inline(__always)
    private static func knownMethod(
        _ bytes: UnsafeRawBufferPointer
    ) -> (HTTPRequest.Method, HTTPMethod, Int)? {
        let count = bytes.count
        guard count >= 8 else { return count >= 4 ? knownMethodShort(bytes) : nil }
        // The first four bytes as one word: "GET " and the others compare at once.
        let word = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        switch word {
        case 0x2054_4547: return (.get, .GET, 3)  // "GET "
        case 0x5453_4F50 where bytes[4] == space: return (.post, .POST, 4)  // "POST"
        case 0x4441_4548 where bytes[4] == space: return (.head, .HEAD, 4)  // "HEAD"
        case 0x2054_5550: return (.put, .PUT, 3)  // "PUT "
        case 0x454C_4544 where bytes[4] == UInt8(ascii: "T") && bytes[5] == UInt8(ascii: "E") && bytes[6] == space:
            return (.delete, .DELETE, 6)  // "DELETE"
        case 0x4354_4150 where bytes[4] == UInt8(ascii: "H") && bytes[5] == space:
            return (.patch, .PATCH, 5)  // "PATCH"
        case 0x4954_504F
        where bytes[4] == UInt8(ascii: "O") && bytes[5] == UInt8(ascii: "N") && bytes[6] == UInt8(ascii: "S")
            && bytes[7] == space:
            return (.options, .OPTIONS, 7)  // "OPTIONS"
        default: return nil
        }
    }

    /// `knownMethod` for the rare read of fewer than 8 bytes.
    private static func knownMethodShort(_ bytes: UnsafeRawBufferPointer) -> (HTTPRequest.Method, HTTPMethod, Int)? {
        let methods: [(StaticString, HTTPRequest.Method, HTTPMethod)] = [
            ("GET ", .get, .GET), ("POST ", .post, .POST), ("HEAD ", .head, .HEAD), ("PUT ", .put, .PUT),
            ("DELETE ", .delete, .DELETE), ("PATCH ", .patch, .PATCH),
        ]
        for (name, method, nioMethod) in methods where bytes.count >= name.utf8CodeUnitCount {
            let length = name.utf8CodeUnitCount
            if (0..<length).allSatisfy({ bytes[$0] == name.utf8Start[$0] }) { return (method, nioMethod, length - 1) }
        }
        return nil
    }

    /// Whether `bytes` are the start of a method `knownMethod` takes and its space.
    private static func isMethodPrefix(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let methods: [StaticString] = ["GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "PATCH ", "OPTIONS "]
        return methods.contains { method in
            bytes.count < method.utf8CodeUnitCount
                && bytes.indices.allSatisfy { bytes[$0] == method.utf8Start[$0] }
        }
    }

    /// Whether the bytes from `at` (fewer than 10) are the start of "HTTP/1.1" or "HTTP/1.0" and CRLF.
    private static func isVersionPrefix(_ bytes: UnsafeRawBufferPointer, from at: Int) -> Bool {
        let version: StaticString = "HTTP/1.1\r\n"
        for index in at..<bytes.count {
            let byte = bytes[index]
            let wanted = version.utf8Start[index - at]
            guard byte == wanted || (index - at == 7 && byte == UInt8(ascii: "0")) else { return false }
        }
        return true
    }

    /// RFC 3986's pchar, "/" and "?": unreserved, sub-delims, ":", "@", and "%" of a percent-encoding.
    @inline(__always)
    private static func isTargetByte(_ byte: UInt8) -> Bool {
        inSet(byte, low: 0xafff_fff2_0000_0000, high: 0x47ff_fffe_87ff_ffff)
    }

    /// RFC 9110 section 5.6.2's tchar.
    @inline(__always)
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        inSet(byte, low: 0x03ff_6cfa_0000_0000, high: 0x57ff_ffff_c7ff_fffe)
    }

    /// Whether ASCII `byte` is in the set whose bits for bytes 0-63 are `low` and for 64-127 `high` (a switch over
    /// the characters compiles to a chain of comparisons).
    @inline(__always)
    private static func inSet(_ byte: UInt8, low: UInt64, high: UInt64) -> Bool {
        let bits = byte < 64 ? low : high
        return byte < 128 && (bits >> UInt64(byte & 63)) & 1 == 1
    }

    /// `bytes` equal `lowercase` (lowercase letters and "-") ignoring ASCII case.
    @inline(__always)
    private static func isName(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for index in 0..<bytes.count {
            let byte = bytes[index]
            let wanted = expected[index]
            guard byte == wanted || (byte | 0x20 == wanted && wanted >= UInt8(ascii: "a")) else { return false }
        }
        return true
    }

    /// A plain decimal of 1 to 18 digits (no sign, no spaces, no list), or nil.
    @inline(__always)
    private static func decimal(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard (1...18).contains(bytes.count) else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }
}
