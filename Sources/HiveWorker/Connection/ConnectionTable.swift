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

    func add(_ id: ConnectionID, channel: Channel) { channels[id] = channel }

    func addSession(_ session: WebSocketSession) { sessions[session.id] = session }

    func remove(_ id: ConnectionID) {
        channels[id] = nil
        sessions[id] = nil
        if channels.isEmpty { onEmpty?() }
    }

    /// Writes one encoded frame to every established WebSocket of this worker: the frame was encoded once, and
    /// the same buffer (reference-counted, not copied) goes to each connection. Returns how many it reached.
    @discardableResult
    func broadcast(encodedFrame: ByteBuffer) -> Int {
        var reached = 0
        for session in sessions.values where session.send(encodedFrame: encodedFrame) { reached += 1 }
        return reached
    }
}

@available(*, unavailable)
extension ConnectionTable: Sendable {}
