import NIOCore

/// Writes pre-encoded WebSocket frames (`ByteBuffer`s from `WebSocketFrameCodec`) to a connection, and counts the
/// writes NIO has not finished yet, which the session's direct socket writes depend on.
///
/// It is not a handler of its own: it writes through the context of the connection's `WebSocketFrameHandler`
/// (attached there in `handlerAdded`), whose outbound type is `ByteBuffer`, so a broadcast can encode a frame once
/// per worker and hand the same buffer to every connection.
final class WebSocketRawWriter {
    /// Set by the frame handler while it is in the pipeline; only touched on the channel's event loop.
    private var context: ChannelHandlerContext?

    /// Writes handed to NIO through this writer that NIO has not finished (written to the socket, or failed).
    /// After the upgrade every write of the connection goes through here, so 0 means NIO holds no byte for the
    /// socket and a frame may go to the socket directly without being reordered or interleaved.
    private(set) var unfinishedWrites = 0

    init() {}

    /// Called by the frame handler when it joins the pipeline.
    func attach(_ context: ChannelHandlerContext) {
        self.context = context
    }

    /// Called by the frame handler when it leaves the pipeline: later writes fail.
    func detach() {
        self.context = nil
    }

    /// Writes one encoded frame (or several, concatenated) without flushing. Call on the channel's event loop.
    /// Once the frame handler is out of the pipeline the write fails with `ChannelError.ioOnClosedChannel`.
    func write(_ buffer: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context = self.context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.eventLoop.assertInEventLoop()
        let finished = promise ?? context.eventLoop.makePromise()
        self.unfinishedWrites += 1
        finished.futureResult.assumeIsolated().whenComplete { _ in self.unfinishedWrites -= 1 }
        context.write(NIOAny(buffer), promise: finished)
    }

    /// Writes and flushes. Call on the channel's event loop.
    func writeAndFlush(_ buffer: ByteBuffer, promise: EventLoopPromise<Void>?) {
        self.write(buffer, promise: promise)
        self.flush()
    }

    /// Flushes what was written through this writer (and anything else pending). Call on the channel's event loop;
    /// does nothing once the frame handler is out of the pipeline.
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
