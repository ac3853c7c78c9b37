import Foundation
import HTTPTypes
import HiveIPC

/// One HTTP request, complete with its body (bounded by --max-body-size), in swift-http-types' terms.
public struct HiveRequest: Sendable {
    /// Method, request target (`head.path`: path and query, as sent), `Host` (as `head.authority`, the way
    /// swift-http-types carries it, so not among the header fields) and the other header fields. A target in
    /// absolute form, "http://host/path?query", arrives as its path and query (RFC 9112 section 3.2.2).
    public var head: HTTPRequest
    /// The connection it came on: a plain HTTP connection, which `push` refuses (`notWebSocket`).
    public var connection: ConnectionID
    /// The whole body (at most `--max-body-size` bytes; a larger one is answered 413 before the hook runs).
    public var body: [UInt8]
    /// What a `HiveRouter` route captured (":id" segments, "*"); empty until a router fills it.
    public var parameters: HiveParameters

    /// A request with these parts (the server makes them; tests and routers may too).
    public init(head: HTTPRequest, connection: ConnectionID, body: [UInt8] = [], parameters: HiveParameters = [:]) {
        self.head = head
        self.connection = connection
        self.body = body
        self.parameters = parameters
    }

    /// The method (`.get`, `.post`, or any other token).
    public var method: HTTPRequest.Method { head.method }

    /// The request target as sent: path and query ("/users/7?tab=posts").
    public var uri: String { head.path ?? "" }

    /// The path without the query string, still percent-encoded ("/caf%C3%A9").
    public var path: String {
        var uri = self.uri
        // By UTF-8 bytes: `firstIndex(of: Character)` walks grapheme clusters, and a target without a query (the
        // common case) is returned as it is, without a copy. Over contiguous bytes: the UTF-8 view of a short
        // (inline) string is walked index by index, 225 instructions for "/hello".
        guard let offset = uri.withUTF8({ $0.firstIndex(of: UInt8(ascii: "?")) }) else { return uri }
        return String(uri[..<uri.utf8.index(uri.utf8.startIndex, offsetBy: offset)])
    }

    /// The header fields in the order sent, names as sent (`Host` is `head.authority`); look one up with
    /// `headerFields[.accept]`, all values of a name with `headerFields[values: .accept]`.
    public var headerFields: HTTPFields {
        get { head.headerFields }
        set { head.headerFields = newValue }
    }

    /// The query string's parameters, decoded ("?tag=a&tag=b&q=two+words": `query["q"]` is "two words",
    /// `query.values("tag")` ["a", "b"]). Parsed on every access: keep it in a local when reading several.
    public var query: HiveParameters {
        let uri = self.uri
        guard let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return HiveParameters() }
        return HiveParameters(query: uri[uri.utf8.index(after: mark)...])
    }
}

/// The response an application returns from its request hook. `Content-Length` and `Connection` are the server's:
/// set here, they are replaced.
public struct HiveResponse: Sendable {
    /// The status (`.ok`, `.notFound`, or `HTTPResponse.Status(code: 299, reasonPhrase: "...")`).
    public var status: HTTPResponse.Status
    /// Header fields to send, in order.
    public var headerFields: HTTPFields
    /// The body.
    public var body: [UInt8]
    /// Fields whose values are integers, added with `appendField(_:_:)` and written after ``headerFields``.
    public internal(set) var numericFields = HiveNumericFields()

    /// A response with these parts.
    public init(status: HTTPResponse.Status = .ok, headerFields: HTTPFields = [:], body: [UInt8] = []) {
        self.status = status
        self.headerFields = headerFields
        self.body = body
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ text: String, status: HTTPResponse.Status = .ok) -> HiveResponse {
        HiveResponse(status: status, headerFields: ContentType.text, body: Array(text.utf8))
    }

    /// A `text/html; charset=utf-8` response.
    public static func html(_ html: String, status: HTTPResponse.Status = .ok) -> HiveResponse {
        HiveResponse(status: status, headerFields: ContentType.html, body: Array(html.utf8))
    }

    /// A response of any content type.
    public static func bytes(_ bytes: [UInt8], contentType: String, status: HTTPResponse.Status = .ok) -> HiveResponse {
        HiveResponse(status: status, headerFields: [.contentType: contentType], body: bytes)
    }

    /// `value` as JSON (`application/json`). Throws what `encoder` throws; from a request hook that answers 500.
    public static func json(
        _ value: some Encodable, status: HTTPResponse.Status = .ok, encoder: JSONEncoder = JSONEncoder()
    ) throws -> HiveResponse {
        HiveResponse(status: status, headerFields: [.contentType: "application/json"], body: Array(try encoder.encode(value)))
    }

    /// 404 with the text "not found": what the default request hook answers.
    public static let notFound = HiveResponse.text("not found\n", status: .notFound)

    /// Header fields built once: a dictionary literal of `HTTPFields` checks and copies its field on every call, a
    /// stored value is shared (copy on write).
    enum ContentType {
        static let text: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
        static let html: HTTPFields = [.contentType: "text/html; charset=utf-8"]
    }
}
