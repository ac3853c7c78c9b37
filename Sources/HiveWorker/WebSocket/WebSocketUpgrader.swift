import Foundation
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The WebSocket side of the HTTP upgrade (RFC 6455 4.2): checks the handshake headers, answers with
/// `Sec-WebSocket-Accept`, and installs the connection's `WebSocketFrameHandler`.
///
/// It does what NIO's `NIOWebSocketServerUpgrader` does, except that it adds no frame encoder and decoder handlers
/// (the frame handler parses and writes bytes itself; those two handlers, with their contexts and buffers, were
/// about 0.7 KB of every idle connection), and that it checks the handshake as RFC 6455 section 4.2.1 asks and
/// refuses a bad one with a `WebSocketHandshakeError` (400, 403 or 426), which `HTTPRequestHandler` answers, instead
/// of passing the request on as plain HTTP. Only a valid handshake to a path the application does not upgrade
/// (`shouldUpgrade` says no) goes on as a plain request.
struct WebSocketUpgrader: HTTPServerProtocolUpgrader, Sendable {
    /// RFC 6455's GUID, appended to the client's key before hashing.
    static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    let supportedProtocol = "websocket"
    /// None: RFC 6455 does not make the client list its headers in `Connection`, which NIO would require.
    let requiredUpgradeHeaders: [String] = []

    /// Which pages may open a WebSocket (`--allowed-origin`).
    let origins: OriginPolicy
    /// Decides whether this request may become a WebSocket (nil: no, the request is answered as plain HTTP).
    let shouldUpgrade: @Sendable (Channel, HTTPRequestHead) -> EventLoopFuture<HTTPHeaders?>
    /// Builds the WebSocket pipeline; runs on the channel's event loop once the 101 response is written.
    let upgradePipeline: @Sendable (Channel, HTTPRequestHead) throws -> Void

    func buildUpgradeResponse(
        channel: Channel,
        upgradeRequest: HTTPRequestHead,
        initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        let key: String
        switch Self.check(upgradeRequest, origins: origins) {
        case .success(let valid): key = valid
        case .failure(let error): return channel.eventLoop.makeFailedFuture(error)
        }
        // A handshake has no body (RFC 6455 4.1), and one with a body is answered as plain HTTP. Accepting it would
        // make NIO's upgrade handler keep the upgrade it runs at the request's end in a closure that holds the
        // handler and its context: a connection that ended before its body did leaked them for good.
        guard !RequestHeadFacts(upgradeRequest).expectsBody else {
            return channel.eventLoop.makeFailedFuture(NIOWebSocketUpgradeError.invalidUpgradeHeader)
        }
        let accept = Self.acceptValue(forKey: key)
        return self.shouldUpgrade(channel, upgradeRequest).flatMapThrowing { extraHeaders in
            guard var response = extraHeaders else {
                throw NIOWebSocketUpgradeError.unsupportedWebSocketTarget
            }
            response.replaceOrAdd(name: "Upgrade", value: "websocket")
            response.add(name: "Sec-WebSocket-Accept", value: accept)
            response.replaceOrAdd(name: "Connection", value: "upgrade")
            return response
        }
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        return channel.eventLoop.makeCompletedFuture {
            try self.upgradePipeline(channel, upgradeRequest)
        }
    }

    /// The client's `Sec-WebSocket-Key` when the handshake is one RFC 6455 section 4.2.1 allows from this page, or
    /// what is wrong with it: a GET over HTTP/1.1 or later with one `Host`, `Connection: Upgrade`, a key of 16 bytes in
    /// base64 (400 otherwise), version 13 (426 with the version this server speaks otherwise), and an `Origin` the
    /// policy accepts (403 otherwise).
    static func check(_ head: HTTPRequestHead, origins: OriginPolicy) -> Result<String, WebSocketHandshakeError> {
        func refuse(_ status: HTTPResponseStatus, _ message: String, headers: [(String, String)] = [])
            -> Result<String, WebSocketHandshakeError>
        {
            .failure(WebSocketHandshakeError(status: status, message: message, headers: headers))
        }
        let headers = head.headers
        let facts = RequestHeadFacts(head)
        if let problem = facts.hostProblem(version: head.version) { return refuse(.badRequest, problem) }
        guard head.method == .GET else {
            return refuse(.badRequest, "a WebSocket upgrade must be a GET request, got \(head.method.rawValue)")
        }
        guard head.version.isAtLeast11 else {
            let version = "HTTP/\(head.version.major).\(head.version.minor)"
            return refuse(.badRequest, "a WebSocket upgrade needs HTTP/1.1 or later, got \(version)")
        }
        let connection = headers[canonicalForm: "Connection"]
        guard connection.contains(where: { $0.lowercased() == "upgrade" }) else {
            let got = connection.isEmpty ? "none" : "\"\(connection.joined(separator: ", ").prefix(100))\""
            return refuse(.badRequest, "a WebSocket upgrade needs the header \"Connection: Upgrade\", got \(got)")
        }
        let keys = headers["Sec-WebSocket-Key"]
        guard keys.count == 1 else {
            return refuse(.badRequest, keys.isEmpty
                ? "a WebSocket upgrade needs a Sec-WebSocket-Key header (16 random bytes in base64)"
                : "a WebSocket upgrade needs exactly one Sec-WebSocket-Key header, got \(keys.count)")
        }
        let key = keys[0]
        guard key.utf8.count == 24, let decoded = Data(base64Encoded: key), decoded.count == 16 else {
            return refuse(.badRequest,
                          "Sec-WebSocket-Key must be 16 bytes in base64 (24 characters), got \"\(key.prefix(100))\"")
        }
        let versions = headers[canonicalForm: "Sec-WebSocket-Version"]
        guard versions == ["13"] else {
            let got = versions.isEmpty ? "none" : versions.joined(separator: ", ")
            return refuse(
                versions.isEmpty ? .badRequest : .upgradeRequired,
                "this server speaks WebSocket version 13 (RFC 6455); the request's Sec-WebSocket-Version is"
                    + " \(got.prefix(100))",
                headers: [("Sec-WebSocket-Version", "13")])
        }
        let authority = RequestTarget.absoluteForm(head.uri)?.authority ?? facts.host.map { Substring($0) }
        let originHeaders = headers["Origin"]
        if originHeaders.count > 1 {
            return refuse(.forbidden, "a WebSocket upgrade may have one Origin header, got \(originHeaders.count)")
        }
        if let refusal = origins.refusal(origin: originHeaders.first, host: authority) {
            return refuse(.forbidden, refusal)
        }
        return .success(key)
    }

    /// base64(SHA-1(key + GUID)), RFC 6455 4.2.2 item 5.
    static func acceptValue(forKey key: String) -> String {
        Data(SHA1.digest(Array((key + acceptGUID).utf8))).base64EncodedString()
    }
}

/// A handshake that cannot become a WebSocket: answered with `status` and `message`, then closed.
struct WebSocketHandshakeError: Error, CustomStringConvertible {
    var status: HTTPResponseStatus
    /// One sentence saying what was wrong, for the client (the response body) and the log.
    var message: String
    /// Extra response headers (426: the version this server speaks).
    var headers: [(String, String)] = []

    var description: String { "\(status.code) \(status.reasonPhrase): \(message)" }
}
