import Atomics

/// What the shared registry knows about one open connection (Swoole's `getClientInfo`): a copy of its slot, read
/// without locks, so counters may be a few updates apart, but the id check makes sure it describes the connection
/// asked for. `HiveServer.connectionInfo(_:)` and `HiveServer.connections` return it; `hive connections` prints
/// the same fields.
public struct ConnectionSnapshot: Sendable, Hashable {
    /// The connection's id.
    public var id: ConnectionID
    /// The worker holding the connection (the same as `id.worker`).
    public var worker: Int
    /// What the connection speaks now: only ``ProtocolState/websocket`` receives pushes and broadcasts.
    public var protocolState: ProtocolState
    /// The peer the master accepted it from.
    public var remote: RemoteAddress
    /// When the master accepted it: wall-clock nanoseconds since 1970.
    public var connectedAt: UInt64
    /// When bytes last arrived on it: wall-clock nanoseconds since 1970.
    public var lastActivity: UInt64
    /// Bytes read from the client.
    public var bytesIn: UInt64
    /// Bytes written to the client.
    public var bytesOut: UInt64
    /// WebSocket frames read (HTTP requests before an upgrade).
    public var framesIn: UInt64
    /// WebSocket messages and frames written.
    public var framesOut: UInt64
    /// Bytes queued in the worker for this client, as of the last change of its writability: a client that does
    /// not read shows here before it is closed as a slow consumer.
    public var queuedOut: UInt64
    /// HTTP requests served on this connection.
    public var requests: UInt64
    /// The user it is bound to (`HiveServer.bind(_:user:)`, or a token's subject), nil when none.
    public var user: String?
}

extension SharedRegistry {
    /// The live connection with this id, or nil when it is unknown, closed, or the slot now holds a newer
    /// connection.
    /// `withUser` false leaves `user` nil and the user table unread: its page is then not touched (a page of a
    /// shared mapping read for the first time is allocated), which the upgrade of every connection would do.
    package func lookup(_ id: ConnectionID, withUser: Bool = true) -> ConnectionSnapshot? {
        guard id.slot < capacity, id.worker < workerCount else { return nil }
        guard let snapshot = snapshot(slot: id.slot, withUser: withUser), snapshot.id == id else { return nil }
        return snapshot
    }

    /// The protocol state of a live connection, or nil (the cheap check a push makes).
    package func protocolState(of id: ConnectionID) -> ProtocolState? {
        guard id.slot < capacity, id.worker < workerCount else { return nil }
        guard slot(id.slot, .state).load(ordering: .acquiring) == SlotState.active.rawValue,
            slot(id.slot, .generation).load(ordering: .relaxed) == UInt64(id.generation),
            slot(id.slot, .worker).load(ordering: .relaxed) == UInt64(id.worker)
        else { return nil }
        return ProtocolState(rawValue: slot(id.slot, .protocolState).load(ordering: .acquiring))
    }

    /// Reads slot `index` if it holds an active connection.
    package func snapshot(slot index: Int, withUser: Bool = true) -> ConnectionSnapshot? {
        guard slot(index, .state).load(ordering: .acquiring) == SlotState.active.rawValue else { return nil }
        let generation = UInt32(truncatingIfNeeded: slot(index, .generation).load(ordering: .relaxed))
        let worker = Int(slot(index, .worker).load(ordering: .relaxed))
        let portAndFamily = slot(index, .portAndFamily).load(ordering: .relaxed)
        let remote = RemoteAddress(
            family: RemoteAddress.Family(rawValue: UInt8(portAndFamily & 0xFF)) ?? .none,
            bytes: (slot(index, .addressHigh).load(ordering: .relaxed), slot(index, .addressLow).load(ordering: .relaxed)),
            port: UInt16(truncatingIfNeeded: portAndFamily >> 8)
        )
        guard worker < workerCount,
            let state = ProtocolState(rawValue: slot(index, .protocolState).load(ordering: .acquiring))
        else { return nil }
        return ConnectionSnapshot(
            id: ConnectionID(generation: generation, worker: worker, slot: index),
            worker: worker,
            protocolState: state,
            remote: remote,
            connectedAt: slot(index, .connectedAt).load(ordering: .relaxed),
            lastActivity: slot(index, .lastActivity).load(ordering: .relaxed),
            bytesIn: slot(index, .bytesIn).load(ordering: .relaxed),
            bytesOut: slot(index, .bytesOut).load(ordering: .relaxed),
            framesIn: slot(index, .framesIn).load(ordering: .relaxed),
            framesOut: slot(index, .framesOut).load(ordering: .relaxed),
            queuedOut: slot(index, .queuedOut).load(ordering: .relaxed),
            requests: slot(index, .requests).load(ordering: .relaxed),
            user: withUser ? user(slot: index, generation: generation) : nil
        )
    }

    /// Every live connection of every worker, in slot order. A lazy walk over the table: it allocates nothing per
    /// free slot.
    package var connections: some Sequence<ConnectionSnapshot> {
        (0..<capacity).lazy.compactMap { self.snapshot(slot: $0) }
    }
}
