import NIOCore
import NIOHTTP1

/// Stands in front of a new `WebSocketFrameHandler` while NIO's upgrade handler leaves the pipeline, and only then.
///
/// When NIO's decoder did not take the handshake for an upgrade (no "upgrade" in `Connection`, which Hive's
/// upgrader does not require), it goes on parsing what follows as HTTP. NIO's upgrade handler buffers those
/// request parts, together with raw bytes, and hands them all on once the upgrade is done. The frame handler reads
/// bytes and would trap on a request part. This handler forwards the bytes, and it closes the connection on a
/// request part: that client is still speaking HTTP after its handshake. It removes itself on the next event-loop
/// tick after the upgrade completes, by which time NIO has handed on everything it buffered, so an established
/// connection pays nothing for it.
final class UpgradeLeftoverHandler: ChannelInboundHandler, RemovableChannelHandler {
    /// `Any`: what arrives here may be bytes or request parts, and NIO's typed unwrap traps on the wrong one.
    typealias InboundIn = Any
    typealias InboundOut = ByteBuffer

    private var closed = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case let bytes as ByteBuffer:
            context.fireChannelRead(Self.wrapInboundOut(bytes))
        case IOData.byteBuffer(let bytes) as IOData:
            context.fireChannelRead(Self.wrapInboundOut(bytes))
        default:
            guard !self.closed else { return }
            self.closed = true
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case HTTPServerUpgradeEvents.upgradeComplete = event {
            // NIO fires this, then leaves the pipeline handing on what it buffered, all in this tick.
            context.eventLoop.assumeIsolated().execute {
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}

@available(*, unavailable)
extension UpgradeLeftoverHandler: Sendable {}
