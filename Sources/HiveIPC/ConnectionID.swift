/// A connection's identity, assigned by the master at accept time and never reused while the master runs.
///
/// Layout (64 bits): `generation:32 | worker:8 | slot:24`. The slot locates the registry record, the worker says
/// who owns the socket (so a push is routed without asking anyone), and the generation, bumped each time the slot is
/// reused, makes a stale id fail the lookup instead of reaching the slot's next connection (fds and slots are reused;
/// ids are not: swoole's `session_id` check, include/swoole_server.h).
///
/// An application gets ids from its hooks (`HiveConnection.id`, `HiveRequest.connection`, `close`), from
/// `HiveServer.connections`, or from outside (`hive connections` prints them, `hive push ID` takes them); it may
/// keep them in its own tables and hand them to any worker: `push` and `disconnect` reach the owner from anywhere.
/// An id printed as text (``description``) is its ``rawValue`` in decimal.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// How many workers an id can name (8 bits): the upper bound of `hive start --workers`.
    public static let maxWorkers = 1 << 8
    /// How many registry slots an id can name (24 bits): the upper bound of `hive start --max-connections`.
    public static let maxSlots = 1 << 24

    /// The 64 bits of the id, as `hive connections` prints them and `hive push` takes them.
    public let rawValue: UInt64

    /// The id with these 64 bits (from `hive connections`, a database, a message): whether it names a live
    /// connection is only known when it is used (`HiveServer.exists`, or a `HiveError` with code
    /// `unknownConnection`).
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The id the master assigns to the connection in `slot` of the registry, owned by `worker`.
    package init(generation: UInt32, worker: Int, slot: Int) {
        precondition(worker >= 0 && worker < Self.maxWorkers, "worker \(worker) out of range")
        precondition(slot >= 0 && slot < Self.maxSlots, "slot \(slot) out of range")
        self.rawValue = UInt64(generation) << 32 | UInt64(worker) << 24 | UInt64(slot)
    }

    /// How many times the registry slot had been reused when this connection took it.
    public var generation: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) }
    /// The worker that holds the connection's socket (0 ..< `HiveServer.workerCount`).
    public var worker: Int { Int((rawValue >> 24) & 0xFF) }
    /// The connection's record in the shared registry.
    public var slot: Int { Int(rawValue & 0xFF_FFFF) }

    /// The ``rawValue`` in decimal: what `hive connections` prints and `hive push` takes.
    public var description: String { String(rawValue) }

    /// Ids in raw order (generation first): a stable order for listings, not the order of connection.
    public static func < (lhs: ConnectionID, rhs: ConnectionID) -> Bool { lhs.rawValue < rhs.rawValue }
}
