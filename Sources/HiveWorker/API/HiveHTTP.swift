import HiveIPC

/// One HTTP request, complete with its body (bounded by --max-body-size).
public struct HiveRequest: Sendable {
    /// The connection it came on: a plain HTTP connection, which `push` refuses (`notWebSocket`).
    public var connection: ConnectionID
    /// The method as sent ("GET", "POST").
    public var method: String
    /// The request target: path and query, as sent (a target in absolute form, "http://host/path?query", arrives
    /// as its path and query, RFC 9112 section 3.2.2).
    public var uri: String
    /// The header fields in the order sent, names as sent; ``header(_:)`` finds one by name.
    public var headers: [(name: String, value: String)]
    /// The whole body (at most `--max-body-size` bytes; a larger one is answered 413 before the hook runs).
    public var body: [UInt8]

    /// The path without the query string.
    public var path: String { String(uri.prefix { $0 != "?" }) }

    /// The first header with this name, compared case-insensitively.
    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name.lowercased() == lowered }?.value
    }
}

/// The response an application returns from its request hook. The server sets `Content-Length` and `Connection`.
public struct HiveResponse: Sendable {
    /// The status code (200, 404).
    public var status: Int
    /// Header fields to send, in order.
    public var headers: [(name: String, value: String)]
    /// The body.
    public var body: [UInt8]

    /// A response with these parts.
    public init(status: Int = 200, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ text: String, status: Int = 200) -> HiveResponse {
        HiveResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array(text.utf8))
    }

    /// A `text/html; charset=utf-8` response.
    public static func html(_ html: String, status: Int = 200) -> HiveResponse {
        HiveResponse(status: status, headers: [("Content-Type", "text/html; charset=utf-8")], body: Array(html.utf8))
    }

    /// A response of any content type.
    public static func bytes(_ bytes: [UInt8], contentType: String, status: Int = 200) -> HiveResponse {
        HiveResponse(status: status, headers: [("Content-Type", contentType)], body: bytes)
    }

    /// 404 with the text "not found": what the default request hook answers.
    public static let notFound = HiveResponse.text("not found\n", status: 404)
}
