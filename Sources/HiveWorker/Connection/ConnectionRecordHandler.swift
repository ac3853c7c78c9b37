import HiveIPC
import NIOCore

/// Keeps a connection's `ConnectionRecord` (registry record, output guard, the end of the connection) from its
/// adoption until an upgrade hands the record to the WebSocket frame handler (`takeRecord`), or for the whole life
/// of an HTTP connection. It sits next to the head of the pipeline, so every byte queued for the client passes it:
/// HTTP responses, and the upgrade's 101.
final class ConnectionRecordHandler: ChannelDuplexHandler, RemovableChannelHandler, ConnectionRecordKeeper {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// nil once an upgrade moved it to the frame handler.
    var record: ConnectionRecord?
    private(set) var recordContext: ChannelHandlerContext?
    /// The socket's descriptor (owned by NIO), for `send`'s direct writes and the WebSocket session.
    let socket: Int32
    /// Bytes of `send` that NIO has queued and not yet written.
    private var unfinishedSends = 0
    /// `HTTPFastPathHandler` counts each read's bytes itself (`countRead`), until it hands the connection to NIO's
    /// decoder: it unwraps the buffer anyway, and unwrapping it here and copying the record out of its optional cost
    /// about 250 instructions a read.
    var readsCountedAhead = false
    private let id: ConnectionID
    private let hive: HiveServer

    init(id: ConnectionID, socket: Int32, hive: HiveServer) {
        self.record = ConnectionRecord(id: id, hive: hive)
        self.socket = socket
        self.id = id
        self.hive = hive
    }

    /// The connection's hooks (the record's), nil once the record moved on.
    var hooks: HookQueue? { record?.hooks }

    /// The connection ended and its record, table entry and close hook are done with (or the record moved on).
    var ended: Bool { record?.ended ?? true }

    func handlerAdded(context: ChannelHandlerContext) {
        recordContext = context
        recordAdded(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        recordRemoved()
        recordContext = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !readsCountedAhead { recordRead(bytes: unwrapInboundIn(data).readableBytes) }
        context.fireChannelRead(data)
    }

    /// Bytes read, counted by `HTTPFastPathHandler` (`readsCountedAhead`), as `recordRead` counts them.
    @inline(__always)
    func countRead(bytes: Int) {
        guard record != nil else { return }
        hive.registry.add(bytes, to: .bytesIn, of: id)
        hive.registry.set(Clock.wallNanoseconds(), .lastActivity, of: id)
    }

    func read(context: ChannelHandlerContext) {
        if recordAllowsRead() { context.read() }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        recordWritten(bytes: unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }

    /// Writes and flushes bytes made further up (an HTTP response, `HTTPResponseBytes`), counted like any write.
    /// When NIO holds nothing of this connection's, the bytes go to the kernel with one non-blocking `send`, as the
    /// WebSocket session's frames do: NIO's write path (a pending-write entry, a flush through the pipeline, a
    /// `writev`) cost about 4,700 instructions of a `GET /hello`. What the kernel does not take goes through NIO in
    /// order, so back-pressure, --max-output-buffer and the slow-consumer close see it as before.
    func send(_ bytes: ByteBuffer) {
        guard let context = recordContext else { return }
        let total = bytes.readableBytes
        // Not `recordWritten`: binding the record copies it (two retains and releases, ~110 instructions).
        let ended = record?.ended ?? true
        if record != nil { hive.registry.add(total, to: .bytesOut, of: id) }
        var written = 0
        // `ended`: the descriptor may be closed (and its number reused) once the channel is inactive.
        if unfinishedSends == 0 && !ended {
            written = WebSocketSession.writeDirectly(bytes, to: socket)
            if written == total { return }
        }
        var rest = bytes
        rest.moveReaderIndex(forwardBy: written)
        // Counted until NIO has written them (or failed to): a later response must queue behind them.
        let finished = context.eventLoop.makePromise(of: Void.self)
        unfinishedSends += 1
        finished.futureResult.assumeIsolated().whenComplete { _ in self.unfinishedSends -= 1 }
        context.writeAndFlush(NIOAny(IOData.byteBuffer(rest)), promise: finished)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        recordWritabilityChanged(context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        recordEnd()
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension ConnectionRecordHandler: Sendable {}
