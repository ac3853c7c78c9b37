import NIOCore
import NIOWebSocket

/// Per-connection WebSocket limits, fixed when the handler is created.
struct WebSocketLimits: Sendable {
    /// Largest reassembled message in bytes, and so also the largest frame; a bigger one fails the connection with
    /// 1009 (a frame as soon as its header says so).
    var maxMessageSize: Int
    /// Interval between keep-alive pings; nil sends none.
    var pingInterval: TimeAmount?
    /// How long after a ping some frame (any frame, not only the pong) must arrive before the connection is dropped.
    var pongTimeout: TimeAmount
    /// How long a close we started waits for the peer's close, and how long a close frame may take to be written,
    /// before the TCP connection is closed anyway. Bounds the life of a connection whose peer stopped reading.
    var closeTimeout: TimeAmount = .seconds(2)
}

/// One worker's `WebSocketLimits`, shared by all its frame handlers: a reference instead of a copy in each
/// handler is 32 bytes less per connection.
final class SharedWebSocketLimits: Sendable {
    let limits: WebSocketLimits

    init(_ limits: WebSocketLimits) {
        self.limits = limits
    }
}

/// Callbacks to the owner (the worker's connection object). All called on the channel's event loop.
protocol WebSocketFrameHandlerDelegate: AnyObject {
    /// A complete, validated data message. Replies written through `write` from here need no
    /// flush: the handler flushes at the end of the read batch.
    func webSocketReceived(_ message: WebSocketMessage)
    /// Every inbound frame, with its payload length (for counters and last activity).
    func webSocketFrameRead(bytes: Int)
    /// Every frame this handler writes itself (pong, close, ping), with its payload length.
    func webSocketFrameWritten(bytes: Int)
    /// The close handshake started, from either side, or the connection was dropped by the keep-alive timeout
    /// (code 1006). Called at most once. A peer's close without a body reports 1005 (RFC 6455 7.1.5).
    func webSocketClosing(code: WebSocketErrorCode, initiatedByPeer: Bool)
    /// Whether a frame may now be written to the socket directly, bypassing this handler: the channel is active
    /// and NIO holds no byte for it (`isActive` and `unfinishedWrites == 0`). Called on every change.
    func webSocketDirectWrites(_ allowed: Bool)
}

extension WebSocketFrameHandlerDelegate {
    func webSocketDirectWrites(_ allowed: Bool) {}
}

/// The RFC 6455 protocol layer of a server connection: cuts the bytes read into frames (`WebSocketFrameParser`),
/// validates and reassembles them, answers pings, runs the close handshake and keep-alive, and hands complete
/// messages to its delegate. It consumes every byte; nothing is forwarded. In a worker it also keeps the
/// connection's `ConnectionRecord` (taken over from the record handler at the upgrade): it is the whole pipeline of
/// an established WebSocket, one handler and one context per connection, which keeps an idle connection small.
///
/// Every write of the connection goes through `write(_:promise:)`: frames already encoded by `WebSocketFrameCodec`,
/// so a broadcast can encode a message once per worker and hand the same buffer to every connection. Its own
/// frames are flushed once per read batch in `channelReadComplete`, except on the close path, which flushes at
/// once. The protocol rules live in `StateMachine`; this class does the I/O, the timers and the delegate calls.
final class WebSocketFrameHandler: ChannelDuplexHandler, ConnectionRecordKeeper {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = ByteBuffer

    // The order of the stored properties is the layout: the fields every delivery reads come first, in one cache
    // line, and the rest is packed so the handler, record included, fits a 288-byte allocation (one per connection).
    /// Writes handed to NIO through `write` that NIO has not finished (written to the socket, or failed). Every
    /// write of an established connection goes through here, so 0 means NIO holds no byte for the socket and a
    /// frame may go to the socket directly (the session's fast path) without being reordered or interleaved.
    /// Read for every delivery (with `isActive` and `isWritable`), on the event loop only: unchecked, so the reads
    /// cost no dynamic exclusivity check (see `WebSocketSession.isClosing`).
    @exclusivity(unchecked) private(set) var unfinishedWrites = 0 {
        didSet { if (oldValue == 0) != (unfinishedWrites == 0) { directWritesChanged() } }
    }
    /// The channel's activity and writability, as its events told this handler. Kept here so the broadcast path
    /// reads them from an object it touches anyway instead of from each `Channel` (two atomics behind an
    /// existential: 8 % of a worker's time in a saturated fan-out, most of it cache misses on 5,000 channels).
    @exclusivity(unchecked) private(set) var isActive = false {
        didSet { if oldValue != isActive { directWritesChanged() } }
    }
    @exclusivity(unchecked) private(set) var isWritable = true
    /// Something was written (or a message was delivered, whose reply may have been) since the last flush.
    private var needsFlush = false
    private var closingReported = false
    private var stateMachine: StateMachine
    private var parser: WebSocketFrameParser
    private let sharedLimits: SharedWebSocketLimits
    private var limits: WebSocketLimits { self.sharedLimits.limits }
    /// Strong, and let go in `handlerRemoved`, which breaks the cycle with an owner that holds this handler (the
    /// session). Not weak: a weakly referenced object keeps its reference counts in a side table, which made every
    /// retain of the session on the broadcast path take the runtime's slow path (4 % of a fan-out's worker time).
    var delegate: (any WebSocketFrameHandlerDelegate)?
    /// From `handlerAdded` to `handlerRemoved`: `initiateClose`, the writes and the timers are not given a context.
    private var context: ChannelHandlerContext?
    /// When the next keep-alive ping is due (`distantFuture`: none); checked by the worker's `KeepAliveSweep`.
    private var nextPing = NIODeadline.distantFuture
    /// Set by a ping, cleared by the next inbound frame: the peer must send something before it.
    private var pongDeadline = NIODeadline.distantFuture
    private var closeDeadline: Scheduled<Void>?
    /// Pongs answered during this read batch, encoded back to back: one write per batch, however many pings it
    /// held. NIO's queue costs about 200 bytes per write besides the bytes themselves, so a client sending pings
    /// and never reading the pongs would otherwise cost a worker far more than the limit it counts in bytes.
    private var pendingPongs: ByteBuffer?
    /// The connection's registry record and output guard (`ConnectionRecord`), kept here from the upgrade (or the
    /// adoption of a handed-over connection) on; nil for a handler on its own (tests).
    var record: ConnectionRecord?

    /// - Parameters:
    ///   - limits: Message size, keep-alive and close timing.
    ///   - delegate: Receives messages and events; held until the handler leaves the pipeline.
    ///   - inflater: The worker's shared inflater when permessage-deflate was negotiated; nil otherwise, and then
    ///     RSV1 fails the connection like the other reserved bits.
    convenience init(limits: WebSocketLimits, delegate: (any WebSocketFrameHandlerDelegate)?, inflater: MessageInflater? = nil) {
        self.init(sharedLimits: SharedWebSocketLimits(limits), delegate: delegate, inflater: inflater)
    }

    /// A worker's handler: `sharedLimits` is the worker's (`HiveServer.sharedWebSocketLimits`).
    init(sharedLimits: SharedWebSocketLimits, delegate: (any WebSocketFrameHandlerDelegate)?, inflater: MessageInflater? = nil) {
        let limits = sharedLimits.limits
        self.sharedLimits = sharedLimits
        self.delegate = delegate
        self.stateMachine = StateMachine(maxMessageSize: limits.maxMessageSize, inflater: inflater)
        self.parser = WebSocketFrameParser(maxFrameSize: limits.maxMessageSize)
    }

    /// Tells the delegate whether a frame may go to the socket directly now (`webSocketDirectWrites`).
    private func directWritesChanged() {
        self.delegate?.webSocketDirectWrites(self.isActive && self.unfinishedWrites == 0)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.isActive = context.channel.isActive
        self.isWritable = context.channel.isWritable
        self.recordAdded(context: context)
        // After an upgrade the channel is already active and channelActive will not come.
        if self.isActive {
            self.startKeepAlive(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // The connection's end first, as when the record handler stood before this one.
        self.recordRemoved()
        self.isActive = false
        self.cancelTimers()
        self.stateMachine.markClosed()
        self.context = nil
        self.delegate = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        self.isActive = true
        self.startKeepAlive(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.recordEnd()
        self.isActive = false
        self.cancelTimers()
        self.stateMachine.markClosed()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.recordWritabilityChanged(context: context)
        self.isWritable = context.channel.isWritable
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = Self.unwrapInboundIn(data)
        self.recordRead(bytes: bytes.readableBytes)
        self.parser.append(bytes)
        do {
            while let frame = try self.parser.next() {
                self.receive(frame, context: context)
            }
        } catch {
            self.perform(self.stateMachine.receiveDecoderError(error), context: context)
        }
    }

    private func receive(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        self.delegate?.webSocketFrameRead(bytes: frame.length)
        // Any frame proves the peer is alive, not only the pong to our ping.
        self.pongDeadline = .distantFuture
        self.perform(self.stateMachine.receive(frame), context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // One flush per read batch: a burst of pings, or of messages the owner answers, becomes one write syscall.
        if self.needsFlush {
            self.needsFlush = false
            self.flush()
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Graceful stop: clients get 1001 "going away" and a chance to answer before the socket closes.
            self.initiateClose(code: .goingAway, reason: "server shutting down")
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Reads pass unless the connection's record holds them (a full output queue, a suspended hook, a hand-over).
    func read(context: ChannelHandlerContext) {
        if self.recordAllowsRead() {
            context.read()
        }
    }

    /// Writes from outside the handler (none in a worker: every write goes through `write(_:promise:)`), counted.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        self.recordWritten(bytes: Self.unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }

    // MARK: Owner API

    /// The handler's context while it is in a pipeline (`ConnectionRecordKeeper`).
    var recordContext: ChannelHandlerContext? { self.context }

    /// Whether the handler is in a pipeline (from `handlerAdded` to `handlerRemoved`).
    var isInPipeline: Bool { self.context != nil }

    /// Bytes NIO holds for the socket (0 out of the pipeline). An option lookup: for the slow path only.
    var bufferedBytes: Int {
        (try? self.context?.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }

    /// Writes one encoded frame (or several, concatenated) without flushing. Call on the channel's event loop.
    /// Once the handler is out of the pipeline the write fails with `ChannelError.ioOnClosedChannel`.
    func write(_ buffer: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context = self.context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.eventLoop.assertInEventLoop()
        let finished = promise ?? context.eventLoop.makePromise()
        self.unfinishedWrites += 1
        finished.futureResult.assumeIsolated().whenComplete { _ in self.unfinishedWrites -= 1 }
        self.recordWritten(bytes: buffer.readableBytes)
        context.write(Self.wrapOutboundOut(buffer), promise: finished)
    }

    /// Flushes what was written (and anything else pending). Call on the channel's event loop; does nothing once
    /// the handler is out of the pipeline.
    func flush() {
        guard let context = self.context else {
            return
        }
        context.eventLoop.assertInEventLoop()
        self.writePendingPongs()
        context.flush()
    }

    /// Writes the pongs of this read batch. Also before a close frame: nothing may follow it.
    private func writePendingPongs() {
        guard let pongs = self.pendingPongs else {
            return
        }
        self.pendingPongs = nil
        self.write(pongs, promise: nil)
    }

    /// Starts the server-initiated close handshake: sends a close frame with `code`, stops delivering messages, and
    /// closes the TCP connection when the peer answers or after `limits.closeTimeout`. Does nothing if a close
    /// already started or the handler is not in a pipeline. Call on the channel's event loop.
    func initiateClose(code: WebSocketErrorCode, reason: String) {
        guard let context = self.context else {
            return
        }
        context.eventLoop.assertInEventLoop()
        guard self.stateMachine.startClose() else {
            return
        }
        self.reportClosing(code: code, initiatedByPeer: false)
        self.cancelKeepAlive()
        self.writePendingPongs()
        let frame = WebSocketFrameCodec.encodeClose(code: code, reason: reason, allocator: context.channel.allocator)
        self.write(frame, promise: nil)
        self.flush()
        self.needsFlush = false
        self.delegate?.webSocketFrameWritten(bytes: Self.closePayloadLength(frame))
        self.scheduleCloseDeadline(context: context)
    }

    // MARK: Reload hand-over

    /// What a replacement process needs to continue this connection mid-stream, taken at `now`; nil when the
    /// connection is not open (a close started, or it failed): such a connection ends in this process.
    func handOverSnapshot(now: NIODeadline) -> HandOverSnapshot? {
        guard self.stateMachine.state == .open, self.isActive else {
            return nil
        }
        func remaining(_ deadline: NIODeadline) -> Int64? {
            deadline == .distantFuture ? nil : max(0, (deadline - now).nanoseconds)
        }
        return HandOverSnapshot(
            leftover: self.parser.leftover, partial: self.stateMachine.partialMessage,
            nextPingIn: remaining(self.nextPing), pongDeadlineIn: remaining(self.pongDeadline)
        )
    }

    /// A hand-over is under way: no keep-alive pings from this process (a replacement may already own the socket).
    func suspendKeepAlive() {
        self.cancelKeepAlive()
    }

    /// The hand-over did not happen (the replacement died): keep-alive goes on here.
    func resumeKeepAlive() {
        guard let context = self.context else {
            return
        }
        self.startKeepAlive(context: context)
    }

    /// Continues a connection another process handed over, before this handler joins the pipeline. Returns false
    /// when the state cannot be continued (a partial message this handler would not have accepted).
    func restore(_ snapshot: HandOverSnapshot, now: NIODeadline) -> Bool {
        self.parser = WebSocketFrameParser(maxFrameSize: self.limits.maxMessageSize, leftover: snapshot.leftover)
        if let partial = snapshot.partial {
            guard self.stateMachine.restorePartial(kind: partial.kind, data: partial.data, compressed: partial.compressed)
            else { return false }
        }
        if let due = snapshot.nextPingIn, self.limits.pingInterval != nil {
            self.nextPing = now + .nanoseconds(due)
        }
        if let due = snapshot.pongDeadlineIn {
            self.pongDeadline = now + .nanoseconds(due)
        }
        return true
    }

    // MARK: Actions

    private func perform(_ action: StateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .deliver(let message):
            self.needsFlush = true
            self.delegate?.webSocketReceived(message)
        case .sendPong(let payload):
            WebSocketFrameCodec.append(opcode: .pong, payload: payload, to: &self.pendingPongs, allocator: context.channel.allocator)
            self.needsFlush = true
            self.delegate?.webSocketFrameWritten(bytes: payload.readableBytes)
        case .answerClose(let peerCode, let replyCode):
            self.reportClosing(code: peerCode, initiatedByPeer: true)
            self.sendCloseAndCloseChannel(code: replyCode, reason: "", context: context)
        case .fail(let code, let reason):
            self.reportClosing(code: code, initiatedByPeer: false)
            self.sendCloseAndCloseChannel(code: code, reason: reason, context: context)
        case .closeConnection:
            self.cancelTimers()
            context.close(promise: nil)
        }
    }

    private func writeControlFrame(_ opcode: WebSocketOpcode, payload: ByteBuffer, context: ChannelHandlerContext) {
        let frame = WebSocketFrameCodec.encode(opcode: opcode, payload: payload, allocator: context.channel.allocator)
        self.write(frame, promise: nil)
        self.needsFlush = true
        self.delegate?.webSocketFrameWritten(bytes: payload.readableBytes)
    }

    /// Sends a close frame and closes the connection once it is written. The server closes TCP first
    /// (RFC 6455 7.1.1) and does not wait for the peer's close after failing the connection (7.1.7).
    private func sendCloseAndCloseChannel(code: WebSocketErrorCode, reason: String, context: ChannelHandlerContext) {
        self.cancelKeepAlive()
        self.writePendingPongs()
        let frame = WebSocketFrameCodec.encodeClose(code: code, reason: reason, allocator: context.channel.allocator)
        let written = context.eventLoop.makePromise(of: Void.self)
        self.write(frame, promise: written)
        self.flush()
        self.needsFlush = false
        self.delegate?.webSocketFrameWritten(bytes: Self.closePayloadLength(frame))
        // Closing right away would fail a close frame still queued behind a full socket buffer; wait for the write,
        // and let the deadline cover a peer that never reads.
        let channel = context.channel
        written.futureResult.whenComplete { _ in
            channel.close(promise: nil)
        }
        self.scheduleCloseDeadline(context: context)
    }

    private func reportClosing(code: WebSocketErrorCode, initiatedByPeer: Bool) {
        guard !self.closingReported else {
            return
        }
        self.closingReported = true
        self.delegate?.webSocketClosing(code: code, initiatedByPeer: initiatedByPeer)
    }

    /// Close frames are at most 125 bytes of payload, so their header is always 2 bytes.
    private static func closePayloadLength(_ frame: ByteBuffer) -> Int {
        frame.readableBytes - 2
    }

    // MARK: Timers

    private func startKeepAlive(context: ChannelHandlerContext) {
        guard let interval = self.limits.pingInterval, self.nextPing == .distantFuture,
            self.stateMachine.state == .open
        else {
            return
        }
        self.nextPing = context.eventLoop.now + interval
    }

    /// Called by the worker's `KeepAliveSweep` about every tenth of the ping interval: drops the connection when its
    /// pong deadline has passed, and sends a ping when one is due. Call on the channel's event loop.
    func keepAliveTick(now: NIODeadline) {
        guard let context = self.context, self.stateMachine.state == .open else {
            return
        }
        if now >= self.pongDeadline {
            self.pongDeadlinePassed(context: context)
            return
        }
        guard now >= self.nextPing, let interval = self.limits.pingInterval else {
            return
        }
        self.writeControlFrame(.ping, payload: ByteBuffer(), context: context)
        // Ticks come outside a read batch: nothing else would flush.
        self.needsFlush = false
        self.flush()
        // Keep the older deadline if a ping is still unanswered: the peer has been silent since then.
        if self.pongDeadline == .distantFuture {
            self.pongDeadline = now + self.limits.pongTimeout
        }
        self.nextPing = now + interval
    }

    /// The peer sent nothing for `pongTimeout` after a ping. The connection is dropped without a close frame (what
    /// the peer's side will report as 1006, abnormal closure): a peer that does not answer pings would not answer a
    /// close either, and a close frame would only wait in a send buffer that may already be full.
    private func pongDeadlinePassed(context: ChannelHandlerContext) {
        self.stateMachine.markClosed()
        self.reportClosing(code: WebSocketErrorCode(codeNumber: 1006), initiatedByPeer: false)
        self.cancelTimers()
        context.close(promise: nil)
    }

    private func scheduleCloseDeadline(context: ChannelHandlerContext) {
        guard self.closeDeadline == nil else {
            return
        }
        let channel = context.channel
        self.closeDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: self.limits.closeTimeout) {
            [weak self] in
            self?.closeDeadline = nil
            self?.stateMachine.markClosed()
            channel.close(promise: nil)
        }
    }

    private func cancelKeepAlive() {
        self.nextPing = .distantFuture
        self.pongDeadline = .distantFuture
    }

    private func cancelTimers() {
        self.cancelKeepAlive()
        self.closeDeadline?.cancel()
        self.closeDeadline = nil
    }
}

@available(*, unavailable)
extension WebSocketFrameHandler: Sendable {}

/// A frame handler's part of a connection's hand-over state (`HandOverState` carries it between processes).
struct HandOverSnapshot {
    var leftover: ByteBuffer?
    var partial: (kind: WebSocketMessage.Kind, data: ByteBuffer, compressed: Bool)?
    var nextPingIn: Int64?
    var pongDeadlineIn: Int64?
}
