import HiveIPC
import NIOCore
import NIOWebSocket

/// This worker's live connections, by id: every channel (for stop and disconnect) and the WebSocket sessions
/// (for pushes and broadcasts). Confined to the worker's event loop.
final class ConnectionTable {
    private(set) var channels: [ConnectionID: Channel] = [:]
    private(set) var sessions: [ConnectionID: WebSocketSession] = [:]
    /// Called when the last connection is gone (used while stopping).
    var onEmpty: (() -> Void)?
    /// Sessions written without a flush, waiting for the deferred flush.
    private var unflushed: [WebSocketSession] = []
    /// Whether a deferred flush is queued on the event loop (`Hive.deferFlush`).
    var flushScheduled = false

    func add(_ id: ConnectionID, channel: Channel) { channels[id] = channel }

    func addSession(_ session: WebSocketSession) { sessions[session.id] = session }

    func remove(_ id: ConnectionID) {
        channels[id] = nil
        sessions.removeValue(forKey: id)?.invalidate()
        if channels.isEmpty { onEmpty?() }
    }

    /// Writes encoded frames to every established WebSocket of this worker: they were encoded once, and the same
    /// buffer (reference-counted, not copied) goes to each connection. Returns how many it reached.
    @discardableResult
    func broadcast(encodedFrames: ByteBuffer, messages: Int, flush: Bool) -> Int {
        var reached = 0
        for session in sessions.values where session.send(encodedFrames: encodedFrames, messages: messages, flush: flush) {
            reached += 1
        }
        return reached
    }

    func markUnflushed(_ session: WebSocketSession) { unflushed.append(session) }

    /// Flushes every session written in this batch, once each.
    func flushPending() {
        let sessions = unflushed
        unflushed.removeAll(keepingCapacity: true)
        for session in sessions { session.flushIfNeeded() }
    }
}

@available(*, unavailable)
extension ConnectionTable: Sendable {}
