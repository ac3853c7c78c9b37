/// A connection's identity, assigned by the master at accept time and never reused while the master runs.
///
/// Layout (64 bits): `generation:32 | worker:8 | slot:24`. The slot locates the registry record, the worker says
/// who owns the socket (so a push is routed without asking anyone), and the generation, bumped each time the slot is
/// reused, makes a stale id fail the lookup instead of reaching the slot's next connection (fds and slots are reused;
/// ids are not: swoole's `session_id` check, include/swoole_server.h).
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible, Comparable {
    public static let maxWorkers = 1 << 8
    public static let maxSlots = 1 << 24

    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(generation: UInt32, worker: Int, slot: Int) {
        precondition(worker >= 0 && worker < Self.maxWorkers, "worker \(worker) out of range")
        precondition(slot >= 0 && slot < Self.maxSlots, "slot \(slot) out of range")
        self.rawValue = UInt64(generation) << 32 | UInt64(worker) << 24 | UInt64(slot)
    }

    public var generation: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) }
    public var worker: Int { Int((rawValue >> 24) & 0xFF) }
    public var slot: Int { Int(rawValue & 0xFF_FFFF) }

    public var description: String { String(rawValue) }

    public static func < (lhs: ConnectionID, rhs: ConnectionID) -> Bool { lhs.rawValue < rhs.rawValue }
}
