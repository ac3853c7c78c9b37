import NIOCore

/// Writes pre-encoded WebSocket frames (`ByteBuffer`s from `WebSocketFrameCodec`) straight to the socket.
///
/// `NIOWebSocketServerUpgrader` installs NIO's `WebSocketFrameEncoder`, which cannot be removed and whose
/// `OutboundIn` is `WebSocketFrame`: a `ByteBuffer` written from any handler behind it would crash its unwrap. This
/// handler is added with position `.first`, next to the head, and writes from its own context, so its writes reach
/// the head without passing through the encoder. That is what lets a broadcast encode a frame once per worker and
/// hand the same buffer to every connection.
///
/// Other outbound traffic (the encoder's `ByteBuffer`s, the upgrade response) passes through unchanged, by the
/// protocol's default `write`/`flush` forwarding.
final class WebSocketRawWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Set in `handlerAdded`, cleared in `handlerRemoved`; only touched on the channel's event loop.
    private var context: ChannelHandlerContext?

    /// Writes handed to NIO through this handler that NIO has not finished (written to the socket, or failed).
    /// After the upgrade every write of the connection goes through here, so 0 means NIO holds no byte for the
    /// socket and a frame may go to the socket directly without being reordered or interleaved.
    private(set) var unfinishedWrites = 0

    init() {}

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
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
        context.write(Self.wrapOutboundOut(buffer), promise: finished)
    }

    /// Writes and flushes. Call on the channel's event loop.
    func writeAndFlush(_ buffer: ByteBuffer, promise: EventLoopPromise<Void>?) {
        self.write(buffer, promise: promise)
        self.flush()
    }

    /// Flushes what was written through this handler (and anything else pending). Call on the channel's event loop;
    /// does nothing once the handler is out of the pipeline.
    func flush() {
        guard let context = self.context else {
            return
        }
        context.eventLoop.assertInEventLoop()
        context.flush()
    }
}

@available(*, unavailable)
extension WebSocketRawWriter: Sendable {}
