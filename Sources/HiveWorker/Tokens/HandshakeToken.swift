import HiveIPC
import NIOCore
import NIOHTTP1

/// The token check of a WebSocket handshake, when a key is configured (`HiveServer.tokens`): the upgrade request
/// must carry a JWT that `TokenVerifier` accepts (401 otherwise), and every channel of its `?channels=` must be one
/// the token allows (403 otherwise). Plain HTTP requests never come here: only upgrades the application accepts.
enum HandshakeToken {
    /// The token of an upgrade request: from an `Authorization: Bearer` header if there is one (an `Authorization`
    /// of another scheme is ignored), else from the `token` query parameter (percent-decoded), else nil.
    static func token(in head: HTTPRequestHead) -> String? {
        for value in head.headers["Authorization"] {
            let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return String(parts[1].drop { $0 == " " })
            }
        }
        let target = head.uri
        guard let mark = target.firstIndex(of: "?") else { return nil }
        for pair in target[target.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == "token", parts.count == 2 else { continue }
            return String(decoding: PercentDecoding.bytes(parts[1], plusIsSpace: false), as: UTF8.self)
        }
        return nil
    }

    /// Checks the handshake's token and, with it, the channels the client asks for. On success the verified token
    /// is stored in `verified`, for the upgrade that follows on the same event loop.
    /// - Returns: the refusal to answer (401 or 403), or nil.
    static func refusal(
        _ head: HTTPRequestHead, verifier: TokenVerifier, into verified: NIOLoopBoundBox<HiveToken?>
    ) -> WebSocketHandshakeError? {
        guard let text = token(in: head) else { return unauthorized(.missing) }
        let token: HiveToken
        switch verifier.verify(text) {
        case .failure(let refusal): return unauthorized(refusal)
        case .success(let valid): token = valid
        }
        // A list that is itself invalid is answered 400 by the channel check that follows.
        if case .success(let channels) = ChannelQuery.channels(inTarget: head.uri),
           let denied = channels.first(where: { !token.allows(channel: $0) })
        {
            return WebSocketHandshakeError(
                status: .forbidden,
                message: "the token does not allow channel \(denied): it \(token.allowedDescription); ask for a "
                    + "token whose channels claim lists it"
            )
        }
        verified.value = token
        return nil
    }

    /// 401 with RFC 6750's `WWW-Authenticate` challenge; the body says why, never what the token was.
    static func unauthorized(_ refusal: TokenRefusal) -> WebSocketHandshakeError {
        let challenge = refusal == .missing ? "Bearer realm=\"hive\"" : "Bearer realm=\"hive\", error=\"invalid_token\""
        return WebSocketHandshakeError(
            status: .unauthorized, message: refusal.message, headers: [("WWW-Authenticate", challenge)]
        )
    }
}

extension HiveServer {
    /// The connection opened with a verified token: its `sub` is the connection's user, bound before its
    /// `HiveConnection` is made, so `open` already sees it and `hive connections` shows it.
    func bindTokenSubject(_ id: ConnectionID, _ token: HiveToken) {
        do {
            try bindLocal(id, user: token.subject)
        } catch {
            // The subject was checked with the token (the same rules): only a connection that ended meanwhile.
            logger.warning("a token's subject could not be bound to its connection",
                           metadata: ["connection.id": "\(id)", "error": "\(error)"])
        }
    }
}
