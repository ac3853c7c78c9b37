import Foundation

/// A parsed HTTP/1.x response. Headers keep their wire order and case; look them up with `header(_:)`.
struct HTTPTestResponse: Sendable, CustomStringConvertible {
    /// "HTTP/1.1"
    var version: String
    var status: Int
    var reason: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    /// True if the body arrived with `Transfer-Encoding: chunked` (it is stored de-chunked).
    var wasChunked: Bool

    /// The body as UTF-8, with invalid sequences replaced: tests compare it with literals.
    var text: String { String(decoding: self.body, as: UTF8.self) }

    /// The first value of the header `name`, compared case-insensitively (RFC 9110 field names are).
    func header(_ name: String) -> String? {
        self.headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// Every value of the header `name`, in wire order.
    func headers(named name: String) -> [String] {
        self.headers.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
    }

    var description: String {
        let head = self.headers.map { "\($0.name): \($0.value)" }.joined(separator: ", ")
        let preview = self.text.count > 200 ? String(self.text.prefix(200)) + "…" : self.text
        return "\(self.version) \(self.status) \(self.reason) [\(head)] body \(self.body.count) bytes: \"\(preview)\""
    }
}

/// One keep-alive HTTP/1.1 connection to 127.0.0.1:`port` over a blocking socket.
///
/// Made for asserting server behaviour, not for general use: it sends exactly what it is told (`send(raw:)` for
/// malformed input), parses exactly one response per `readResponse()`, and never reconnects on its own, so a test
/// can tell whether the server kept the connection open. Every read is bounded by `timeout`.
final class HTTPTestClient {
    let port: Int
    /// Budget in seconds for each `readResponse()` / `request(…)` as a whole, and for each blocked `send`.
    var timeout: TimeInterval
    /// The connection itself, for tests that flood it or shrink its buffers.
    let socket: TestSocket

    /// Connects at once; throws `TestClientError.syscall` (e.g. ECONNREFUSED) if nothing listens.
    /// - Parameters:
    ///   - port: loopback port of the server.
    ///   - timeout: default budget for each response, in seconds.
    init(port: Int, timeout: TimeInterval = 5) throws {
        self.port = port
        self.timeout = timeout
        self.socket = try TestSocket(port: port, timeout: timeout)
    }

    /// Closes the socket; also done on deinit.
    func close() {
        self.socket.close()
    }

    // MARK: Sending

    /// Sends `raw` byte-for-byte as UTF-8. Write "\r\n" yourself: nothing is added or fixed up.
    func send(raw: String) throws {
        try self.socket.send(Array(raw.utf8))
    }

    func send(bytes: [UInt8]) throws {
        try self.socket.send(bytes)
    }

    /// Sends one request and reads its response on this keep-alive connection.
    ///
    /// Adds `Host` and, when there is a body, `Content-Length`, unless `headers` already has them (any case).
    /// - Parameters:
    ///   - method: request method; "HEAD" makes the reader expect no body.
    ///   - path: request target, e.g. "/hello?x=1".
    ///   - headers: extra header fields, written sorted by name so runs are reproducible.
    ///   - body: request body, or nil for none.
    func request(
        method: String = "GET",
        path: String,
        headers: [String: String] = [:],
        body: [UInt8]? = nil
    ) throws -> HTTPTestResponse {
        let bytes = Self.encodeRequest(method: method, path: path, port: self.port, headers: headers, body: body)
        try self.socket.send(bytes)
        return try self.readResponse(expectBody: method.uppercased() != "HEAD")
    }

    /// `request` with a UTF-8 text body.
    func request(
        method: String = "POST",
        path: String,
        headers: [String: String] = [:],
        body: String
    ) throws -> HTTPTestResponse {
        try self.request(method: method, path: path, headers: headers, body: Array(body.utf8))
    }

    /// Writes GET requests for all `paths` in a single `send` (so they reach the server as one segment when they
    /// fit), then reads one response per path, in order.
    func pipeline(_ paths: [String]) throws -> [HTTPTestResponse] {
        var bytes: [UInt8] = []
        for path in paths {
            bytes += Self.encodeRequest(method: "GET", path: path, port: self.port, headers: [:], body: nil)
        }
        try self.socket.send(bytes)
        return try paths.indices.map { index in
            try self.readResponse(waitingFor: "pipelined response \(index + 1) of \(paths.count)")
        }
    }

    // MARK: Receiving

    /// Reads one complete response: status line, headers, and a body framed by `Content-Length`, chunked encoding,
    /// or (neither given) connection close. 1xx, 204 and 304 have no body.
    /// - Parameters:
    ///   - timeout: budget for the whole response; `self.timeout` if nil.
    ///   - expectBody: false for the answer to a HEAD request.
    func readResponse(timeout: TimeInterval? = nil, expectBody: Bool = true) throws -> HTTPTestResponse {
        try self.readResponse(timeout: timeout, expectBody: expectBody, waitingFor: "an HTTP response")
    }

    /// True if the server closes the connection (read returns 0 or ECONNRESET) within `seconds`. Bytes that arrive
    /// first are kept, so `readResponse()` still returns e.g. the 400 sent before the close. Any other socket error
    /// also counts as closed: the connection is unusable either way.
    func isClosedByPeer(within seconds: TimeInterval) -> Bool {
        (try? self.socket.waitForClose(deadline: TestDeadline(seconds: seconds))) ?? true
    }

    /// True if at least one byte is waiting or arrives within `seconds`. Used to assert silence, e.g. that a plain
    /// HTTP keep-alive connection got nothing from a WebSocket broadcast. A close without data returns false; pair
    /// with `isClosedByPeer(within:)` when a close matters too.
    func receivedAnything(within seconds: TimeInterval) -> Bool {
        (try? self.socket.receivedAnything(deadline: TestDeadline(seconds: seconds))) ?? false
    }

    private func readResponse(
        timeout: TimeInterval? = nil,
        expectBody: Bool = true,
        waitingFor what: String
    ) throws -> HTTPTestResponse {
        let deadline = TestDeadline(seconds: timeout ?? self.timeout)
        return try HTTPResponseParser.read(
            from: self.socket, deadline: deadline, expectBody: expectBody, waitingFor: what)
    }

    static func encodeRequest(
        method: String,
        path: String,
        port: Int,
        headers: [String: String],
        body: [UInt8]?
    ) -> [UInt8] {
        var fields = headers.sorted { $0.key < $1.key }
        let names = Set(headers.keys.map { $0.lowercased() })
        if !names.contains("host") {
            fields.insert((key: "Host", value: "127.0.0.1:\(port)"), at: 0)
        }
        if let body, !names.contains("content-length"), !names.contains("transfer-encoding") {
            fields.append((key: "Content-Length", value: "\(body.count)"))
        }
        var text = "\(method) \(path) HTTP/1.1\r\n"
        for (name, value) in fields {
            text += "\(name): \(value)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8) + (body ?? [])
    }
}

@available(*, unavailable)
extension HTTPTestClient: Sendable {}   // one owner: a connection's bytes are read in order by one test thread

/// Reads one HTTP/1.x response off a TestSocket; shared with the WebSocket upgrade.
enum HTTPResponseParser {
    private static let crlf: [UInt8] = [0x0D, 0x0A]

    static func read(
        from socket: TestSocket,
        deadline: TestDeadline,
        expectBody: Bool,
        waitingFor what: String
    ) throws -> HTTPTestResponse {
        let headBytes = try socket.read(until: Self.crlf + Self.crlf, deadline: deadline, waitingFor: what)
        let head = String(decoding: headBytes, as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()

        // "HTTP/1.1 200 OK": the reason phrase may be empty or contain spaces.
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]), (100...999).contains(status)
        else {
            throw TestClientError.malformedResponse(
                reason: "bad status line \"\(statusLine)\"", bufferedBytes: headBytes)
        }
        var response = HTTPTestResponse(
            version: String(parts[0]),
            status: status,
            reason: parts.count > 2 ? String(parts[2]) : "",
            headers: [],
            body: [],
            wasChunked: false
        )
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else {
                throw TestClientError.malformedResponse(
                    reason: "header line without colon \"\(line)\"", bufferedBytes: headBytes)
            }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            response.headers.append((name: name, value: value))
        }

        // RFC 9112 section 6.3: these never have a body whatever the headers say.
        if !expectBody || (100..<200).contains(status) || status == 204 || status == 304 {
            return response
        }
        let what = "the body of \(statusLine)"
        let encoding = response.headers(named: "Transfer-Encoding").joined(separator: ",").lowercased()
        if encoding.split(separator: ",").last?.trimmingCharacters(in: .whitespaces) == "chunked" {
            response.wasChunked = true
            response.body = try Self.readChunked(from: socket, deadline: deadline, waitingFor: what)
        } else if let lengthText = response.header("Content-Length") {
            let lengths = Set(response.headers(named: "Content-Length"))
            guard lengths.count == 1, let length = Int(lengthText), length >= 0 else {
                throw TestClientError.malformedResponse(
                    reason: "bad Content-Length \(response.headers(named: "Content-Length"))", bufferedBytes: headBytes)
            }
            response.body = try socket.read(exactly: length, deadline: deadline, waitingFor: what)
        } else {
            response.body = try socket.readToEnd(deadline: deadline, waitingFor: what + " (delimited by close)")
        }
        return response
    }

    private static func readChunked(
        from socket: TestSocket,
        deadline: TestDeadline,
        waitingFor what: String
    ) throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let sizeBytes = try socket.read(until: Self.crlf, deadline: deadline, waitingFor: what)
            let sizeLine = String(decoding: sizeBytes, as: UTF8.self)
            // Chunk extensions (";name=value") are legal and ignored.
            let sizeText = sizeLine.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw TestClientError.malformedResponse(
                    reason: "bad chunk size line \"\(sizeLine)\"", bufferedBytes: socket.buffer)
            }
            if size == 0 {
                // Trailer fields, if any, end with an empty line; they are dropped.
                while try !socket.read(until: Self.crlf, deadline: deadline, waitingFor: what).isEmpty {}
                return body
            }
            body += try socket.read(exactly: size, deadline: deadline, waitingFor: what)
            guard try socket.read(exactly: 2, deadline: deadline, waitingFor: what) == Self.crlf else {
                throw TestClientError.malformedResponse(
                    reason: "chunk of \(size) bytes not followed by CRLF", bufferedBytes: socket.buffer)
            }
        }
    }
}
