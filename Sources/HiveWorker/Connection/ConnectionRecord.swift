import HiveIPC
import NIOCore

/// A connection's record duties, kept by the handler next to the head of its pipeline: the registry record true
/// (bytes in and out, last activity, the end of the connection: slot freed, table entry removed, the application's
/// close hook) and the output guard. Until an upgrade that handler is the `ConnectionRecordHandler`; an upgraded
/// WebSocket's `WebSocketFrameHandler` takes the record over (`ConnectionRecordHandler.moveRecord`), so an
/// established connection's pipeline is one handler: one handler object and one pipeline context fewer per
/// connection (~250 B of a worker's RSS). The logic lives here once, in `ConnectionRecordKeeper`'s extension.
///
/// The output guard is back-pressure, as nginx and NIO's `BackPressureHandler` do it: while NIO holds more than
/// `--max-output-buffer` bytes for the socket (the channel is not writable), reads are held, so a client that
/// sends requests or pings and never reads the answers stops being read instead of growing the queue. A queue
/// that stays over the limit for `--slow-consumer-grace` is a slow consumer and is closed. Only a change of
/// writability costs anything; the hot path is untouched.
struct ConnectionRecord {
    let id: ConnectionID
    let hive: HiveServer
    /// The application's hooks for this connection, in order; a suspended one holds reads like a full queue.
    let hooks: HookQueue
    /// A grace timer runs for this connection (`HiveServer.graceTimers`): it closes the connection if the queue is
    /// still over the limit when it fires. Kept by the worker, not here: few connections ever have one, and the
    /// 24 bytes of a `Scheduled` in every record took the frame handler past a 272-byte allocation.
    fileprivate(set) var graceTimerRunning = false
    /// The connection ended and its record, table entry and close hook are done with.
    fileprivate(set) var ended = false
    /// The channel's writability, from its events.
    fileprivate(set) var isWritable = true
    /// A read was asked for while the queue was over the limit; it is passed on when the queue drains.
    fileprivate(set) var readHeld = false
    fileprivate(set) var hooksSuspended = false
    /// A reload is handing this connection to the replacement process: nothing more is read here.
    fileprivate(set) var pausedForHandOver = false
    /// The replacement adopted the connection: its end here is not the connection's end (no slot freed, no close
    /// hook); closing this process's copy of the socket sends nothing to the client.
    var handedOver = false

    init(id: ConnectionID, hive: HiveServer) {
        self.id = id
        self.hive = hive
        self.hooks = HookQueue(executor: hive.executor)
    }

    /// This record, to be kept by another handler from now on: a running grace timer is cancelled (it holds the
    /// handler it was started by), and the new keeper starts it again when it joins the pipeline.
    mutating func moved() -> ConnectionRecord {
        cancelGraceTimer()
        return self
    }

    fileprivate mutating func cancelGraceTimer() {
        guard graceTimerRunning else { return }
        graceTimerRunning = false
        hive.graceTimers.removeValue(forKey: id)?.cancel()
    }
}

/// A handler keeping a connection's `ConnectionRecord`: `ConnectionRecordHandler`, or an upgraded WebSocket's
/// frame handler. Its channel events call the `record…` methods below; nil `record` (a frame handler without one,
/// in tests; a record handler whose record moved on) makes them do nothing.
protocol ConnectionRecordKeeper: HookReadHolder {
    var record: ConnectionRecord? { get set }
    /// The handler's context while it is in a pipeline.
    var recordContext: ChannelHandlerContext? { get }
}

extension ConnectionRecordKeeper {
    /// From `handlerAdded`: the hook queue's holds come here now.
    func recordAdded(context: ChannelHandlerContext) {
        guard let record else { return }
        // recordRemoved clears it, and the queue calls it only on the event loop: it never outlives the handler.
        record.hooks.readHolder = self
        if !record.isWritable { startGraceTimer(context: context) }
    }

    /// From `handlerRemoved`: the connection ends here unless its record moved on.
    func recordRemoved() {
        guard let record else { return }
        recordEnd()
        record.hooks.readHolder = nil
    }

    /// Keeps `record` from now on (taken from another handler with `takeRecord`).
    func keepRecord(_ record: ConnectionRecord) {
        self.record = record
        if let context = recordContext { recordAdded(context: context) }
    }

    /// The record handed to another handler (an upgrade): this one forgets it, so its removal ends nothing.
    func takeRecord() -> ConnectionRecord? {
        guard record != nil else { return nil }
        let moved = record!.moved()
        record = nil
        return moved
    }

    /// The connection's hooks are backed up (or no longer): reads are held meanwhile (`HookReadHolder`).
    func hooksHoldReads(_ suspended: Bool) {
        record?.hooksSuspended = suspended
        releaseHeldRead()
    }

    /// Passes on a held read once nothing holds it any more.
    private func releaseHeldRead() {
        guard let record, record.readHeld, !record.pausedForHandOver, record.isWritable, !record.hooksSuspended,
              let context = recordContext
        else { return }
        self.record!.readHeld = false
        context.read()
    }

    /// Bytes read from the socket.
    @inline(__always)
    func recordRead(bytes: Int) {
        guard let record else { return }
        record.hive.registry.add(bytes, to: .bytesIn, of: record.id)
        record.hive.registry.set(Clock.wallNanoseconds(), .lastActivity, of: record.id)
    }

    /// Bytes handed to NIO for the socket.
    @inline(__always)
    func recordWritten(bytes: Int) {
        guard let record else { return }
        record.hive.registry.add(bytes, to: .bytesOut, of: record.id)
    }

    /// An outbound `read`: passed on (true) unless the queue is full, a hook is suspended or a hand-over paused
    /// the connection; then it is held until that ends.
    @inline(__always)
    func recordAllowsRead() -> Bool {
        guard let record else { return true }
        if record.isWritable && !record.hooksSuspended && !record.pausedForHandOver { return true }
        self.record!.readHeld = true
        return false
    }

    /// Stops reading the socket (a reload's hand-over): what NIO read so far has reached the frame handler, and
    /// what the client sends from now on waits in the kernel for whichever process continues the connection.
    func pauseForHandOver() {
        guard record != nil, let context = recordContext else { return }
        record!.pausedForHandOver = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
    }

    /// The hand-over did not happen: reading goes on here.
    func resumeAfterHandOver() {
        guard let record, record.pausedForHandOver, let context = recordContext else { return }
        self.record!.pausedForHandOver = false
        self.record!.readHeld = true
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        releaseHeldRead()
    }

    /// From `channelWritabilityChanged`, before the event goes on.
    func recordWritabilityChanged(context: ChannelHandlerContext) {
        guard let record else { return }
        if let queued = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes) {
            record.hive.registry.set(UInt64(queued), .queuedOut, of: record.id)
        }
        let isWritable = context.channel.isWritable
        self.record!.isWritable = isWritable
        if isWritable {
            self.record!.cancelGraceTimer()
            releaseHeldRead()
        } else {
            startGraceTimer(context: context)
        }
    }

    private func startGraceTimer(context: ChannelHandlerContext) {
        guard let record, !record.graceTimerRunning else { return }
        let grace = record.hive.limits.slowConsumerGrace
        let (hive, id) = (record.hive, record.id)
        self.record!.graceTimerRunning = true
        hive.graceTimers[id] = context.eventLoop.assumeIsolated().scheduleTask(in: grace) {
            self.record?.graceTimerRunning = false
            hive.graceTimers[id] = nil
            if self.record?.isWritable == false { self.graceExpired(context: context) }
        }
    }

    /// The queue stayed over --max-output-buffer for the whole grace period: the client is not reading.
    private func graceExpired(context: ChannelHandlerContext) {
        guard let record else { return }
        let (id, hive) = (record.id, record.hive)
        let queued = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        let grace = "\(Double(hive.limits.slowConsumerGrace.nanoseconds) / 1e9) s (--slow-consumer-grace)"
        if let session = hive.table.sessions[id] {
            session.closeSlowConsumer(queued: queued, why: "stayed over --max-output-buffer for \(grace)")
            return
        }
        hive.registry.increment(worker: hive.workerID, .slowConsumers)
        hive.logger.info(
            "closing a slow HTTP client: it has not read its responses",
            metadata: [
                "connection.id": "\(id)", "queued.bytes": "\(queued)",
                "queued.limit": "\(hive.limits.maxOutputBuffer)", "grace": "\(grace)",
            ]
        )
        context.close(promise: nil)
        hive.releaseMemorySoon()
    }

    /// The connection ended (`channelInactive`, or the handler left the pipeline): once only.
    func recordEnd() {
        guard let record, !record.ended else { return }
        self.record!.ended = true
        self.record!.cancelGraceTimer()
        let (id, hive) = (record.id, record.hive)
        hive.table.sessions[id]?.releaseSlot()  // its last counts, before the slot is freed or handed over
        if record.handedOver {
            // The replacement holds the connection, its user record and channel counts now.
            _ = hive.userIndex.bind(id, to: nil)
            hive.table.remove(id)
            return
        }
        hive.unbindOnEnd(id)  // before the slot is free: see unbindOnEnd
        hive.registry.free(id)
        hive.leaveChannels(id)
        // After the connection's other hooks. Removing it from the table comes last: removing the last connection
        // of a stopping worker ends the process.
        record.hooks.enqueue {
            await hive.hooks.close(id, hive: hive)
            hive.table.remove(id)
        }
    }
}
