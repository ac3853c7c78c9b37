import HiveIPC
import Logging
import NIOCore
import NIOWebSocket

#if canImport(Glibc)
import Glibc
#endif

/// One established WebSocket connection of this worker: the write side (pushes, broadcasts, replies) and the
/// events of its frame handler. Lives on the worker's event loop.
final class WebSocketSession: WebSocketFrameHandlerDelegate {
    // The fields a delivery reads come first, so that with the object header (whose reference count each
    // delivery touches) they are the first 80 bytes: a broadcast's two passes over thousands of sessions each
    // touch two cache lines of a session, not three or four (`connection`, 80 bytes, used to come first).
    /// The connection's protocol handler, through which every frame is written.
    let frameHandler: WebSocketFrameHandler
    /// The connection's socket. NIO owns it; this session writes to it directly only on the event loop and only
    /// while NIO has nothing queued for it, so bytes can never be reordered or interleaved.
    let socket: Int32
    /// Messages sent since they were last added to the connection's registry slot (`publishCounters`); here it
    /// fills the padding after `socket`. Adding every delivery to the slot cost two cache misses on it per
    /// delivery, in two passes over every session of a broadcast (0.3 µs of a 12 µs delivery).
    @exclusivity(unchecked) private var unpublishedFrames: UInt32 = 0
    let hive: HiveServer
    // The session's mutable fields are touched on the event loop only, never while another access is in progress:
    // `@exclusivity(unchecked)` drops the runtime's dynamic exclusivity checks on them, which were about a fifth of
    // the instructions of a delivery (two to four `swift_beginAccess` per `send` and per flush).
    @exclusivity(unchecked) private var isClosing = false
    /// The window this client agreed to for our compressed messages (permessage-deflate), 0 without compression.
    /// A byte beside `isClosing`: it fits in that field's padding, so a session is no bigger than before.
    let deflateWindowBits: UInt8
    /// The slot is freed or handed over: nothing more is published to it (its next owner writes it).
    @exclusivity(unchecked) private var slotReleased = false
    /// Whether the channel is active and NIO holds no byte for the socket, as the frame handler last said
    /// (`webSocketDirectWrites`). With `isClosing` and `pending` it is all a broadcast's write-through pass reads
    /// (`writeThrough`): fields of the session, none of the handler's. Fills the last byte of padding before
    /// `unpublishedBytes`, so a session is no bigger.
    @exclusivity(unchecked) private var directWrites = false
    /// Bytes the direct writes sent since the last `publishCounters`. With the three bytes above it fits in one
    /// word: the counters made a session no bigger.
    @exclusivity(unchecked) private var unpublishedBytes: UInt32 = 0
    /// Frames waiting for the flush (the table's deferred flush, or the end of `send` with `flush`), and their size.
    @exclusivity(unchecked) private var pending = PendingFrames.none
    @exclusivity(unchecked) private var pendingBytes = 0
    /// What the hooks are told about the connection; `user` changes on a bind (event loop only).
    @exclusivity(unchecked) var connection: HiveConnection
    let channel: Channel
    /// The connection's hooks (its record handler's queue): open, messages, close, in order.
    private let hooks: HookQueue

    init(
        connection: HiveConnection, channel: Channel, socket: Int32, frameHandler: WebSocketFrameHandler,
        hooks: HookQueue, hive: HiveServer, compression: PerMessageDeflate.Agreement? = nil
    ) {
        self.connection = connection
        self.hooks = hooks
        self.channel = channel
        self.socket = socket
        self.frameHandler = frameHandler
        self.hive = hive
        self.deflateWindowBits = UInt8(compression?.deflateWindowBits ?? 0)
    }

    /// `frames` (encoded for one client: a push) compressed if this client negotiated permessage-deflate and a
    /// message is long enough; `frames` itself otherwise.
    func compressedIfAgreed(_ frames: ByteBuffer) -> ByteBuffer {
        guard deflateWindowBits != 0, let compressor = hive.table.compressor else { return frames }
        return compressor.compress(frames, windowBits: Int(deflateWindowBits))
    }

    var id: ConnectionID { connection.id }

    /// Nothing waits to be written: no frame pending here, none unfinished in NIO (a reload hands a connection
    /// over only then, so no byte is left behind in this process).
    /// (A broadcast pass under way may not have reached it yet.)
    var isFlushed: Bool { pending.isEmpty && frameHandler.unfinishedWrites == 0 && hive.table.throughPass == nil }

    /// The frames of `pending`. A paced message finds none and leaves alone: held here, among the session's hot
    /// fields, instead of in an array's heap buffer (one more cache line to touch per session in each of a
    /// broadcast's two passes, and 64 bytes that every session that ever got a message kept). 24 bytes instead of
    /// the array's 8: a session is 184 bytes instead of 168 (192 instead of 176 from malloc).
    enum PendingFrames {
        case none
        case one(ByteBuffer)
        /// Frames that came faster than the flushes: they leave together in one `writev`.
        case several([ByteBuffer])

        var isEmpty: Bool {
            if case .none = self { return true }
            return false
        }
    }

    /// A reload handed the connection over, or is about to: this process writes nothing more to it (what it would
    /// have sent is the replacement's, see HandOverSender). What it sent is in the slot before the replacement
    /// (the slot's next writer) takes it.
    func stopWriting() {
        isClosing = true
        publishCounters()
    }

    /// The hand-over did not happen: this process writes to it again.
    func resumeWriting() { isClosing = false }

    /// Adds the messages and bytes sent since the last call to the connection's registry slot, where `hive
    /// connections`, `connectionInfo` and the metrics read them: called by the keep-alive sweep (at most a second
    /// apart), before the slot is freed (`releaseSlot`), and when this process reads its own connection.
    func publishCounters() {
        guard !slotReleased, unpublishedFrames | unpublishedBytes != 0 else { return }
        if unpublishedFrames != 0 { hive.registry.add(Int(unpublishedFrames), to: .framesOut, of: id) }
        if unpublishedBytes != 0 { hive.registry.add(Int(unpublishedBytes), to: .bytesOut, of: id) }
        unpublishedFrames = 0
        unpublishedBytes = 0
    }

    /// The connection ended (its slot is freed right after) or was handed over: the last counts go to the slot,
    /// which is not written again from this session (the closed totals and the next owner take it from there).
    func releaseSlot() {
        publishCounters()
        slotReleased = true
    }

    /// Writes pre-encoded frames (`messages` of them). Without `flush`, the table flushes it at the end of the batch.
    /// Returns whether it was queued.
    ///
    /// A queue over --max-output-buffer is allowed for a while (a burst, or a worker that was busy, leaves a
    /// backlog that a client reading normally drains in moments): the record handler closes the client when it
    /// stays over for --slow-consumer-grace. A client whose queue is past 8 times the limit when a message arrives
    /// is closed at once, so one client never costs its worker more than that and one message, and never slows the
    /// other clients of this worker.
    @discardableResult
    func send(encodedFrames: ByteBuffer, messages: Int, flush: Bool = true) -> Bool {
        guard !isClosing else { return false }
        // A broadcast pass under way may not have reached this session: its frames go first (`HiveServer.endPass`).
        if hive.table.throughPass != nil { hive.endPass() }
        let size = encodedFrames.readableBytes
        // Rare path: only a client over the limit pays for the look at NIO's queue. The cap applies to the backlog
        // a message joins, so one message larger than the cap still goes to a client that keeps up.
        if !frameHandler.isWritable || pendingBytes + size > hive.limits.maxOutputBuffer {
            let queued = pendingBytes + frameHandler.bufferedBytes
            if queued > hive.limits.maxOutputHardCap {
                let limit = hive.limits.maxOutputBuffer
                closeSlowConsumer(
                    queued: queued, why: "passed \(ConnectionLimits.hardCapFactor) × --max-output-buffer (\(limit) bytes)"
                )
                return false
            }
        }
        pendingBytes += size
        switch pending {
        case .none:
            pending = .one(encodedFrames)
            if !flush { hive.table.markUnflushed(self) }
        case .one(let first):
            pending = .several([first, encodedFrames])
        case .several(var frames):
            pending = .none  // the array unique again: appended in place
            frames.append(encodedFrames)
            pending = .several(frames)
        }
        if flush { flushIfNeeded() }
        unpublishedFrames &+= UInt32(truncatingIfNeeded: messages)
        return true
    }

    /// Writes a broadcast's plain frames in the pass that delivers them (`ConnectionTable.continuePass`):
    /// straight to the socket when nothing is queued ahead of them, reading only this object;
    /// what the kernel does not take goes to NIO, in order. Otherwise (frames or NIO writes queued, the channel
    /// closed or closing) `send` with a flush, which applies every check. Returns whether it was sent or queued.
    @inline(__always)
    func writeThrough(_ frames: ByteBuffer, messages: Int) -> Bool {
        guard directWrites, !isClosing, case .none = pending else {
            return send(encodedFrames: frames, messages: messages, flush: true)
        }
        let written = Self.writeDirectly(frames, to: socket)
        countSent(written)
        unpublishedFrames &+= UInt32(truncatingIfNeeded: messages)
        if written < frames.readableBytes {
            // A full socket buffer: the rest waits in NIO, whose writability then marks a slow consumer.
            var rest = frames
            rest.moveReaderIndex(forwardBy: written)
            frameHandler.write(rest, promise: nil)
            frameHandler.flush()
        }
        return true
    }

    /// Closes this client with 1008 as a slow consumer, counted and logged once.
    func closeSlowConsumer(queued: Int, why: String) {
        guard !isClosing else { return }
        hive.registry.increment(worker: hive.workerID, .slowConsumers)
        hive.logger.info(
            "closing a slow WebSocket consumer: its output queue \(why)",
            metadata: [
                "connection.id": "\(id)", "queued.bytes": "\(queued)", "queued.limit": "\(hive.limits.maxOutputBuffer)",
            ]
        )
        pending = .none
        pendingBytes = 0
        close(code: .policyViolation, reason: "slow consumer")
        hive.releaseMemorySoon()
    }

    /// Sends the pending frames. When NIO has nothing queued for this socket (the usual case), they go straight
    /// to the kernel with one `send`/`writev`, skipping NIO's write path, which costs about a quarter of a
    /// delivery's time in a fan-out; whatever the kernel does not take (a full socket buffer) is handed to NIO in
    /// order, and NIO's writability then marks a slow consumer as before.
    func flushIfNeeded() {
        let frames: [ByteBuffer]
        switch pending {
        case .none: return
        case .one(let frame):
            pending = .none
            return flushOne(frame)
        case .several(let several):
            frames = several
        }
        pending = .none
        pendingBytes = 0
        // Once the channel is closed its descriptor number may already belong to a newer connection: never write
        // to it directly then (the table also drops a closed session's pending frames, see `invalidate`).
        guard frameHandler.isActive else { return }
        let total = frames.reduce(0) { $0 + $1.readableBytes }
        var written = 0
        if frameHandler.unfinishedWrites == 0 {
            written = Self.writeDirectly(frames, to: socket)
            countSent(written)
        }
        guard written < total else { return }
        // What the kernel did not take goes to NIO, in order. Small frames are copied into one write: NIO's queue
        // costs ~200 bytes per write besides the bytes, so a backed-up client must cost its bytes, not its number
        // of messages. Large ones are written as they are (their overhead is small, a copy would not be).
        var skip = written
        var coalesced: ByteBuffer?
        let coalesce = frames.count > 1 && total - written <= Self.coalesceLimit
        for var frame in frames {
            if skip >= frame.readableBytes {
                skip -= frame.readableBytes
                continue
            }
            frame.moveReaderIndex(forwardBy: skip)
            skip = 0
            if coalesce {
                if coalesced == nil { coalesced = ByteBufferAllocator().buffer(capacity: total - written) }
                coalesced!.writeBuffer(&frame)
            } else {
                frameHandler.write(frame, promise: nil)
            }
        }
        if let coalesced { frameHandler.write(coalesced, promise: nil) }
        frameHandler.flush()
    }

    /// `flushIfNeeded` for one frame, the usual case.
    private func flushOne(_ frame: ByteBuffer) {
        pendingBytes = 0
        guard frameHandler.isActive else { return }  // see flushIfNeeded
        var written = 0
        if frameHandler.unfinishedWrites == 0 {
            written = Self.writeDirectly(frame, to: socket)
            countSent(written)
        }
        guard written < frame.readableBytes else { return }
        var rest = frame
        rest.moveReaderIndex(forwardBy: written)
        frameHandler.write(rest, promise: nil)
        frameHandler.flush()
    }

    /// Backed-up frames up to this many bytes in all are copied into one write.
    static let coalesceLimit = 64 * 1024

    /// One non-blocking `writev` of the frames; returns the bytes the kernel took (0 on EAGAIN or an error: NIO
    /// then writes them and meets the error itself, closing the channel the usual way).
    static func writeDirectly(_ frames: [ByteBuffer], to socket: Int32) -> Int {
        if frames.count == 1 { return writeDirectly(frames[0], to: socket) }
        var vectors: [iovec] = []
        vectors.reserveCapacity(min(frames.count, Int(UIO_MAXIOV)))
        // The buffers stay alive in `frames` for the whole call; their storage does not move.
        for frame in frames.prefix(Int(UIO_MAXIOV)) {
            frame.withUnsafeReadableBytes { vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count)) }
        }
        var message = msghdr()
        let n = vectors.withUnsafeMutableBufferPointer { buffer -> Int in
            message.msg_iov = buffer.baseAddress
            message.msg_iovlen = buffer.count
            return sendmsg(socket, &message, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
        }
        return withExtendedLifetime(frames) { max(n, 0) }
    }

    /// One non-blocking `send` of one frame; returns the bytes the kernel took (0 on EAGAIN or an error).
    static func writeDirectly(_ frame: ByteBuffer, to socket: Int32) -> Int {
        let n = frame.withUnsafeReadableBytes {
            Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
        }
        return max(n, 0)
    }

    /// Counts bytes the kernel took. One write is at most 2 GiB (the kernel's limit): a session that sent over
    /// 2 GiB since the last sweep publishes first, so the 32-bit count never wraps.
    @inline(__always)
    private func countSent(_ bytes: Int) {
        if unpublishedBytes > UInt32(Int32.max) { publishCounters() }
        unpublishedBytes &+= UInt32(truncatingIfNeeded: bytes)
    }

    /// The connection ended: forget pending frames so a deferred flush cannot write them anywhere.
    func invalidate() {
        pending = .none
        pendingBytes = 0
        isClosing = true
    }

    func close(code: WebSocketErrorCode, reason: String) {
        guard !isClosing else { return }
        flushIfNeeded()  // what was sent before the close goes out before the close frame
        isClosing = true
        hive.registry.setProtocol(id, .closing)
        if frameHandler.isInPipeline {
            frameHandler.initiateClose(code: code, reason: reason)
        } else {
            channel.close(promise: nil)
        }
    }

    // MARK: WebSocketFrameHandlerDelegate

    func webSocketDirectWrites(_ allowed: Bool) { directWrites = allowed }

    func webSocketReceived(_ message: WebSocketMessage) {
        hive.registry.increment(worker: hive.workerID, .messagesIn)
        let hiveMessage: HiveMessage
        switch message.kind {
        case .text: hiveMessage = .text(String(buffer: message.data))
        case .binary: hiveMessage = .binary(Array(buffer: message.data))
        }
        hooks.enqueue(.message(hiveMessage, self))
    }

    /// The connection is established: the application's open hook runs before its messages.
    func opened() {
        let (hive, connection, session) = (hive, connection, NIOLoopBound(self, eventLoop: hive.eventLoop))
        hooks.enqueue {
            do {
                try await hive.hooks.open(connection, hive: hive)
            } catch {
                session.value.hookFailed("open", error)
            }
        }
    }

    /// A hook of this connection threw: the worker goes on, the connection is closed with 1011.
    func hookFailed(_ hook: String, _ error: Error) {
        hive.logger.error(
            "\(hook) hook failed; closing the connection with 1011",
            metadata: ["connection.id": "\(id)", "error": "\(error)"]
        )
        close(code: .unexpectedServerError, reason: "application error")
    }

    func webSocketFrameRead(bytes: Int) {
        hive.registry.add(1, to: .framesIn, of: id)
    }

    func webSocketFrameWritten(bytes: Int) {
        hive.registry.add(1, to: .framesOut, of: id)
    }

    func webSocketClosing(code: WebSocketErrorCode, initiatedByPeer: Bool) {
        flushIfNeeded()  // called before the handler writes its close frame: data first, then the close
        isClosing = true
        hive.registry.setProtocol(id, .closing)
        switch code {
        case .protocolError, .dataInconsistentWithMessage, .messageTooLarge:
            hive.registry.increment(worker: hive.workerID, .protocolErrors)
        default:
            break
        }
    }
}

@available(*, unavailable)
extension WebSocketSession: Sendable {}
