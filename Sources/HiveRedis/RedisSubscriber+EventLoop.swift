import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

extension RedisSubscriber {
    /// Hands the subscribed connection to the event loop, which reads it from now on, and waits until that ends.
    /// Returns when stopped or handed to a successor; throws when the connection was lost (the caller reconnects).
    func receiveOnEventLoop(_ socket: SubscriptionSocket) throws {
        // NIO closes the descriptor it is given, hiredis its own when the connection is freed: two descriptors,
        // one socket (a `shutdown` of either, as `stop()` does, ends the reading).
        let descriptor = dup(socket.connection.fd)
        guard descriptor >= 0 else {
            throw RedisError(address: socket.connection.url.description,
                             message: "cannot hand the subscription to the event loop: dup failed: \(String(cString: strerror(errno)))")
        }
        condition.withLock { readingEnded = nil }
        ClientBootstrap(group: eventLoop)
            // A burst of messages is read in few reads; an idle subscription keeps a small buffer.
            .channelOption(ChannelOptions.recvAllocator,
                           value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16 * 1024, maximum: 256 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SubscriptionReader(subscriber: self, socket: socket))
                }
            }
            .withConnectedSocket(descriptor)
            .whenFailure { error in self.endReading(error) }
        condition.lock()
        while !stopped && readingEnded == nil { condition.wait() }
        let ended = readingEnded
        condition.unlock()
        if case .some(.some(let error)) = ended, !isStopped { throw error }
    }

    /// The event loop no longer reads the connection (nil: on purpose, after a hand-off).
    func endReading(_ error: (any Error)?) {
        condition.withLock {
            readingEnded = .some(error)
            condition.broadcast()
        }
    }

    /// On the event loop, the replies of one read. False when the subscription ends here (handed to a successor).
    func receive(_ replies: [RESPStream.Value], send: ([[UInt8]]) -> Void) -> Bool {
        deliver(replies)
        if isHandedOff { return false }
        tick(send: send)
        return true
    }

    /// On the event loop, after a read and on a timer: what the subscription does besides delivering.
    func tick(send: ([[UInt8]]) -> Void) {
        releaseHeldIfDone()
        stopAwaitingIfOverdue()
        if dynamicChannels != nil && Monotonic.seconds() - lastSync >= Self.syncInterval { syncDynamic(send: send) }
    }

    /// When the event loop looks at the subscription next without a read: 5 ms while messages are held for a
    /// splice, else when the dynamic channels are due for comparison.
    var nextTick: TimeAmount {
        if held != nil { return .milliseconds(5) }
        let due = max(0.001, lastSync + Self.syncInterval - Monotonic.seconds())
        return .nanoseconds(Int64(due * 1e9))
    }
}

/// Reads a subscribed Redis connection on the worker's event loop: parses what arrives (`RESPStream`, through the
/// subscription's socket state, so a reply cut by the handshake's last read is completed) and delivers it, and
/// keeps the dynamic channels and a splice going on a timer. The subscriber thread waits until it closes.
final class SubscriptionReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let subscriber: RedisSubscriber
    private let socket: SubscriptionSocket
    private var timer: Scheduled<Void>?
    private var failure: (any Error)?
    private var handedOff = false

    init(subscriber: RedisSubscriber, socket: SubscriptionSocket) {
        self.subscriber = subscriber
        self.socket = socket
    }

    func channelActive(context: ChannelHandlerContext) {
        // Stopped while the connection was on its way here.
        guard !subscriber.isStopped else { return context.close(promise: nil) }
        schedule(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !subscriber.isStopped else { return }
        let buffer = unwrapInboundIn(data)
        do {
            let replies = try buffer.withUnsafeReadableBytes { try socket.feed($0) }
            if !subscriber.receive(replies, send: { send($0, context) }) {
                handedOff = true
                context.close(promise: nil)
            }
        } catch {
            fail(error, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(RedisError(address: socket.connection.url.description, message: "connection lost: \(error)"), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        subscriber.endReading(handedOff ? nil : failure ?? socket.closedByRedis)
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        failure = failure ?? error
        context.close(promise: nil)
    }

    private func schedule(_ context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: subscriber.nextTick) {
            let (reader, context) = loopBound.value
            guard context.channel.isActive, !reader.subscriber.isStopped else { return }
            reader.subscriber.tick(send: { reader.send($0, context) })
            reader.schedule(context)
        }
    }

    /// Writes a command (the dynamic channels' SUBSCRIBE/UNSUBSCRIBE). Passed on as a non-escaping closure: a read
    /// allocates no closure for the rare command it might send.
    private func send(_ command: [[UInt8]], _ context: ChannelHandlerContext) {
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: RESPStream.encode(command))), promise: nil)
    }
}
