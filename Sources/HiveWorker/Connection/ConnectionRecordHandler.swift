import HiveIPC
import NIOCore

/// Keeps a connection's registry record true (bytes in and out, last activity, the end of the connection: slot
/// freed, table entry removed, the application's close hook) and guards its output queue. It sits next to the head
/// of the pipeline for the connection's whole life, HTTP and WebSocket alike, so every byte queued for the client
/// passes it: HTTP responses, pongs, close frames and data.
///
/// The output guard is back-pressure, as nginx and NIO's `BackPressureHandler` do it: while NIO holds more than
/// `--max-output-buffer` bytes for the socket (the channel is not writable), reads are held here, so a client that
/// sends requests or pings and never reads the answers stops being read instead of growing the queue. A queue
/// that stays over the limit for `--slow-consumer-grace` is a slow consumer and is closed. Only a change of
/// writability costs anything; the hot path is untouched.
final class ConnectionRecordHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    let id: ConnectionID
    /// The socket's descriptor (owned by NIO), for the WebSocket session's direct writes.
    let socket: Int32
    private let hive: HiveServer
    /// The connection ended and its record, table entry and close hook are done with.
    private(set) var ended = false
    /// The channel's writability, from its events.
    private var isWritable = true
    /// A read was asked for while the queue was over the limit; it is passed on when the queue drains.
    private var readHeld = false
    /// Closes the connection if the queue is still over the limit when it fires.
    private var slowConsumerTimer: Scheduled<Void>?
    /// The application's hooks for this connection, in order; a suspended one holds reads like a full queue.
    let hooks: HookQueue
    private var hooksSuspended = false
    private var context: ChannelHandlerContext?
    /// A reload is handing this connection to the replacement process: nothing more is read here.
    private var pausedForHandOver = false
    /// The replacement adopted the connection: its end here is not the connection's end (no slot freed, no close
    /// hook); closing this process's copy of the socket sends nothing to the client.
    var handedOver = false

    init(id: ConnectionID, socket: Int32, hive: HiveServer) {
        self.id = id
        self.socket = socket
        self.hive = hive
        self.hooks = HookQueue(executor: hive.executor)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // unowned, not weak: a weak reference gives the handler a side table, and every retain and release of it
        // (several per read) would take the runtime's slow path. handlerRemoved clears the closure, and the queue
        // calls it only on the event loop, so it never outlives the handler.
        hooks.onHoldReads = { [unowned self] hold in self.hooksSuspended(hold) }
    }

    private func hooksSuspended(_ suspended: Bool) {
        hooksSuspended = suspended
        releaseHeldRead()
    }

    /// Passes on a held read once nothing holds it any more.
    private func releaseHeldRead() {
        guard readHeld, !pausedForHandOver, isWritable, !hooksSuspended, let context else { return }
        readHeld = false
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        hive.registry.add(unwrapInboundIn(data).readableBytes, to: .bytesIn, of: id)
        hive.registry.set(Clock.wallNanoseconds(), .lastActivity, of: id)
        context.fireChannelRead(data)
    }

    /// Stops reading the socket (a reload's hand-over): what NIO read so far has reached the frame handler, and
    /// what the client sends from now on waits in the kernel for whichever process continues the connection.
    func pauseForHandOver() {
        guard let context else { return }
        pausedForHandOver = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
    }

    /// The hand-over did not happen: reading goes on here.
    func resumeAfterHandOver() {
        guard pausedForHandOver, let context else { return }
        pausedForHandOver = false
        readHeld = true
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        releaseHeldRead()
    }

    func read(context: ChannelHandlerContext) {
        if pausedForHandOver {
            readHeld = true
        } else if isWritable && !hooksSuspended {
            context.read()
        } else {
            readHeld = true
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        hive.registry.add(unwrapOutboundIn(data).readableBytes, to: .bytesOut, of: id)
        context.write(data, promise: promise)
    }

    /// Writes and flushes bytes made further up (an HTTP response, `HTTPResponseBytes`), counted like any write.
    /// When NIO holds nothing of this connection's, the bytes go to the kernel with one non-blocking `send`, as the
    /// WebSocket session's frames do: NIO's write path (a pending-write entry, a flush through the pipeline, a
    /// `writev`) cost about 4,700 instructions of a `GET /hello`. What the kernel does not take goes through NIO in
    /// order, so back-pressure, --max-output-buffer and the slow-consumer close see it as before.
    func send(_ bytes: ByteBuffer) {
        guard let context else { return }
        let total = bytes.readableBytes
        hive.registry.add(total, to: .bytesOut, of: id)
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

    /// Bytes of `send` that NIO has queued and not yet written.
    private var unfinishedSends = 0

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        updateQueuedBytes(context: context)
        isWritable = context.channel.isWritable
        if isWritable {
            slowConsumerTimer?.cancel()
            slowConsumerTimer = nil
            releaseHeldRead()
        } else if slowConsumerTimer == nil {
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            slowConsumerTimer = context.eventLoop.scheduleTask(in: hive.limits.slowConsumerGrace) {
                let (handler, context) = bound.value
                handler.slowConsumerTimer = nil
                if !handler.isWritable { handler.graceExpired(context: context) }
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        end()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        end()
        self.context = nil
        hooks.onHoldReads = nil
    }

    /// The queue stayed over --max-output-buffer for the whole grace period: the client is not reading.
    private func graceExpired(context: ChannelHandlerContext) {
        let queued = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        if let session = hive.table.sessions[id] {
            session.closeSlowConsumer(queued: queued, why: "stayed over --max-output-buffer for \(graceText)")
            return
        }
        hive.registry.increment(worker: hive.workerID, .slowConsumers)
        hive.logger.info(
            "closing a slow HTTP client: it has not read its responses",
            metadata: [
                "connection.id": "\(id)", "queued.bytes": "\(queued)",
                "queued.limit": "\(hive.limits.maxOutputBuffer)", "grace": "\(graceText)",
            ]
        )
        context.close(promise: nil)
        hive.releaseMemorySoon()
    }

    private var graceText: String {
        "\(Double(hive.limits.slowConsumerGrace.nanoseconds) / 1e9) s (--slow-consumer-grace)"
    }

    private func updateQueuedBytes(context: ChannelHandlerContext) {
        if let queued = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes) {
            hive.registry.set(UInt64(queued), .queuedOut, of: id)
        }
    }

    private func end() {
        guard !ended else { return }
        ended = true
        slowConsumerTimer?.cancel()
        slowConsumerTimer = nil
        hive.table.sessions[id]?.releaseSlot()  // its last counts, before the slot is freed or handed over
        if handedOver {
            // The replacement holds the connection, its user record and channel counts now.
            _ = hive.userIndex.bind(id, to: nil)
            hive.table.remove(id)
            return
        }
        hive.unbindOnEnd(id)  // before the slot is free: see unbindOnEnd
        hive.registry.free(id)
        hive.leaveChannels(id)
        let (id, hive) = (self.id, self.hive)
        // After the connection's other hooks. Removing it from the table comes last: removing the last connection
        // of a stopping worker ends the process.
        hooks.enqueue {
            await hive.hooks.close(id, hive: hive)
            hive.table.remove(id)
        }
    }
}

@available(*, unavailable)
extension ConnectionRecordHandler: Sendable {}
