import HiveIPC
import NIOCore

/// Keeps a connection's registry record true: bytes in and out, last activity, and the end of the connection
/// (slot freed, table entry removed, the application's close hook). It sits next to the head of the pipeline
/// for the connection's whole life, HTTP and WebSocket alike.
final class ConnectionRecordHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    let id: ConnectionID
    /// The socket's descriptor (owned by NIO), for the WebSocket session's direct writes.
    let socket: Int32
    private let hive: Hive
    /// The connection ended and its record, table entry and close hook are done with.
    private(set) var ended = false

    init(id: ConnectionID, socket: Int32, hive: Hive) {
        self.id = id
        self.socket = socket
        self.hive = hive
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        hive.registry.add(unwrapInboundIn(data).readableBytes, to: .bytesIn, of: id)
        hive.registry.set(Clock.wallNanoseconds(), .lastActivity, of: id)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        hive.registry.add(unwrapOutboundIn(data).readableBytes, to: .bytesOut, of: id)
        context.write(data, promise: promise)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        updateQueuedBytes(context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        end()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        end()
    }

    private func updateQueuedBytes(context: ChannelHandlerContext) {
        if let queued = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes) {
            hive.registry.set(UInt64(queued), .queuedOut, of: id)
        }
    }

    private func end() {
        guard !ended else { return }
        ended = true
        hive.registry.free(id)
        hive.application.close(id, hive: hive)
        hive.table.remove(id)  // last: removing the last connection of a stopping worker ends the process
    }
}

@available(*, unavailable)
extension ConnectionRecordHandler: Sendable {}
