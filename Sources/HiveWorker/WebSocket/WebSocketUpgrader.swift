import Foundation
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The WebSocket side of the HTTP upgrade (RFC 6455 4.2): checks the handshake headers, answers with
/// `Sec-WebSocket-Accept`, and installs the connection's `WebSocketFrameHandler`.
///
/// It does what NIO's `NIOWebSocketServerUpgrader` does, with the same errors, except that it adds no frame encoder
/// and decoder handlers: the frame handler parses and writes bytes itself. Those two handlers, with their
/// contexts and buffers, were about 0.7 KB of every idle connection.
struct WebSocketUpgrader: HTTPServerProtocolUpgrader, Sendable {
    /// RFC 6455's GUID, appended to the client's key before hashing.
    static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    let supportedProtocol = "websocket"
    /// None: RFC 6455 does not make the client list its headers in `Connection`, which NIO would require.
    let requiredUpgradeHeaders: [String] = []

    /// Decides whether this request may become a WebSocket (nil: no, the request is answered as plain HTTP).
    let shouldUpgrade: @Sendable (Channel, HTTPRequestHead) -> EventLoopFuture<HTTPHeaders?>
    /// Builds the WebSocket pipeline; runs on the channel's event loop once the 101 response is written.
    let upgradePipeline: @Sendable (Channel, HTTPRequestHead) throws -> Void

    func buildUpgradeResponse(
        channel: Channel,
        upgradeRequest: HTTPRequestHead,
        initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        let headers = upgradeRequest.headers
        let keys = headers[canonicalForm: "Sec-WebSocket-Key"]
        let versions = headers[canonicalForm: "Sec-WebSocket-Version"]
        guard keys.count == 1, versions.count == 1, versions[0] == "13" else {
            return channel.eventLoop.makeFailedFuture(NIOWebSocketUpgradeError.invalidUpgradeHeader)
        }
        // A handshake has no body (RFC 6455 4.1), and one with a body is answered as plain HTTP. Accepting it would
        // make NIO's upgrade handler keep the upgrade it runs at the request's end in a closure that holds the
        // handler and its context: a connection that ended before its body did leaked them for good.
        guard !HTTPRequestHandler.expectsBody(upgradeRequest) else {
            return channel.eventLoop.makeFailedFuture(NIOWebSocketUpgradeError.invalidUpgradeHeader)
        }
        let accept = Self.acceptValue(forKey: String(keys[0]))
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

    /// base64(SHA-1(key + GUID)), RFC 6455 4.2.2 item 5.
    static func acceptValue(forKey key: String) -> String {
        Data(SHA1.digest(Array((key + acceptGUID).utf8))).base64EncodedString()
    }
}
