import HTTPTypes
import NIOHTTP1

/// Between NIO's HTTP/1 heads, which the pipeline speaks, and swift-http-types', which applications see. Written
/// here rather than taken from swift-nio-extras (NIOHTTPTypesHTTP1), for one package less.
extension HTTPRequest {
    /// The request of NIO's `head`. `Host` becomes the authority and is not among the header fields, as
    /// swift-http-types has it (its `HTTPField.Name.host` is unavailable: "Use HTTPRequest.authority instead").
    /// Throws when the method or a header name is not an RFC 9110 token, which NIO's parser lets through only in ways
    /// HTTPTypes cannot represent.
    init(_ head: HTTPRequestHead) throws(HTTPConversionError) {
        guard let method = Self.knownMethod(head.method) ?? HTTPRequest.Method(head.method.rawValue) else {
            throw HTTPConversionError(message: "the method \"\(head.method.rawValue.prefix(40))\" is not a token")
        }
        var fields = HTTPFields()
        fields.reserveCapacity(head.headers.count)
        var authority: String?
        for (name, value) in head.headers {
            if RequestHeadFacts.isName(name, "host") {
                authority = value  // exactly one: the handler refused a request with more before
                continue
            }
            guard let fieldName = Self.knownName(name) ?? HTTPField.Name(name) else {
                throw HTTPConversionError(message: "the header name \"\(name.prefix(40))\" is not a token")
            }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        self.init(method: method, scheme: "http", authority: authority, path: head.uri, headerFields: fields)
    }

    /// The common methods without checking their names again (`Method(String)` checks the token on every request).
    @inline(__always)
    private static func knownMethod(_ method: HTTPMethod) -> HTTPRequest.Method? {
        switch method {
        case .GET: .get
        case .POST: .post
        case .HEAD: .head
        case .PUT: .put
        case .DELETE: .delete
        case .OPTIONS: .options
        default: nil
        }
    }

    /// The field names most requests carry, spelled exactly as sent (the application sees names as sent), from
    /// swift-http-types' constants: `HTTPField.Name(String)` checks the token and lowercases a copy of it, about
    /// 400 instructions a field. Comparing two short strings of the same length is a comparison of their bits.
    @inline(__always)
    static func knownName(_ name: String) -> HTTPField.Name? {
        switch name.utf8.count {
        case 14: name == "Content-Length" ? .contentLength : nil
        case 12: name == "Content-Type" ? .contentType : nil
        case 10: name == "User-Agent" ? .userAgent : name == "Connection" ? .connection : nil
        case 6: name == "Accept" ? .accept : nil
        case 15: name == "Accept-Encoding" ? .acceptEncoding : name == "Accept-Language" ? .acceptLanguage : nil
        default: nil
        }
    }
}

/// Why a request NIO parsed cannot be handed to the application (answered 400).
struct HTTPConversionError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

extension HTTPResponseStatus {
    /// A known code is NIO's case with the standard reason phrase; any other keeps the phrase it came with.
    init(_ status: HTTPResponse.Status) {
        self.init(statusCode: status.code, reasonPhrase: status.reasonPhrase)
    }
}

extension HTTPResponse.Status {
    init(_ status: HTTPResponseStatus) {
        self.init(code: Int(status.code), reasonPhrase: status.reasonPhrase)
    }
}
