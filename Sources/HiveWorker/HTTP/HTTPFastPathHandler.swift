import HiveIPC
import NIOCore

/// Reads requests with `HTTPFastParser` and hands each straight to the request handler: no NIO decoder, no
/// `HTTPRequestHead`, no `HTTPServerRequestPart`s through the pipeline. A request split across reads is kept until
/// it is whole (its body within the request handler's body timeouts, as NIO's parts would be). On the first bytes
/// the parser does not take (a chunked body, an upgrade, anything malformed or over a limit), NIO's HTTP handlers
/// join the pipeline behind this one, receive those bytes and everything after them, and this handler leaves for
/// good: every refusal, the WebSocket upgrade and every limit stay NIO's and `HTTPRequestHandler`'s.
final class HTTPFastPathHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let id: ConnectionID
    private let hive: HiveServer
    private let requests: HTTPRequestHandler
    /// Counts the bytes of each read (`readsCountedAhead`) until the hand-over.
    private let record: ConnectionRecordHandler
    /// A request was read here. NIO's upgrade handler looks at a connection's first request only (a later
    /// `Upgrade` request is an ordinary one), so after one it is not added on hand-over.
    private var readAny = false
    /// The start of a request whose rest is still to come (nil between requests: nothing kept).
    private var partial: ByteBuffer?
    /// The size of the partial request once its head is read (its body is arriving), else nil.
    private var partialTotal: Int?
    /// A request without keep-alive was read: nothing after it is a request (RFC 9112 section 9.6).
    private var closing = false

    init(id: ConnectionID, hive: HiveServer, requests: HTTPRequestHandler, record: ConnectionRecordHandler) {
        self.id = id
        self.hive = hive
        self.requests = requests
        self.record = record
    }

    func handlerAdded(context: ChannelHandlerContext) {
        record.readsCountedAhead = true
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        record.readsCountedAhead = false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        record.countRead(bytes: buffer.readableBytes)
        if closing { return }
        if var partial = partial.take() {
            partial.writeBuffer(&buffer)
            buffer = partial
        }
        let (maxHeaderSize, maxBodySize) = (hive.limits.maxHeaderSize, hive.limits.maxBodySize)
        while buffer.readableBytes > 0 {
            // After an error answer or a `Connection: close` response the request handler ignores what follows.
            if requests.isDiscarding { return }
            if let total = partialTotal, buffer.readableBytes < total {
                requests.bodyArriving()
                partial = buffer
                return
            }
            let outcome = buffer.withUnsafeReadableBytes {
                HTTPFastParser.parse($0, maxHeaderSize: maxHeaderSize, maxBodySize: maxBodySize)
            }
            switch outcome {
            case .request(let request, let consumed):
                buffer.moveReaderIndex(forwardBy: consumed)
                partialTotal = nil
                readAny = true
                closing = !request.keepAlive
                requests.received(request)
                if closing { return }
            case .needMore:
                partial = buffer
                return
            case .needBody(let total, let path):
                partialTotal = total
                requests.bodyStarted(path: path)
                partial = buffer
                return
            case .handOver:
                return handOver(context: context, rest: buffer)
            }
        }
    }

    /// NIO's decoder (and, before the first request, the upgrade handler) continue the connection from `rest`.
    private func handOver(context: ChannelHandlerContext, rest: ByteBuffer) {
        do {
            try WorkerPipeline.addNIOHTTPHandlers(
                context.pipeline.syncOperations, after: self, id: id, hive: hive, upgrade: !readAny,
                eventLoop: context.eventLoop)
        } catch {
            hive.logger.error(
                "closing an HTTP connection: NIO's HTTP handlers could not be added to its pipeline",
                metadata: ["connection.id": "\(id)", "error": "\(error)"])
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(rest))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Not passed on while this handler reads the connection: the handlers after it have no use for it (NIO's
    /// decoder, after a hand-over, gets it from the record handler), and each hop cost about 80 instructions a read.
    func channelReadComplete(context: ChannelHandlerContext) {}
}

@available(*, unavailable)
extension HTTPFastPathHandler: Sendable {}
