import HiveIPC

/// One HTTP request, complete with its body (bounded by --max-body-size).
public struct HiveRequest: Sendable {
    public var connection: ConnectionID
    public var method: String
    /// The request target: path and query, as sent (a target in absolute form, "http://host/path?query", arrives
    /// as its path and query, RFC 9112 section 3.2.2).
    public var uri: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The path without the query string.
    public var path: String { String(uri.prefix { $0 != "?" }) }

    /// The first header with this name, compared case-insensitively.
    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name.lowercased() == lowered }?.value
    }
}

/// The response an application returns from its request hook.
public struct HiveResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int = 200, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func text(_ text: String, status: Int = 200) -> HiveResponse {
        HiveResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array(text.utf8))
    }

    public static func html(_ html: String, status: Int = 200) -> HiveResponse {
        HiveResponse(status: status, headers: [("Content-Type", "text/html; charset=utf-8")], body: Array(html.utf8))
    }

    public static func bytes(_ bytes: [UInt8], contentType: String, status: Int = 200) -> HiveResponse {
        HiveResponse(status: status, headers: [("Content-Type", contentType)], body: bytes)
    }

    public static let notFound = HiveResponse.text("not found\n", status: 404)
}
