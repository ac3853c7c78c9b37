import Atomics

/// The counters of the whole registry (header, every worker record, the Redis block), copied in one pass. Read
/// without locks: values may be a few updates apart, which is what both readers want. `hive status` (the CLI)
/// and `/metrics` (the master) read it, so they show the same numbers under the same meaning.
package struct RegistrySnapshot: Sendable {
    package struct Master: Sendable {
        package var pid: Int32
        package var startedAt: UInt64
        package var accepted: UInt64
        package var refusedFull: UInt64
        package var refusedBusy: UInt64
        package var acceptErrors: UInt64
    }

    package struct Worker: Sendable {
        package var id: Int
        package var pid: Int32
        package var state: WorkerState
        package var startedAt: UInt64
        package var restarts: UInt64
        /// Raw wait status of the previous process of this id, or 0.
        package var lastExitStatus: Int32
        package var assigned: UInt64
        package var closed: UInt64
        package var http: UInt64
        package var websocket: UInt64
        package var requests: UInt64
        package var messagesIn: UInt64
        package var messagesOut: UInt64
        package var pushesFailed: UInt64
        package var slowConsumers: UInt64
        package var protocolErrors: UInt64
        package var broadcasts: UInt64
        /// Bytes of the connections this worker id has finished; add the live slots' bytes for the total.
        package var closedBytesIn: UInt64
        package var closedBytesOut: UInt64
        package var broadcastLatency: BroadcastLatency.Snapshot

        /// How the previous process of this id ended, if one did: "status 1" or "signal 9".
        package var lastExit: String? {
            guard restarts > 0 || lastExitStatus != 0 else { return nil }
            let status = lastExitStatus
            return status & 0x7F != 0 ? "signal \(status & 0x7F)" : "status \((status >> 8) & 0xFF)"
        }
    }

    package struct Redis: Sendable {
        package var state: RedisState
        package var messages: UInt64
        package var bytes: UInt64
        package var reconnects: UInt64
        package var dropped: UInt64
        package var oversized: UInt64
        package var lastError: String
        package var lastMessageAt: UInt64
        package var subscribedSince: UInt64
    }

    package var master: Master
    package var workers: [Worker]
    package var redis: Redis

    package init(_ registry: SharedRegistry) {
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
