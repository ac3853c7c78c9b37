/// What a connection speaks right now. Swoole's `websocket_status` is the reference: a connection starts as
/// plain HTTP, may go through the WebSocket handshake, and only `.websocket` can receive a push or a broadcast.
///
/// `HiveServer.connectionInfo(_:)` and `HiveServer.connections` report it (``ConnectionSnapshot/protocolState``), and
/// a push to a connection in any other state than ``websocket`` fails with a `HiveError` whose code is
/// `notWebSocket` and whose `state` is this.
public enum ProtocolState: UInt64, Sendable, CaseIterable, CustomStringConvertible {
    /// A plain HTTP connection (keep-alive between requests): the browser's `/favicon.ico` connection, say.
    case http = 1
    /// An upgrade request was accepted and the switch to WebSocket is under way.
    case websocketHandshake = 2
    /// An established WebSocket: it receives pushes and broadcasts.
    case websocket = 3
    /// A close frame was sent or received; nothing more is delivered.
    case closing = 4
    /// The connection is gone (its registry slot is about to be freed).
    case closed = 5

    /// The name `hive connections` prints and its `--protocol` filter takes: `http`, `websocket-handshake`,
    /// `websocket`, `closing`, `closed`.
    public var description: String {
        switch self {
        case .http: "http"
        case .websocketHandshake: "websocket-handshake"
        case .websocket: "websocket"
        case .closing: "closing"
        case .closed: "closed"
        }
    }

    /// The state named `name` (a ``description``), or nil.
    package init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = match
    }
}

/// Lifecycle of a registry slot. Ownership moves with it: the master takes a `.free` slot to `.reserved` (fd in
/// flight to the worker), the owning worker takes it to `.active` when it adopts the socket and back to `.free`
/// when the connection ends. The master frees the slots of a worker that died, and a reserved slot whose hand-off
/// failed.
package enum SlotState: UInt64, Sendable {
    case free = 0
    case reserved = 1
    case active = 2
}

/// What the master's worker table says about a worker, mirrored in the registry so every process can read it.
package enum WorkerState: UInt64, Sendable, CustomStringConvertible {
    case none = 0
    case starting = 1
    case running = 2
    case stopping = 3
    case restarting = 4
    case exited = 5
    /// Its event loop did not answer the master's health check within --worker-timeout: it gets no new
    /// connections, and is killed and restarted if it stays silent as long again.
    case unresponsive = 6

    public var description: String {
        switch self {
        case .none: "none"
        case .starting: "starting"
        case .running: "running"
        case .stopping: "stopping"
        case .restarting: "restarting"
        case .exited: "exited"
        case .unresponsive: "unresponsive"
        }
    }
}

/// The Redis subscription of worker 0, as `hive status` shows it.
package enum RedisState: UInt64, Sendable, CustomStringConvertible {
    case off = 0
    case connecting = 1
    case subscribed = 2
    case disconnected = 3

    public var description: String {
        switch self {
        case .off: "off"
        case .connecting: "connecting"
        case .subscribed: "subscribed"
        case .disconnected: "disconnected"
        }
    }
}
