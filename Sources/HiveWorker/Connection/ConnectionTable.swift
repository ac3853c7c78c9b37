import HiveIPC
import NIOCore
import NIOWebSocket

/// This worker's live connections, by id: the WebSocket sessions (for pushes and broadcasts; each holds its
/// channel) and the channels of the other connections (HTTP, or a handshake not finished), for stop and
/// disconnect. Confined to the worker's event loop.
///
/// One entry per connection: an upgraded connection leaves `plainChannels` when its session arrives. A second
/// entry for every connection cost ~94 B of RSS per connection at 16,700 connections per worker (a `Channel`
/// existential is 40 B, and a dictionary of 16,700 entries has 32,768 buckets).
final class ConnectionTable {
    private(set) var plainChannels: [ConnectionID: Channel] = [:]
    private(set) var sessions: [ConnectionID: WebSocketSession] = [:]
    /// Called when the last connection is gone (used while stopping).
    var onEmpty: (() -> Void)?
    /// Sessions written without a flush, waiting for the deferred flush; those before `flushCursor` are done.
    /// Appended to once per session a batch writes to, on the loop only: unchecked like the session's fields.
    @exclusivity(unchecked) private var unflushed: [WebSocketSession] = []
    @exclusivity(unchecked) private var flushCursor = 0
    /// Whether a deferred flush is queued on the event loop (`Hive.deferFlush`).
    var flushScheduled = false
    /// When the last write pass (a broadcast written through, or a deferred flush) ended, monotonic ns:
    /// `HiveServer.writesThrough(at:)`.
    var lastPassEndedAt: UInt64 = 0
    /// When each broadcast written since the last complete flush pass reached this worker (monotonic ns): its
    /// latency is known once that pass ends. Bounded: past `maxTimedBroadcasts` waiting, more go untimed.
    private(set) var broadcastStarts: [UInt64] = []
    static let maxTimedBroadcasts = 4096

    func add(_ id: ConnectionID, channel: Channel) { plainChannels[id] = channel }

    /// The sessions in socket-descriptor order, for every broadcast pass (written through, or queued for the
    /// deferred flush, which then writes in the same order): made again on the first broadcast after a session
    /// came or went. Descriptor order is about the order the master accepted the connections, the order their
    /// kernel memory was allocated in; a pass in the dictionary's hash order cost about a tenth more CPU when
    /// written through (Docs/BENCHMARKS.md, round 9) and a burst about 5 % of its deliveries/s (round 11).
    @exclusivity(unchecked) private var lane: [WebSocketSession] = []
    @exclusivity(unchecked) private var laneIsStale = true

    func addSession(_ session: WebSocketSession) {
        sessions[session.id] = session
        plainChannels.removeValue(forKey: session.id)
        laneIsStale = true
    }

    func remove(_ id: ConnectionID) {
        plainChannels[id] = nil
        if let session = sessions.removeValue(forKey: id) {
            session.invalidate()
            // The lane lets go of the sessions at once, not at the next broadcast (a pass in progress keeps its
            // own copy); it is made again when needed.
            if !laneIsStale {
                lane.removeAll(keepingCapacity: true)
                laneIsStale = true
            }
        }
        if isEmpty { onEmpty?() }
    }

    /// The channel of a live connection, WebSocket or not.
    func channel(_ id: ConnectionID) -> Channel? { plainChannels[id] ?? sessions[id]?.channel }

    /// The keep-alive sweep's pass: publishes every session's send counters and, given `now` (pings on), hands each
    /// frame handler the time. One pass over the sessions and no array: collecting the handlers first retained and
    /// released each of them every second, most of an idle worker's CPU (Docs/BENCHMARKS.md, round 10). A handler
    /// that drops its connection here removes it from `sessions`, which the pass does not see (it iterates the
    /// dictionary as it was).
    func sweepSessions(now: NIODeadline?) {
        for session in sessions.values {
            session.publishCounters()
            if let now { session.frameHandler.keepAliveTick(now: now) }
        }
    }

    func publishCounters() {
        for session in sessions.values { session.publishCounters() }
    }

    /// Live connections of this worker.
    var count: Int { plainChannels.count + sessions.count }

    var isEmpty: Bool { plainChannels.isEmpty && sessions.isEmpty }

    /// Writes encoded frames to every established WebSocket of this worker: they were encoded once, and the same
    /// buffer (reference-counted, not copied) goes to each connection; sessions with permessage-deflate get the
    /// frames compressed once per window size (`CompressedFrames`). In descriptor order, so the deferred flush
    /// writes in that order too. Returns how many it reached.
    @discardableResult
    func broadcast(encodedFrames: ByteBuffer, messages: Int, flush: Bool) -> Int {
        var reached = 0
        var compressed = CompressedFrames(plain: encodedFrames, compressor: compressor)
        for session in sessionsInDescriptorOrder() {
            // The plain frames passed as they are (borrowed): a copy chosen by a conditional expression cost a
            // retain and a release of their buffer per session.
            let sent = session.deflateWindowBits == 0
                ? session.send(encodedFrames: encodedFrames, messages: messages, flush: flush)
                : session.send(
                    encodedFrames: compressed.frames(windowBits: Int(session.deflateWindowBits)), messages: messages, flush: flush
                )
            if sent { reached += 1 }
        }
        return reached
    }

    /// A broadcast being written through (`HiveServer.broadcastHere`): its frames, the sessions it goes to (the lane
    /// when it began: its own copy) and how far it got. It is written a chunk of sessions at a time, the event loop
    /// polling between chunks; a message that arrives meanwhile for any of this worker's sessions first queues the
    /// pass's frames for the sessions it has not reached (`queueRestOfPass`), so one that follows a broadcast in a
    /// burst leaves with it, in one write per connection, and never before it.
    struct ThroughPass {
        let frames: ByteBuffer
        let messages: Int
        let sessions: [WebSocketSession]
        var next = 0
        var compressed: CompressedFrames
    }
    @exclusivity(unchecked) private(set) var throughPass: ThroughPass?
    /// Sessions a pass writes before the event loop polls again (`HiveServer.continuePass`): about 1 ms of sends.
    var passChunk = 128
    /// Counts the passes begun, so a pass's continuation knows whether its pass is still the one under way.
    private(set) var throughPasses: UInt64 = 0

    /// Begins writing a broadcast through to every established WebSocket of this worker, in descriptor order.
    func beginPass(encodedFrames: ByteBuffer, messages: Int) {
        throughPasses &+= 1
        throughPass = ThroughPass(
            frames: encodedFrames, messages: messages, sessions: sessionsInDescriptorOrder(),
            compressed: CompressedFrames(plain: encodedFrames, compressor: compressor)
        )
    }

    /// Writes the pass to its next `limit` sessions (`WebSocketSession.writeThrough`: straight to the socket when
    /// nothing is queued ahead); returns how many it reached and whether it is done (then it is over).
    func continuePass(limit: Int) -> (reached: Int, done: Bool) {
        guard var pass = throughPass else { return (0, true) }
        throughPass = nil  // while it writes: a session's `send` must not queue the rest of it
        let end = min(pass.sessions.count, pass.next + limit)
        var reached = 0
        while pass.next < end {
            let session = pass.sessions[pass.next]
            pass.next += 1
            let sent = session.deflateWindowBits == 0
                ? session.writeThrough(pass.frames, messages: pass.messages)
                : session.send(
                    encodedFrames: pass.compressed.frames(windowBits: Int(session.deflateWindowBits)),
                    messages: pass.messages, flush: true
                )
            if sent { reached += 1 }
        }
        let done = pass.next >= pass.sessions.count
        if !done { throughPass = pass }
        return (reached, done)
    }

    /// Ends the pass under way by queueing its frames for the sessions it has not reached, for the deferred flush
    /// (which the caller schedules). Returns how many it reached and how many messages each got.
    func queueRestOfPass() -> (reached: Int, messages: Int) {
        guard var pass = throughPass else { return (0, 0) }
        throughPass = nil
        var reached = 0
        while pass.next < pass.sessions.count {
            let session = pass.sessions[pass.next]
            pass.next += 1
            let frames = session.deflateWindowBits == 0
                ? pass.frames : pass.compressed.frames(windowBits: Int(session.deflateWindowBits))
            if session.send(encodedFrames: frames, messages: pass.messages, flush: false) { reached += 1 }
        }
        return (reached, pass.messages)
    }

    /// `lane`, made again if a session came or went since it was last made.
    private func sessionsInDescriptorOrder() -> [WebSocketSession] {
        if laneIsStale {
            lane.removeAll(keepingCapacity: true)
            lane.append(contentsOf: sessions.values)
            lane.sort { $0.socket < $1.socket }
            laneIsStale = false
        }
        return lane
    }

    /// The worker's shared compressor and inflater for permessage-deflate, made when the first client negotiates
    /// it: a worker whose clients never do holds no zlib state.
    private(set) var compressor: BroadcastCompressor?
    private(set) var inflater: MessageInflater?

    /// The shared inflater, made on first use (nil if zlib has no memory: the client is then not offered
    /// compression).
    func compression(minSize: Int) -> MessageInflater? {
        if compressor == nil { compressor = BroadcastCompressor(minSize: minSize) }
        if inflater == nil { inflater = MessageInflater() }
        return inflater
    }

    func markUnflushed(_ session: WebSocketSession) { unflushed.append(session) }

    /// Sessions' worth of `unflushed` storage kept between flush passes.
    static let keptFlushCapacity = 1024

    func broadcastWritten(startedAt start: UInt64) {
        if broadcastStarts.count < Self.maxTimedBroadcasts { broadcastStarts.append(start) }
    }

    /// Hands over the start times of the broadcasts whose frames are now all flushed, and forgets them (the
    /// storage is kept: no allocation per flush pass).
    func takeFlushedBroadcasts(_ body: (UInt64) -> Void) {
        for start in broadcastStarts { body(start) }
        broadcastStarts.removeAll(keepingCapacity: true)
    }

    /// Flushes the sessions written without a flush, once each, in the order they were written, at most `limit` of
    /// them. Returns whether some are still waiting: the caller lets the event loop run in between, so a message
    /// that arrives meanwhile is queued behind the earlier ones on the sessions not flushed yet and leaves with
    /// them in the same `writev`. A worker that falls behind thus coalesces within one pass, not only between
    /// passes.
    func flushPending(limit: Int) -> Bool {
        let end = min(unflushed.count, flushCursor + limit)
        while flushCursor < end {
            let session = unflushed[flushCursor]
            flushCursor += 1
            session.flushIfNeeded()
        }
        guard flushCursor >= unflushed.count else { return true }
        // A burst's pass over every session leaves its storage behind only while it is small: the broadcasts
        // that come alone go through `lane`, and one array per session is enough memory for them.
        unflushed.removeAll(keepingCapacity: unflushed.count <= Self.keptFlushCapacity)
        flushCursor = 0
        return false
    }
}

@available(*, unavailable)
extension ConnectionTable: Sendable {}
