import HiveIPC
import HiveRedis
import NIOCore
import NIOWebSocket

// Channel history (Docs/REDIS.md, "Channel history"): what each subscriber of a channel on this worker gets —
// the plain frames, or envelopes with positions, in order and without gap or duplicate across a recovery.
extension HiveServer {
    /// The history policy of a channel (nil: no history; messages are published with a plain `PUBLISH`).
    func historyPolicy(for channel: String) -> ChannelHistory.Policy? {
        history?.policy(for: channel)
    }

    /// The keys of a Hive channel's history.
    func historyKeys(for channel: String) -> ChannelHistory.Keys {
        ChannelHistory.Keys(redisChannel: redisRouting.prefix + channel)
    }

    /// Delivers entries to this worker's subscribers of `channel`: the plain frames are encoded once for every
    /// subscriber without envelopes, the envelopes once for every subscriber with them, and each enveloped
    /// subscriber's cursor decides which of them it gets (and whether history must be read first). On the loop.
    func deliverHere(toChannel channel: String, entries: [ChannelEntry], flush: Bool) {
        guard !entries.isEmpty else { return }
        var plainFrames: ByteBuffer?
        if let log = handOverLog {
            plainFrames = ChannelEntry.frames(entries)
            log.record(.channel(HandOverLog.ChannelBatch(channel: channel, frames: plainFrames!, entries: entries)))
        }
        guard let members = channelIndex.members[channel] else { return }
        var reached = 0
        if members.sessions.count > members.cursors.count {
            let frames = plainFrames ?? ChannelEntry.frames(entries)
            for (id, session) in members.sessions where members.cursors[id] == nil {
                if session.send(encodedFrames: frames, messages: entries.count, flush: flush) { reached += entries.count }
            }
        }
        if !members.cursors.isEmpty {
            let envelopes = ChannelEnvelope.frames(channel: channel, entries: entries)
            for (id, cursor) in members.cursors {
                guard let session = members.sessions[id] else { continue }
                reached += perform(cursor.receive(entries), cursor, session, channel: channel, envelopes: envelopes, flush: flush)
            }
        }
        registry.increment(worker: workerID, .messagesOut, by: UInt64(reached))
    }

    /// A new subscriber asked for `since`: it gets what it missed before anything live. On the loop, right after
    /// it joined `channel` (so live messages already reach its cursor, which holds them meanwhile).
    func recover(_ id: ConnectionID, in channel: String, since: HistoryPosition) {
        eventLoop.preconditionInEventLoop()
        guard let session = table.sessions[id], channelIndex.cursor(id, in: channel) != nil else { return }
        let cursor = ChannelCursor(since: since, maxBuffered: channelIndex.maxRecoveryBuffer)
        channelIndex.replaceCursor(id, in: channel, with: cursor)
        _ = perform(cursor.start(), cursor, session, channel: channel, envelopes: nil, flush: true)
        // See `ChannelCursor.catchUp`: after worker 0's next look at the channel table (every 200 ms).
        let bound = NIOLoopBound(cursor, eventLoop: eventLoop)
        eventLoop.scheduleTask(in: .milliseconds(500)) {
            let cursor = bound.value
            guard self.channelIndex.cursor(id, in: channel) === cursor, let session = self.table.sessions[id] else { return }
            _ = self.perform(cursor.catchUp(), cursor, session, channel: channel, envelopes: nil, flush: true)
        }
    }

    /// Reload hand-over: a batch from the hand-over log to an adopted enveloped subscriber, through its cursor
    /// (which drops what the retired process gave it already and reads history for a gap). Without a flush.
    func deliverLogged(_ entries: [ChannelEntry], envelopes: (buffer: ByteBuffer, ends: [Int]), to session: WebSocketSession,
                       cursor: ChannelCursor, channel: String) -> Int {
        perform(cursor.receive(entries), cursor, session, channel: channel, envelopes: envelopes, flush: false)
    }

    /// Performs a cursor's steps for one session; returns how many messages it was given.
    private func perform(_ steps: [ChannelCursor.Step], _ cursor: ChannelCursor, _ session: WebSocketSession, channel: String,
                         envelopes: (buffer: ByteBuffer, ends: [Int])?, flush: Bool) -> Int {
        var sent = 0
        // Runs of consecutive live entries leave as one slice of the worker's envelope buffer.
        var run: Range<Int>?
        func sendRun() {
            guard let range = run, let envelopes else { return }
            run = nil
            let start = range.lowerBound == 0 ? 0 : envelopes.ends[range.lowerBound - 1]
            let end = envelopes.ends[range.upperBound - 1]
            if let slice = envelopes.buffer.getSlice(at: start, length: end - start),
                session.send(encodedFrames: slice, messages: range.count, flush: flush) {
                sent += range.count
            }
        }
        for step in steps {
            if case .live(let index) = step, let current = run, current.upperBound == index {
                run = current.lowerBound..<index + 1
                continue
            }
            sendRun()
            switch step {
            case .live(let index):
                run = index..<index + 1
            case .entry(let entry):
                if session.send(encodedFrames: ChannelEnvelope.frame(ChannelEnvelope.json(channel: channel, entry: entry)), messages: 1, flush: flush) {
                    sent += 1
                }
            case .notRecovered:
                session.send(encodedFrames: ChannelEnvelope.frame(ChannelEnvelope.notRecovered(channel: channel)), messages: 1, flush: flush)
            case .fetch(let after):
                readHistory(channel: channel, after: after, for: session.id, cursor: cursor)
            case .close(let reason):
                logger.info("closing an enveloped subscriber: its channel position cannot be kept", metadata: [
                    "connection.id": "\(session.id)", "channel": "\(channel)", "reason": "\(reason)",
                ])
                session.close(code: WebSocketErrorCode(codeNumber: 1013), reason: String(reason.prefix(120)))
            }
        }
        sendRun()
        return sent
    }

    /// Reads history on the reader's thread, then hands the page to the cursor on the loop (if the session is
    /// still there and still has that cursor).
    private func readHistory(channel: String, after: UInt64, for id: ConnectionID, cursor: ChannelCursor) {
        let bound = NIOLoopBound(cursor, eventLoop: eventLoop)
        let finish: @Sendable (Result<HistoryReader.Page, RedisError>) -> Void = { result in
            self.onLoop {
                let cursor = bound.value
                guard self.channelIndex.cursor(id, in: channel) === cursor, let session = self.table.sessions[id] else { return }
                _ = self.perform(cursor.fetched(result), cursor, session, channel: channel, envelopes: nil, flush: true)
            }
        }
        guard let historyReader else {
            // No Redis, or no history: nothing was kept, so nothing can be recovered.
            return finish(.success(HistoryReader.Page(epoch: nil, last: 0, entries: [])))
        }
        // MAXLEN ~ keeps up to a node (100 entries) more than the size.
        let limit = (historyPolicy(for: channel)?.size ?? 10_000) + 128
        historyReader.read(historyKeys(for: channel), after: after, limit: limit, completion: finish)
    }
}
