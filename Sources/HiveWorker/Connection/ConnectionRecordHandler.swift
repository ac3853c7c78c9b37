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

    init(id: ConnectionID, hive: HiveServer) {
        self.record = ConnectionRecord(id: id, hive: hive)
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
        recordRead(bytes: unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        if recordAllowsRead() { context.read() }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        recordWritten(bytes: unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }

    /// Writes and flushes bytes made further up (an HTTP response, `HTTPResponseBytes`), counted like any write.
    func send(_ bytes: ByteBuffer) {
        guard let context = recordContext else { return }
        recordWritten(bytes: bytes.readableBytes)
        context.writeAndFlush(NIOAny(IOData.byteBuffer(bytes)), promise: nil)
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
