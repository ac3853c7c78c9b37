import HiveIPC
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// Builds the pipeline of an adopted connection: HTTP/1.1 with a WebSocket upgrader on the same port.
///
///     head | record | http fast path | http request handler | tail
///     (the fast path parses the common requests itself and hands them to the request handler directly; the
///     request handler writes its responses' bytes through the record handler: HTTPResponseBytes)
///     from the first request the fast path does not take, for good (`addNIOHTTPHandlers`):
///     head | record | http encoder (the 101 only), decoder, upgrade | http request handler | tail
///     after an upgrade:  head | ws frame handler (parses frames, writes encoded ones; keeps the record) | tail
enum WorkerPipeline {
    static let httpHandlerName = "hive.http"

    static func configure(_ channel: Channel, id: ConnectionID, socket: Int32, hive: HiveServer) throws {
        let pipeline = channel.pipeline.syncOperations
        let record = ConnectionRecordHandler(id: id, socket: socket, hive: hive)
        try pipeline.addHandler(record)
        let requests = HTTPRequestHandler(id: id, hive: hive)
        try pipeline.addHandler(HTTPFastPathHandler(id: id, hive: hive, requests: requests, record: record))
        try pipeline.addHandler(requests, name: httpHandlerName)
    }

    /// NIO's HTTP/1.1 server handlers, after `fastPath`: the decoder, and with `upgrade` (before the connection's
    /// first request) the upgrade handler with the WebSocket upgrader and the encoder for its 101.
    static func addNIOHTTPHandlers(
        _ pipeline: ChannelPipeline.SynchronousOperations, after fastPath: HTTPFastPathHandler, id: ConnectionID,
        hive: HiveServer, upgrade: Bool, eventLoop: EventLoop
    ) throws {
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderFieldSize = hive.limits.maxHeaderSize
        decoderLimits.maxHeaderListSize = hive.limits.maxHeaderSize
        let decoder = ByteToMessageHandler(
            HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: decoderLimits))
        guard upgrade else {
            try pipeline.addHandler(decoder, position: .after(fastPath))
            return
        }
        // The verified token, from the handshake check to the upgrade; made only when a token key is configured.
        let verified = hive.tokens.map { _ in NIOLoopBoundBox<HiveToken?>(nil, eventLoop: eventLoop) }
        let upgrader = WebSocketUpgrader(
            origins: hive.originPolicy,
            shouldUpgrade: { channel, head in
                let path = webSocketPath(head)
                guard hive.hooks.shouldUpgrade(path: path) else {
                    return channel.eventLoop.makeSucceededFuture(nil)
                }
                if let tokens = hive.tokens, let verified,
                   let refusal = HandshakeToken.refusal(head, verifier: tokens, into: verified)
                {
                    return channel.eventLoop.makeFailedFuture(refusal)
                }
                let channels = ChannelQuery.channels(inTarget: head.uri)
                if case .failure(let refusal) = channels {
                    return channel.eventLoop.makeFailedFuture(
                        WebSocketHandshakeError(status: .badRequest, message: refusal.message))
                }
                if case .failure(let refusal) = EnvelopeQuery.parse(target: head.uri, channels: (try? channels.get()) ?? []) {
                    return channel.eventLoop.makeFailedFuture(
                        WebSocketHandshakeError(status: .badRequest, message: refusal.message))
                }
                hive.registry.setProtocol(id, .websocketHandshake)
                var headers = HTTPHeaders()
                if let agreement = compressionAgreement(head, hive: hive) {
                    headers.add(name: "Sec-WebSocket-Extensions", value: agreement.responseHeader)
                }
                return channel.eventLoop.makeSucceededFuture(headers)
            },
            upgradePipeline: { channel, head in
                try upgradeToWebSocket(channel, head: head, id: id, hive: hive, token: verified?.value)
            }
        )
        // NIO's server pipeline without its response side: HTTPRequestHandler writes whole responses as bytes
        // (HTTPResponseBytes). The encoder stays for the upgrade handler's 101 alone, so the decoder does not tell
        // it request methods (it would queue one per request for responses that never pass it), and NIO's header
        // validator is left out (swift-http-types checked the fields; the 101's are Hive's own).
        let encoder = HTTPResponseEncoder(configuration: .init())
        let upgradeHandler = HTTPServerUpgradeHandler(
            upgraders: [upgrader], httpEncoder: encoder, extraHTTPHandlers: [decoder],
            upgradeCompletionHandler: { context in
                // Frames must never reach the HTTP handler: it would fail to unwrap them.
                _ = context.pipeline.removeHandler(name: httpHandlerName)
            })
        try pipeline.addHandlers([encoder, decoder, upgradeHandler], position: .after(fastPath))
    }

    /// The permessage-deflate agreement for this upgrade request: nil when --compression is off, the client offers
    /// nothing acceptable, or the worker could not make its zlib state.
    private static func compressionAgreement(_ head: HTTPRequestHead, hive: HiveServer) -> PerMessageDeflate.Agreement? {
        guard hive.limits.compression else { return nil }
        return PerMessageDeflate.negotiate(head.headers["Sec-WebSocket-Extensions"])
    }

    /// The path of an upgrade request without its query; an absolute-form target counts by its path too.
    private static func webSocketPath(_ head: HTTPRequestHead) -> String {
        let target = RequestTarget.absoluteForm(head.uri)?.originForm ?? head.uri
        return String(target.prefix { $0 != "?" })
    }

    private static func upgradeToWebSocket(
        _ channel: Channel, head: HTTPRequestHead, id: ConnectionID, hive: HiveServer, token: HiveToken?
    ) throws {
        let pipeline = channel.pipeline.syncOperations
        let record = try pipeline.handler(type: ConnectionRecordHandler.self)
        // NIO's upgrade runs on even if the connection ended meanwhile (bytes after the request that fail to parse
        // close it with a 400): a session registered now would outlive the end that already cleaned up.
        guard channel.isActive, !record.ended, let hooks = record.hooks else {
            throw ChannelError.ioOnClosedChannel
        }
        if let token { hive.bindTokenSubject(id, token) }
        var connection = HiveConnection(
            id: id,
            path: webSocketPath(head),
            remote: hive.registry.lookup(id, withUser: false)?.remote ?? .unknown,
            user: hive.userIndex.user(of: id)  // bound during the handshake (a token's subject)
        )
        connection.token = token
        // The same answer as the 101 response's: a pure function of the request.
        let compression = compressionAgreement(head, hive: hive)
        let inflater = compression.flatMap { _ in hive.table.compression(minSize: hive.limits.compressionMinSize) }
        let frameHandler = WebSocketFrameHandler(sharedLimits: hive.sharedWebSocketLimits, delegate: nil, inflater: inflater)
        let session = WebSocketSession(
            connection: connection, channel: channel, socket: record.socket, frameHandler: frameHandler,
            hooks: hooks, hive: hive, compression: inflater == nil ? nil : compression
        )
        frameHandler.delegate = session
        try pipeline.addHandler(UpgradeLeftoverHandler())
        try pipeline.addHandler(frameHandler)
        // The frame handler keeps the record from the next tick on, and the record handler leaves: by then NIO's
        // upgrade handler has handed on the bytes it buffered, which the record handler counted when they were read
        // (the frame handler would count them again).
        let handlers = NIOLoopBound((record, frameHandler), eventLoop: channel.eventLoop)
        channel.eventLoop.execute {
            let (record, frameHandler) = handlers.value
            // A connection that ended meanwhile was ended by the record handler, which leaves with the pipeline.
            guard !record.ended, let moved = record.takeRecord() else { return }
            frameHandler.keepRecord(moved)
            channel.pipeline.syncOperations.removeHandler(record, promise: nil)
        }
        hive.registry.setProtocol(id, .websocket)
        hive.table.addSession(session)
        hooks.waitingBeforeHold = HiveServer.messagesBeforeHold
        // Checked in shouldUpgrade: a bad list was answered 400 and never reaches here.
        let channels = (try? ChannelQuery.channels(inTarget: head.uri).get()) ?? []
        let envelope = (try? EnvelopeQuery.parse(target: head.uri, channels: channels).get()) ?? EnvelopeQuery()
        if envelope.envelope { hive.channelIndex.useEnvelopes(id) }
        for name in channels {
            do {
                try hive.changeSubscriptionHere(id, name, subscribe: true)
            } catch {
                // The channel table is full: the client learns it from the close reason (and may retry later).
                hive.logger.warning("closing a new WebSocket: a channel of its ?channels= cannot be joined",
                                    metadata: ["connection.id": "\(id)", "channel": "\(name)", "error": "\(error)"])
                session.close(code: WebSocketErrorCode(codeNumber: 1013), reason: "channel table full: \(name)")
                return
            }
        }
        if let since = envelope.since, let name = channels.first { hive.recover(id, in: name, since: since) }
        session.opened()
    }
}
