import NIOHTTP1

/// What the request handler checks in a request head, found in one pass over its headers (the pass that measures
/// the head anyway), so `GET /hello` pays for one loop, not one lookup per check.
struct RequestHeadFacts {
    /// Request line plus headers as they were on the wire (to within a few bytes of separators).
    var size: Int
    /// `Host` header lines (RFC 9112 section 3.2: exactly one in HTTP/1.1).
    var hostCount = 0
    var host: String?
    var contentLength: String?
    var hasTransferEncoding = false
    var expect: String?

    init(_ head: HTTPRequestHead) {
        var size = head.method.rawValue.utf8.count + head.uri.utf8.count + 12
        for (name, value) in head.headers {
            size += name.utf8.count + value.utf8.count + 4
            switch name.utf8.count {
            // The spelling nearly every client sends first: equal short strings compare by their bits.
            case 4 where name == "Host" || Self.isName(name, "host"):
                hostCount += 1
                host = value
            case 6 where Self.isName(name, "expect"):
                expect = value
            case 14 where contentLength == nil && (name == "Content-Length" || Self.isName(name, "content-length")):
                contentLength = value
            case 17 where Self.isName(name, "transfer-encoding"):
                hasTransferEncoding = true
            default:
                break
            }
        }
        self.size = size
    }

    /// Whether a body follows the head.
    var expectsBody: Bool {
        if let contentLength { return contentLength != "0" }
        return hasTransferEncoding
    }

    /// Why the head's `Host` is unacceptable (RFC 9112 section 3.2: a server must answer 400 to an HTTP/1.1 request
    /// without one, and to any request with more than one), or nil.
    func hostProblem(version: HTTPVersion) -> String? {
        if hostCount > 1 { return "the request has \(hostCount) Host headers; send exactly one" }
        if hostCount == 0 && version.isAtLeast11 {
            return "an HTTP/1.1 request must have a Host header (RFC 9112 section 3.2)"
        }
        return nil
    }

    /// `name` equals `lowercase` (lowercase letters and "-") ignoring ASCII case.
    @inline(__always)
    static func isName(_ name: String, _ lowercase: StaticString) -> Bool {
        guard name.utf8.count == lowercase.utf8CodeUnitCount else { return false }
        var index = 0
        let expected = lowercase.utf8Start
        for byte in name.utf8 {
            let wanted = expected[index]
            guard byte == wanted || (byte | 0x20 == wanted && wanted >= UInt8(ascii: "a")) else { return false }
            index += 1
        }
        return true
    }
}

extension HTTPVersion {
    /// HTTP/1.1 or later: what `Host`, `Expect` and a WebSocket upgrade need.
    var isAtLeast11: Bool { major > 1 || (major == 1 && minor >= 1) }
}

/// RFC 9112 section 3.2.2: a server must accept a request target in absolute form ("http://host/path?query") and
/// serve it by its path, as if it were "/path?query", using the host of the target.
enum RequestTarget {
    /// The authority and origin-form of an absolute-form target ("http://a:1/p?q" -> ("a:1", "/p?q")), or nil when
    /// `uri` is not one (origin-form "/p", "*", or anything else: left as it is).
    static func absoluteForm(_ uri: String) -> (authority: Substring, originForm: String)? {
        let utf8 = uri.utf8
        guard let first = utf8.first, first != UInt8(ascii: "/"),
            let separator = uri.range(of: "://"),
            ["http", "https"].contains(uri[..<separator.lowerBound].lowercased())
        else { return nil }
        let rest = uri[separator.upperBound...]
        let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<end]
        var target = String(rest[end...])
        if let fragment = target.firstIndex(of: "#") { target = String(target[..<fragment]) }
        if !target.hasPrefix("/") { target = "/" + target }
        return (authority, target)
    }
}
