

/// Why a push, or a disconnect, could not be done. The text names the connection, what it is, and what to do;
/// the caller decides whether it is worth a log line (a broadcast never produces these: it only reaches
/// established WebSocket connections by construction).
public enum HiveError: Error, CustomStringConvertible, Equatable {
    /// The id names no live connection: never opened, already closed, or the slot now holds another one.
    case unknownConnection(ConnectionID)
    /// The connection exists but cannot receive WebSocket messages in its current protocol state.
    case notWebSocket(ConnectionID, ProtocolState)
    /// The owning worker's inbox stayed full; the message was not queued.
    case workerBusy(ConnectionID, worker: Int)

    public var description: String {
        switch self {
        case .unknownConnection(let id):
            return "connection \(id) does not exist (never opened, or already closed); "
                + "check `exists(id)` or iterate `connections` for live ids"
        case .notWebSocket(let id, let state):
            let what: String
            switch state {
            case .http: what = "is a plain HTTP connection, not a WebSocket client"
            case .websocketHandshake: what = "is still in its WebSocket handshake"
            case .closing: what = "is closing its WebSocket"
            case .closed: what = "is closed"
            case .websocket: what = "is a WebSocket"
            }
            return "connection \(id) \(what); only established WebSocket connections can receive a push "
                + "(check `isEstablished(id)` first)"
        case .workerBusy(let id, let worker):
            return "connection \(id) is owned by worker \(worker), whose inbox is full; the message was dropped: "
                + "retry later, or lower the push rate"
        }
    }
}
