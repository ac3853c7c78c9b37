import HiveIPC
import NIOCore
import NIOWebSocket

// Delivery of records addressed to this worker's connections: from its own hooks, or from other workers' inbox
// records. Always on the event loop.
extension HiveServer {
    /// Delivers records in order; each connection they touched is flushed once, after every delivery already
    /// queued on the loop: a burst of messages becomes one write (one writev) per connection, not one per message.
    func deliver(_ records: [IPCMessage]) {
        eventLoop.preconditionInEventLoop()
        if records.count == 1, case .broadcast(let frames, let messages) = records[0] {
            let start = Clock.monotonicNanoseconds()
            return broadcastHere(ByteBuffer(bytes: frames), messages: messages, startedAt: start, alone: true)
        }
        for record in records { deliver(record, flush: false) }
        deferFlush()
    }

    /// A broadcast arriving further than this after the last write pass ended is written in its own pass.
    static let burstWindow: UInt64 = 1_000_000

    /// Whether a broadcast arriving `now` is written through to each connection (`ConnectionTable.beginPass`),
    /// rather than queued for the deferred flush: when no pass is under way, nothing waits for a flush and the
    /// last pass ended over `burstWindow` ago. A paced stream then costs one pass over the sessions instead of
    /// two. The messages of a burst arrive while a pass runs, or right after it: they queue behind the deferred
    /// flush and leave together, one write per connection.
    func writesThrough(at now: UInt64) -> Bool {
        table.throughPass == nil && !table.flushScheduled && now &- table.lastPassEndedAt >= Self.burstWindow
    }

    /// Writes a broadcast's encoded frames to this worker's sessions (logged for a hand-over, counted, timed from
    /// `start`). One that comes `alone` (not in a batch of records) is written through when `writesThrough` says
    /// so; otherwise it is queued for the deferred flush, which this schedules, behind the rest of a pass under
    /// way.
    func broadcastHere(_ frames: ByteBuffer, messages: Int, startedAt start: UInt64, alone: Bool) {
        handOverLog?.record(.broadcast(frames, messages: messages))
        guard !table.sessions.isEmpty else { return }
        broadcastWritten(startedAt: start)
        if alone && writesThrough(at: Clock.monotonicNanoseconds()) {
            table.beginPass(encodedFrames: frames, messages: messages)
            return continuePass(table.throughPasses)
        }
        endPass()
        let reached = table.broadcast(encodedFrames: frames, messages: messages, flush: false)
        registry.increment(worker: workerID, .messagesOut, by: UInt64(reached * messages))
        deferFlush()
    }

    /// How long a pass lets the event loop wait for input between chunks. Long enough that the loop polls its
    /// sockets (a task due at once would run before any I/O), short enough to cost a pass of 5,000 sessions about
    /// 0.4 ms in all.
    static let passPause = TimeAmount.microseconds(10)

    /// Writes the next chunk (`ConnectionTable.passChunk` sessions) of pass `number` if it is still under way, and
    /// schedules the one after. A message that arrives meanwhile (the next of a burst, from Redis or another
    /// worker) ends the pass (`endPass`): the sessions it has not reached get the two in one write.
    private func continuePass(_ number: UInt64) {
        guard table.throughPass != nil, table.throughPasses == number else { return }
        let messages = table.throughPass!.messages
        let (reached, done) = table.continuePass(limit: table.passChunk)
        registry.increment(worker: workerID, .messagesOut, by: UInt64(reached * messages))
        guard !done else { return passEnded() }
        eventLoop.scheduleTask(in: Self.passPause) { self.continuePass(number) }
    }

    /// Ends the pass under way, if any, before anything else is written to a session: its frames are queued for
    /// the sessions it has not reached, so they go first, and leave with what follows in the deferred flush.
    func endPass() {
        guard table.throughPass != nil else { return }
        let (reached, messages) = table.queueRestOfPass()
        registry.increment(worker: workerID, .messagesOut, by: UInt64(reached * messages))
        deferFlush()
    }

    /// Every write is out: the broadcasts' latency is known, and the burst window starts (`writesThrough(at:)`).
    /// Called at the end of a pass and of a deferred flush: the one that ends last does it.
    private func passEnded() {
        guard table.throughPass == nil, !table.flushScheduled else { return }
        recordBroadcastLatency()
        table.lastPassEndedAt = Clock.monotonicNanoseconds()
    }

    /// Connections flushed per event-loop task: about 1 ms of `writev`s, after which messages that arrived
    /// meanwhile join the queues of the connections not flushed yet.
    static let flushChunk = 128

    /// Schedules the flush of every connection written without a flush. It runs after the tasks already queued on
    /// the event loop, and in chunks of `flushChunk` connections with the loop's other tasks in between, so when
    /// the loop is behind (messages arriving faster than one pass over all connections), the messages that piled
    /// up go out together: the cost per message falls exactly when it has to. When the loop is idle it runs at
    /// once, so it adds no latency.
    func deferFlush() {
        guard !table.flushScheduled else { return }
        table.flushScheduled = true
        eventLoop.execute {
            self.table.flushScheduled = false
            if self.table.flushPending(limit: Self.flushChunk) { return self.deferFlush() }
            self.passEnded()
        }
    }

    /// Counts a broadcast this worker wrote to its clients, and starts its latency clock (`BroadcastLatency`).
    func broadcastWritten(startedAt start: UInt64) {
        registry.increment(worker: workerID, .broadcasts)
        table.broadcastWritten(startedAt: start)
    }

    /// Every write is flushed: the broadcasts waiting for it have reached the last of their clients (handed to the
    /// kernel, or queued behind a client that does not read, which is what the slow-consumer limit is for).
    private func recordBroadcastLatency() {
        guard !table.broadcastStarts.isEmpty else { return }
        let now = Clock.monotonicNanoseconds()
        table.takeFlushedBroadcasts { registry.observeBroadcastLatency(worker: workerID, nanoseconds: now &- $0) }
    }

    func deliver(_ record: IPCMessage, flush: Bool = true) {
        eventLoop.preconditionInEventLoop()
        switch record {
        case .push(let id, let opcode, let payload):
            // The registry said websocket when the push was made; the connection may have closed since.
            guard let session = table.sessions[id] else {
                if let log = handOverLog, !log.overflowed {  // it may still be on its way from a retired process
                    var frames = ByteBufferAllocator().buffer(capacity: payload.count + 10)
                    Self.appendFrame(opcode: opcode, payload: payload, to: &frames)
                    log.record(.push(id, frames))
                    return
                }
                registry.worker(workerID, .pushesFailed).wrappingIncrement(ordering: .relaxed)
                return
            }
            var frames = ByteBufferAllocator().buffer(capacity: payload.count + 10)
            Self.appendFrame(opcode: opcode, payload: payload, to: &frames)
            if session.send(encodedFrames: session.compressedIfAgreed(frames), messages: 1, flush: flush) {
                registry.increment(worker: workerID, .messagesOut)
            }
        case .broadcast(let frames, let messages):
            // Only ever in a batch (`deliver(_:)`), which the deferred flush sends.
            let start = Clock.monotonicNanoseconds()
            broadcastHere(ByteBuffer(bytes: frames), messages: messages, startedAt: start, alone: false)
        case .disconnect(let id, let code, let reason):
            if let session = table.sessions[id] {
                session.close(code: WebSocketErrorCode(codeNumber: Int(code)), reason: reason)
            } else {
                table.channel(id)?.close(promise: nil)
            }
        case .channelMessage(let channel, let bytes, let messages):
            guard let entries = ChannelEntryCodec.decode(bytes, expected: messages) else {
                logger.warning("dropped a channel message record from another worker: its entries do not decode", metadata: [
                    "channel": "\(channel)", "record.bytes": "\(bytes.count)", "hint": "a bug: workers of one build write what they read",
                ])
                return
            }
            deliverHere(toChannel: channel, entries: entries, flush: flush)
        case .subscription(let id, let channel, let subscribe):
            applySubscriptionRecord(id, channel, subscribe: subscribe)
        case .binding(let id, let user):
            applyBindingRecord(id, user: user)
        case .userMessage(let user, let frames, let messages):
            deliverHere(toUser: user, encodedFrames: ByteBuffer(bytes: frames), messages: messages, flush: flush)
        case .userPush(let user, let opcode, let payload):
            applyUserPush(user: user, opcode: opcode, payload: payload)
        case .connection, .ready, .retire, .retired, .healthCheck, .healthy, .handOver, .handOverChunk:
            preconditionFailure("\(record) is not a delivery")
        }
    }

    /// Encodes messages as server frames (unmasked), back to back in one buffer: done once per broadcast, for
    /// every worker.
    static func encodeFrames(_ messages: [HiveMessage]) -> ByteBuffer {
        var frames = ByteBufferAllocator().buffer(capacity: messages.reduce(0) { $0 + $1.byteCount + 10 })
        for message in messages {
            // Each payload is copied once, into `frames`: a large Redis message is not held several times over.
            switch message {
            case .text(let text):
                WebSocketFrameCodec.writeHeader(opcode: .text, length: text.utf8.count, to: &frames)
                frames.writeString(text)
            case .binary(let bytes):
                WebSocketFrameCodec.writeHeader(opcode: .binary, length: bytes.count, to: &frames)
                frames.writeBytes(bytes)
            }
        }
        return frames
    }

    static func appendFrame(opcode: UInt8, payload: [UInt8], to frames: inout ByteBuffer) {
        let kind = WebSocketOpcode(encodedWebSocketOpcode: opcode) ?? .binary
        WebSocketFrameCodec.writeHeader(opcode: kind, length: payload.count, to: &frames)
        frames.writeBytes(payload)
    }
}

extension HiveMessage {
    var byteCount: Int {
        switch self {
        case .text(let text): text.utf8.count
        case .binary(let bytes): bytes.count
        }
    }
}
