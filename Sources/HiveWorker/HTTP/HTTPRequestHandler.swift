import HTTPTypes
import HiveIPC
import NIOCore
import NIOHTTP1

/// Plain HTTP/1.1 for one connection: collects a request within the limits, calls the application's request
/// hook, writes the response, and keeps the connection alive between requests for at most --http-idle-timeout.
/// Requests come whole from `HTTPFastPathHandler` (`received`), or as NIO's request parts once the fast path
/// handed the connection to NIO's decoder.
///
/// Pipelined requests need no NIO `HTTPServerPipelineHandler`: one request hook runs at a time (the connection's
/// `HookQueue`), a request read while one is in flight waits in `waiting`, and responses leave in request order.
/// A request the application's synchronous hook (`respondNow`) answers while no hook of the connection is running
/// or waiting is answered at once, without the hook queue; one it leaves, or that arrives behind a hook, goes to
/// the queue. A hook that does not suspend answers before the decoder hands over the next request. (NIO's handler cost about
/// 9 % of `GET /hello` throughput.) After a response that closes the connection, further requests already read are
/// ignored.
final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Waiting for a request head; the timer closes a client that takes too long (slowloris).
        case idle
        case receiving(HTTPRequestHead, body: [UInt8])
        /// The fast path read a head (of `path`) whose body is still arriving; it delivers the request whole.
        case receivingFastBody(path: String)
        /// A limit was hit and the error response is out, or a response said `Connection: close`: everything else is
        /// ignored until the close.
        case failed
    }

    private let id: ConnectionID
    private let hive: HiveServer
    private var state = State.idle
    /// Requests read while the connection's output was over --max-output-buffer, answered in order once it drains.
    /// The record handler holds further reads meanwhile, so this holds at most what one read had already brought:
    /// a client that pipelines requests and never reads the answers costs requests, not responses.
    /// Made on the first use: `CircularBuffer()` allocates 16 slots, which every connection would pay for nothing.
    private var waiting: CircularBuffer<WaitingRequest>?

    private enum WaitingRequest {
        /// From NIO's decoder: converted to swift-http-types' request when its turn comes (a 400 in order).
        case nio(HTTPRequestHead, body: [UInt8])
        case parsed(ParsedHTTPRequest)
    }
    /// A request hook is running (suspended): further requests wait for its response.
    private var inFlight = false
    /// The request `runRequestHook` answers next: set as it is queued, taken as its hook starts.
    /// A struct, not a tuple: a tuple's copy and destroy go through the runtime's value witnesses (800 instructions).
    private var hookRequest: HookRequest?

    private struct HookRequest {
        let context: ChannelHandlerContext
        let method: HTTPMethod
        let version: HTTPVersion
        let keepAlive: Bool
        let request: HiveRequest
    }
    /// `respondWaiting` is answering waiting requests: a response that completes inside it does not recurse.
    private var answeringWaiting = false
    /// The connection's hooks, from its record handler (requests run in order with its other hooks).
    private var hooks: HookQueue?
    /// The connection's record handler, which writes each response's bytes (`HTTPResponseBytes`) in one write.
    private var record: ConnectionRecordHandler?
    private var context: ChannelHandlerContext?
    /// When the connection is closed unless something re-arms it (slowloris, stalled body, idle keep-alive).
    /// One scheduled task per connection re-checks this deadline when it fires, so arming costs a clock read per
    /// request instead of a timer allocation and a heap insertion.
    private var deadline = NIODeadline.distantFuture
    private var timer: Scheduled<Void>?
    /// When `timer` fires; a deadline at or after it needs no new task.
    private var timerFiresAt = NIODeadline.distantFuture
    /// When the body of the request being received must be complete (--body-timeout after its head).
    private var bodyDeadline = NIODeadline.distantFuture
    /// The Content-Length of the request being received, if it has one.
    private var declaredLength: Int?

    init(id: ConnectionID, hive: HiveServer) {
        self.id = id
        self.hive = hive
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        record = try? context.pipeline.syncOperations.handler(type: ConnectionRecordHandler.self)
        hooks = record?.hooks
        armHeadTimer(context: context, after: hive.limits.handshakeTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    /// After an error answer or a `Connection: close` response: what the client sends is ignored.
    var isDiscarding: Bool {
        if case .failed = state { return true }
        return false
    }

    /// A request `HTTPFastPathHandler` read whole, answered as one NIO's decoder delivered (the fast path took only
    /// a request that passes every check `channelRead` makes of a head).
    func received(_ request: ParsedHTTPRequest) {
        guard let context else { return }
        switch state {
        case .idle, .receivingFastBody: state = .idle
        case .receiving, .failed: return
        }
        deadline = .distantFuture
        if context.channel.isWritable && !inFlight && waiting?.isEmpty ?? true {
            respond(context: context, request)
        } else {
            waiting = waiting ?? CircularBuffer(initialCapacity: 4)
            waiting!.append(.parsed(request))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(var head), .idle):
            deadline = .distantFuture
            let facts = RequestHeadFacts(head)
            if facts.size > hive.limits.maxHeaderSize {
                return fail(context: context, status: .requestHeaderFieldsTooLarge,
                            message: "request line and headers exceed \(hive.limits.maxHeaderSize) bytes")
            }
            if let problem = facts.hostProblem(version: head.version) {
                return fail(context: context, status: .badRequest, message: problem)
            }
            if head.uri.utf8.first != UInt8(ascii: "/"), let absolute = RequestTarget.absoluteForm(head.uri) {
                head.uri = absolute.originForm
            }
            let length = facts.contentLength.flatMap(Int.init)
            if let expect = facts.expect, head.version.isAtLeast11 {
                // RFC 9110 section 10.1.1; an HTTP/1.0 client's expectation is ignored, as the RFC asks.
                guard !expectationFailed(context: context, expect: expect, length: length) else { return }
                if facts.expectsBody {
                    send(context: context, HTTPResponseBytes.continueResponse(
                        version: head.version, allocator: context.channel.allocator))
                }
            }
            if let length, length > hive.limits.maxBodySize {
                return fail(context: context, status: .payloadTooLarge,
                            message: "request body of \(length) bytes exceeds \(hive.limits.maxBodySize) bytes")
            }
            state = .receiving(head, body: [])
            // A body that stalls or trickles holds a connection and a registry slot as surely as a slow head: the
            // whole body must arrive within --body-timeout of the head, and every chunk within the handshake
            // timeout of the previous one.
            if facts.expectsBody {
                let now = NIODeadline.now()  // one clock read for both deadlines
                bodyDeadline = now + hive.limits.bodyTimeout
                arm(context: context, until: min(now + hive.limits.handshakeTimeout, bodyDeadline))
            }
            declaredLength = length
        case (.body(let chunk), .receiving(let head, var body)):
            let count = body.count + chunk.readableBytes
            guard count <= hive.limits.maxBodySize else {
                return fail(context: context, status: .payloadTooLarge,
                            message: "request body exceeds \(hive.limits.maxBodySize) bytes")
            }
            // The chunk that completes a Content-Length body is followed by the request's end in the same read:
            // the deadline armed at the head or the chunk before still holds, and a clock read is saved.
            if count != declaredLength { armBodyTimer(context: context) }
            if body.isEmpty {
                // The common case, a body in one chunk: an array of exactly its size, with no growth on append.
                body = Array(chunk.readableBytesView)
            } else {
                state = .failed  // drop the reference so appending does not copy
                body += chunk.readableBytesView
            }
            state = .receiving(head, body: body)
        case (.end, .receiving(let head, let body)):
            deadline = .distantFuture
            state = .idle
            if context.channel.isWritable && !inFlight && waiting?.isEmpty ?? true {
                respond(context: context, head: head, body: body)
            } else {
                waiting = waiting ?? CircularBuffer(initialCapacity: 4)
                waiting!.append(.nio(head, body: body))
            }
        case (_, .failed):
            break
        default:
            fail(context: context, status: .badRequest, message: "unexpected request part")
        }
    }

    /// The fast path read a head whose body is still to come: the body is due as NIO's would be (every chunk
    /// within the handshake timeout of the previous one, the whole within --body-timeout of the head).
    func bodyStarted(path: String) {
        guard let context, case .idle = state else { return }
        state = .receivingFastBody(path: path)
        let now = NIODeadline.now()
        bodyDeadline = now + hive.limits.bodyTimeout
        arm(context: context, until: min(now + hive.limits.handshakeTimeout, bodyDeadline))
    }

    /// More of the body `bodyStarted` announced arrived, not all of it.
    func bodyArriving() {
        guard let context, case .receivingFastBody = state else { return }
        armBodyTimer(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        respondWaiting(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// Answers the requests that waited for the queue to drain or for a suspended hook, in order, until one
    /// suspends again or the queue fills up.
    private func respondWaiting(context: ChannelHandlerContext) {
        guard !answeringWaiting else { return }
        answeringWaiting = true
        defer { answeringWaiting = false }
        // What waits first: a request answered at once passes here with nothing waiting, and the channel's
        // writability costs a call through the `Channel` existential.
        while waiting?.isEmpty == false, !inFlight, context.channel.isWritable {
            if case .failed = state { break }
            switch waiting!.removeFirst() {
            case .nio(let head, let body): respond(context: context, head: head, body: body)
            case .parsed(let request): respond(context: context, request)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let handshake = error as? WebSocketHandshakeError {
            // A refused origin is worth an operator's notice (a page of theirs may lack --allowed-origin); a
            // malformed handshake is the client's problem.
            hive.logger.log(
                level: handshake.status == .forbidden ? .info : .debug, "WebSocket handshake refused",
                metadata: ["connection.id": "\(id)", "http.status": "\(handshake.status.code)",
                           "reason": "\(handshake.message)"])
            return fail(context: context, status: handshake.status, message: handshake.message,
                        headers: handshake.headers)
        }
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
        let request: HTTPRequest
        do {
            request = try HTTPRequest(head)
        } catch {
            return fail(context: context, status: .badRequest, message: error.message)
        }
        respond(context: context, ParsedHTTPRequest(
            method: head.method, version: head.version, keepAlive: head.isKeepAlive, head: request, body: body))
    }

    private func respond(context: ChannelHandlerContext, _ parsed: ParsedHTTPRequest) {
        hive.registry.add(1, to: .requests, of: id)
        hive.registry.increment(worker: hive.workerID, .requests)
        guard let hooks else { return }
        let request = HiveRequest(head: parsed.head, connection: id, body: parsed.body)
        // Answered at once when the application's synchronous hook can and no hook of the connection is running
        // or waiting (its response would overtake theirs): no task switch, the response leaves in this read.
        if hooks.isIdle, !PublishAPI.matches(request.uri), let response = respondNow(to: request) {
            return answer(context: context, method: parsed.method, version: parsed.version,
                          keepAlive: parsed.keepAlive, response: response)
        }
        inFlight = true
        hookRequest = HookRequest(
            context: context, method: parsed.method, version: parsed.version, keepAlive: parsed.keepAlive,
            request: request)
        hooks.enqueue(.request(self))
    }

    /// The application's synchronous answer, nil when it leaves `request` to the async hook.
    private func respondNow(to request: HiveRequest) -> HiveResponse? {
        do {
            return try hive.hooks.respondNow(to: request, hive: hive)
        } catch {
            return hookFailed(request, error)
        }
    }

    /// A request hook threw: logged, and answered 500 (the client learns nothing of the application's error).
    private func hookFailed(_ request: HiveRequest, _ error: any Error) -> HiveResponse {
        hive.logger.error(
            "request hook failed; answering 500",
            metadata: ["connection.id": "\(id)", "http.path": "\(request.path)", "error": "\(error)"]
        )
        return .text("internal server error\n", status: 500)
    }

    /// Runs the request hook for `hookRequest` and writes its response; called by the connection's `HookQueue`
    /// (on the loop; suspended while the hook is).
    @inline(__always)  // into the queue's runner: one async frame fewer per request
    func runRequestHook() async {
        guard let pending = hookRequest.take() else { return }
        let (context, request) = (pending.context, pending.request)
        let response: HiveResponse
        do {
            // POST /api/publish is Hive's own (PublishAPI); one comparison for every other request. A request that
            // waited for its turn still goes to the synchronous hook first, as it would have had it not waited.
            if PublishAPI.matches(request.uri) {
                response = try await hive.answerPublishAPI(request)
            } else if let now = try hive.hooks.respondNow(to: request, hive: hive) {
                response = now
            } else {
                response = try await hive.hooks.request(request, hive: hive)
            }
        } catch {
            response = hookFailed(request, error)
        }
        inFlight = false
        answer(context: context, method: pending.method, version: pending.version, keepAlive: pending.keepAlive,
               response: response)
    }

    /// Writes the response of a request hook, then answers the requests that waited for it.
    private func answer(
        context: ChannelHandlerContext, method: HTTPMethod, version: HTTPVersion, keepAlive: Bool,
        response: HiveResponse
    ) {
        if case .failed = state { return }
        write(context: context, response: response, method: method, version: version, keepAlive: keepAlive)
        if keepAlive {
            armHeadTimer(context: context, after: hive.limits.httpIdleTimeout)
            respondWaiting(context: context)
        } else {
            state = .failed
            context.close(promise: nil)
        }
    }

    /// Answers an error and closes: after a limit or a parse error the rest of the stream cannot be trusted.
    /// The close is staged (RFC 9112 section 9.6): stop writing, keep reading and discarding for a moment, then
    /// close. Closing with unread input at once makes the kernel send a reset, which can destroy the error
    /// response before the client reads it.
    private func fail(
        context: ChannelHandlerContext, status: HTTPResponseStatus, message: String, headers: [(String, String)] = []
    ) {
        if case .failed = state { return }
        state = .failed
        hive.registry.increment(worker: hive.workerID, .protocolErrors)
        var response = HiveResponse.text(
            "\(status.code) \(status.reasonPhrase): \(message)\n", status: HTTPResponse.Status(status))
        for (name, value) in headers {
            if let name = HTTPField.Name(name) { response.headerFields.append(HTTPField(name: name, value: value)) }
        }
        write(context: context, response: response, method: nil, version: .http1_1, keepAlive: false)
        let channel = context.channel
        context.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }
        armHeadTimer(context: context, after: Self.lingerAfterError)
    }

    /// How long a connection that failed keeps draining input before it is closed.
    static let lingerAfterError: TimeAmount = .seconds(1)

    /// Writes `response` whole, as one buffer. For a `HEAD` request the body is left out, keeping the
    /// `Content-Length` a `GET` would get (RFC 9110 section 9.3.2).
    private func write(
        context: ChannelHandlerContext, response: HiveResponse, method: HTTPMethod?, version: HTTPVersion,
        keepAlive: Bool
    ) {
        send(context: context, HTTPResponseBytes.encode(
            response, method: method, version: version, keepAlive: keepAlive, allocator: HTTPResponseBytes.allocator))
    }

    /// Response bytes go straight to the record handler, past NIO's HTTP handlers (the upgrade handler's 101 is
    /// the only thing NIO's encoder still writes).
    private func send(context: ChannelHandlerContext, _ bytes: ByteBuffer) {
        record?.send(bytes)  // always there: WorkerPipeline adds it first
    }

    /// Answers `Expect` (RFC 9110 section 10.1.1): true when it cannot be met and a 417 is out.
    private func expectationFailed(context: ChannelHandlerContext, expect: String, length: Int?) -> Bool {
        guard expect.lowercased() == "100-continue" else {
            fail(context: context, status: .expectationFailed,
                 message: "Expect: \(expect.prefix(100)) is not supported; the only expectation this server meets"
                    + " is 100-continue")
            return true
        }
        if let length, length > hive.limits.maxBodySize {
            fail(context: context, status: .expectationFailed,
                 message: "request body of \(length) bytes exceeds \(hive.limits.maxBodySize) bytes; do not send it")
            return true
        }
        return false
    }

    private func armHeadTimer(context: ChannelHandlerContext, after timeout: TimeAmount) {
        arm(context: context, until: NIODeadline.now() + timeout)
    }

    /// The next body chunk is due within the handshake timeout, and the whole body by `bodyDeadline`.
    private func armBodyTimer(context: ChannelHandlerContext) {
        arm(context: context, until: min(NIODeadline.now() + hive.limits.handshakeTimeout, bodyDeadline))
    }

    private func arm(context: ChannelHandlerContext, until newDeadline: NIODeadline) {
        deadline = newDeadline
        if timer == nil || deadline < timerFiresAt { scheduleTimer(context: context) }
    }

    /// The deadline passed: a request whose body is late gets a 408 (RFC 9110 section 15.5.9); a connection that
    /// sent no head in time, or sat idle, is closed without an answer.
    private func deadlinePassed(context: ChannelHandlerContext) {
        let path: String
        switch state {
        case .receiving(let head, _): path = head.uri
        case .receivingFastBody(let fastPath): path = fastPath
        case .idle, .failed:
            context.close(promise: nil)
            return
        }
        let limits = hive.limits
        let message = NIODeadline.now() >= bodyDeadline
            ? "the request body did not arrive whole within \(Self.seconds(limits.bodyTimeout)) s of its head"
                + " (--body-timeout)"
            : "no part of the request body arrived for \(Self.seconds(limits.handshakeTimeout)) s (--handshake-timeout)"
        hive.logger.debug(
            "request body timed out; answering 408",
            metadata: ["connection.id": "\(id)", "http.path": "\(path.prefix(200))", "reason": "\(message)"])
        fail(context: context, status: .requestTimeout, message: message)
    }

    /// "30", "0.5": a timeout as a person wrote it.
    static func seconds(_ amount: TimeAmount) -> String {
        let seconds = Double(amount.nanoseconds) / 1e9
        return seconds == seconds.rounded() ? String(Int64(seconds)) : String(seconds)
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
                handler.deadlinePassed(context: context)
            } else {
                handler.scheduleTimer(context: context)  // re-armed meanwhile: wait for the new deadline
            }
        }
    }

}

@available(*, unavailable)
extension HTTPRequestHandler: Sendable {}
