import Atomics

/// The counters of the whole registry (header, every worker record, the Redis block), copied in one pass. Read
/// without locks: values may be a few updates apart, which is what both readers want. `hive status` (the CLI)
/// and `/metrics` (the master) read it, so they show the same numbers under the same meaning.
public struct RegistrySnapshot: Sendable {
    public struct Master: Sendable {
        public var pid: Int32
        public var startedAt: UInt64
        public var accepted: UInt64
        public var refusedFull: UInt64
        public var refusedBusy: UInt64
        public var acceptErrors: UInt64
    }

    public struct Worker: Sendable {
        public var id: Int
        public var pid: Int32
        public var state: WorkerState
        public var startedAt: UInt64
        public var restarts: UInt64
        /// Raw wait status of the previous process of this id, or 0.
        public var lastExitStatus: Int32
        public var assigned: UInt64
        public var closed: UInt64
        public var http: UInt64
        public var websocket: UInt64
        public var requests: UInt64
        public var messagesIn: UInt64
        public var messagesOut: UInt64
        public var pushesFailed: UInt64
        public var slowConsumers: UInt64
        public var protocolErrors: UInt64
        public var broadcasts: UInt64
        /// Bytes of the connections this worker id has finished; add the live slots' bytes for the total.
        public var closedBytesIn: UInt64
        public var closedBytesOut: UInt64
        public var broadcastLatency: BroadcastLatency.Snapshot

        /// How the previous process of this id ended, if one did: "status 1" or "signal 9".
        public var lastExit: String? {
            guard restarts > 0 || lastExitStatus != 0 else { return nil }
            let status = lastExitStatus
            return status & 0x7F != 0 ? "signal \(status & 0x7F)" : "status \((status >> 8) & 0xFF)"
        }
    }

    public struct Redis: Sendable {
        public var state: RedisState
        public var messages: UInt64
        public var bytes: UInt64
        public var reconnects: UInt64
        public var dropped: UInt64
        public var oversized: UInt64
        public var lastError: String
        public var lastMessageAt: UInt64
        public var subscribedSince: UInt64
    }

    public var master: Master
    public var workers: [Worker]
    public var redis: Redis

    public init(_ registry: SharedRegistry) {
        func header(_ field: SharedRegistry.Header) -> UInt64 { registry.header(field).load(ordering: .relaxed) }
        master = Master(
            pid: Int32(truncatingIfNeeded: header(.masterPID)), startedAt: header(.startedAt),
            accepted: header(.accepted), refusedFull: header(.refusedFull), refusedBusy: header(.refusedBusy),
            acceptErrors: header(.acceptErrors)
        )
        workers = (0..<registry.workerCount).map { id in
            func word(_ field: SharedRegistry.WorkerField) -> UInt64 { registry.worker(id, field).load(ordering: .relaxed) }
            return Worker(
                id: id, pid: Int32(truncatingIfNeeded: word(.pid)), state: WorkerState(rawValue: word(.state)) ?? .none,
                startedAt: word(.startedAt), restarts: word(.restarts),
                lastExitStatus: Int32(truncatingIfNeeded: word(.lastExitStatus)), assigned: word(.assigned),
                closed: word(.closed), http: word(.httpConnections), websocket: word(.webSocketConnections),
                requests: word(.requests), messagesIn: word(.messagesIn), messagesOut: word(.messagesOut),
                pushesFailed: word(.pushesFailed), slowConsumers: word(.slowConsumers),
                protocolErrors: word(.protocolErrors), broadcasts: word(.broadcasts),
                closedBytesIn: word(.closedBytesIn), closedBytesOut: word(.closedBytesOut),
                broadcastLatency: registry.broadcastLatency(worker: id)
            )
        }
        func word(_ field: SharedRegistry.RedisField) -> UInt64 { registry.redis(field).load(ordering: .relaxed) }
        redis = Redis(
            state: RedisState(rawValue: word(.state)) ?? .off, messages: word(.messages), bytes: word(.bytes),
            reconnects: word(.reconnects), dropped: word(.dropped), oversized: word(.oversized),
            lastError: registry.redisLastError, lastMessageAt: word(.lastMessageAt),
            subscribedSince: word(.subscribedSince)
        )
    }
}
