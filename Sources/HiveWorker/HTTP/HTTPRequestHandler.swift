import HiveIPC
import NIOCore
import NIOHTTP1

/// Plain HTTP/1.1 for one connection: collects a request within the limits, calls the application's request
/// hook, writes the response, and keeps the connection alive between requests for at most --http-idle-timeout.
///
/// Pipelined requests need no NIO `HTTPServerPipelineHandler`: the request hook is synchronous, so each response is
/// written, whole, before the decoder hands over the next request, and responses leave in request order. (That
/// handler cost about 9 % of `GET /hello` throughput.) After a response that closes the connection, further
/// requests already read are ignored.
final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Waiting for a request head; the timer closes a client that takes too long (slowloris).
        case idle
        case receiving(HTTPRequestHead, body: [UInt8])
        /// A limit was hit and the error response is out, or a response said `Connection: close`: everything else is
        /// ignored until the close.
        case failed
    }

    private let id: ConnectionID
    private let hive: Hive
    private var state = State.idle
    /// Requests read while the connection's output was over --max-output-buffer, answered in order once it drains.
    /// The record handler holds further reads meanwhile, so this holds at most what one read had already brought:
    /// a client that pipelines requests and never reads the answers costs requests, not responses.
    private var waiting = CircularBuffer<(head: HTTPRequestHead, body: [UInt8])>()
    /// When the connection is closed unless something re-arms it (slowloris, stalled body, idle keep-alive).
    /// One scheduled task per connection re-checks this deadline when it fires, so arming costs a clock read per
    /// request instead of a timer allocation and a heap insertion.
    private var deadline = NIODeadline.distantFuture
    private var timer: Scheduled<Void>?
    /// When `timer` fires; a deadline at or after it needs no new task.
    private var timerFiresAt = NIODeadline.distantFuture

    init(id: ConnectionID, hive: Hive) {
        self.id = id
        self.hive = hive
    }

    func handlerAdded(context: ChannelHandlerContext) {
        armHeadTimer(context: context, after: hive.limits.handshakeTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            deadline = .distantFuture
            if Self.headSize(head) > hive.limits.maxHeaderSize {
                return fail(context: context, status: .requestHeaderFieldsTooLarge,
                            message: "request line and headers exceed \(hive.limits.maxHeaderSize) bytes")
            }
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > hive.limits.maxBodySize {
                return fail(context: context, status: .payloadTooLarge,
                            message: "request body of \(length) bytes exceeds \(hive.limits.maxBodySize) bytes")
            }
            state = .receiving(head, body: [])
            // A body that stalls holds a connection and a registry slot as surely as a slow head: every chunk
            // must arrive within the handshake timeout of the previous one.
            if Self.expectsBody(head) { armHeadTimer(context: context, after: hive.limits.handshakeTimeout) }
        case (.body(let chunk), .receiving(let head, var body)):
            armHeadTimer(context: context, after: hive.limits.handshakeTimeout)
            guard body.count + chunk.readableBytes <= hive.limits.maxBodySize else {
                return fail(context: context, status: .payloadTooLarge,
                            message: "request body exceeds \(hive.limits.maxBodySize) bytes")
            }
            state = .failed  // drop the reference so appending does not copy
            body += chunk.readableBytesView
            state = .receiving(head, body: body)
        case (.end, .receiving(let head, let body)):
            deadline = .distantFuture
            state = .idle
            if context.channel.isWritable && waiting.isEmpty {
                respond(context: context, head: head, body: body)
            } else {
                waiting.append((head, body))
            }
        case (_, .failed):
            break
        default:
            fail(context: context, status: .badRequest, message: "unexpected request part")
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        while context.channel.isWritable, !waiting.isEmpty {
            if case .failed = state { break }
            let (head, body) = waiting.removeFirst()
            respond(context: context, head: head, body: body)
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        hive.logger.debug("malformed HTTP request", metadata: ["connection.id": "\(id)", "error": "\(parserError)"])
        switch parserError {
        case .headerOverflow:
            fail(context: context, status: .requestHeaderFieldsTooLarge,
                 message: "request line and headers exceed \(hive.limits.maxHeaderSize) bytes")
        default:
            fail(context: context, status: .badRequest, message: "malformed HTTP request (\(parserError))")
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, body: [UInt8]) {
        let request = HiveRequest(
            connection: id, method: head.method.rawValue, uri: head.uri,
            headers: head.headers.map { ($0.name, $0.value) }, body: body
        )
        hive.registry.add(1, to: .requests, of: id)
        hive.registry.increment(worker: hive.workerID, .requests)
        var response: HiveResponse
        do {
            response = try hive.application.request(request, hive: hive)
        } catch {
            hive.logger.error(
                "request hook failed; answering 500",
                metadata: ["connection.id": "\(id)", "http.path": "\(request.path)", "error": "\(error)"]
            )
            response = .text("internal server error\n", status: 500)
        }
        let keepAlive = head.isKeepAlive
        write(context: context, response: response, version: head.version, keepAlive: keepAlive)
        if keepAlive {
            armHeadTimer(context: context, after: hive.limits.httpIdleTimeout)
        } else {
            state = .failed
            context.close(promise: nil)
        }
    }

    /// Answers an error and closes: after a limit or a parse error the rest of the stream cannot be trusted.
    /// The close is staged (RFC 9112 section 9.6): stop writing, keep reading and discarding for a moment, then
    /// close. Closing with unread input at once makes the kernel send a reset, which can destroy the error
    /// response before the client reads it.
    private func fail(context: ChannelHandlerContext, status: HTTPResponseStatus, message: String) {
        if case .failed = state { return }
        state = .failed
        hive.registry.increment(worker: hive.workerID, .protocolErrors)
        let response = HiveResponse.text("\(status.code) \(status.reasonPhrase): \(message)\n", status: Int(status.code))
        write(context: context, response: response, version: .http1_1, keepAlive: false)
        let channel = context.channel
        context.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }
        armHeadTimer(context: context, after: Self.lingerAfterError)
    }

    /// How long a connection that failed keeps draining input before it is closed.
    static let lingerAfterError: TimeAmount = .seconds(1)

    private func write(context: ChannelHandlerContext, response: HiveResponse, version: HTTPVersion, keepAlive: Bool) {
        var headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private func armHeadTimer(context: ChannelHandlerContext, after timeout: TimeAmount) {
        deadline = NIODeadline.now() + timeout
        if timer == nil || deadline < timerFiresAt { scheduleTimer(context: context) }
    }

    private func scheduleTimer(context: ChannelHandlerContext) {
        timer?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timerFiresAt = deadline
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = bound.value
            handler.timer = nil
            handler.timerFiresAt = .distantFuture
            if handler.deadline == .distantFuture { return }  // disarmed; the next arm schedules again
            if NIODeadline.now() >= handler.deadline {
                context.close(promise: nil)
            } else {
                handler.scheduleTimer(context: context)  // re-armed meanwhile: wait for the new deadline
            }
        }
    }

    static func expectsBody(_ head: HTTPRequestHead) -> Bool {
        if let length = head.headers.first(name: "content-length") { return length != "0" }
        return head.headers.contains(name: "transfer-encoding")
    }

    /// Request line plus headers as they were on the wire (to within a few bytes of separators).
    static func headSize(_ head: HTTPRequestHead) -> Int {
        var size = head.method.rawValue.utf8.count + head.uri.utf8.count + 12
        for (name, value) in head.headers { size += name.utf8.count + value.utf8.count + 4 }
        return size
    }
}

@available(*, unavailable)
extension HTTPRequestHandler: Sendable {}
