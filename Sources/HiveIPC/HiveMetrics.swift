/// The `/metrics` page: every series Hive exports, built from one `RegistrySnapshot` (the numbers `hive status`
/// shows) and the live slots' bytes. The series are listed with their meaning in Docs/OPERATIONS.md ("Metrics").
///
/// Held by the master across scrapes for one reason: byte counters sum finished connections and live slots, and a
/// connection that ends between the two reads is missed for that scrape; the last value served is kept so a
/// counter never goes down (Prometheus would read a decrease as a restart).
package struct HiveMetrics {
    package struct Facts: Sendable {
        package var version: String
        /// The Redis address without its password (`RedisURL.description`), nil with `--redis none`.
        package var redisAddress: String?
        package var redisChannels: Int
        package var redisPatterns: Int

        package init(version: String, redisAddress: String?, redisChannels: Int, redisPatterns: Int) {
            self.version = version
            self.redisAddress = redisAddress
            self.redisChannels = redisChannels
            self.redisPatterns = redisPatterns
        }
    }

    package let facts: Facts
    private var served: [String: UInt64] = [:]

    package init(facts: Facts) {
        self.facts = facts
    }

    /// The page for this moment.
    /// - Parameters:
    ///   - reloading: a rolling reload is in progress (the master knows, the registry does not).
    package mutating func render(_ snapshot: RegistrySnapshot, liveBytes: [(bytesIn: UInt64, bytesOut: UInt64)],
                                reloading: Bool) -> String {
        var page = PrometheusText()
        let master = snapshot.master
        let workers = snapshot.workers
        func perWorker(_ value: (RegistrySnapshot.Worker) -> UInt64) -> [PrometheusText.Sample] {
            workers.map { PrometheusText.Sample([("worker", String($0.id))], value($0)) }
        }

        page.family("hive_build_info", .gauge, help: "Always 1; the version of the running master.",
                    [.init([("version", facts.version)], 1 as UInt64)])
        page.family("hive_master_start_time_seconds", .gauge, help: "When the master started, in Unix seconds.",
                    [.init([], Double(master.startedAt / 1_000_000) / 1e3)])
        page.family("hive_master_reloading", .gauge, help: "1 while a rolling reload (SIGUSR1) is in progress.",
                    [.init([], reloading ? 1 : 0 as UInt64)])

        // Connections.
        page.family("hive_connections", .gauge, help: "Open connections by worker and protocol (http, websocket).",
                    workers.flatMap { worker in
                        [PrometheusText.Sample([("worker", String(worker.id)), ("protocol", "http")], worker.http),
                         PrometheusText.Sample([("worker", String(worker.id)), ("protocol", "websocket")], worker.websocket)]
                    })
        page.family("hive_connections_accepted_total", .counter, help: "Connections accepted by the master.",
                    [.init([], master.accepted)])
        page.family("hive_connections_refused_total", .counter,
                    help: "Connections answered 503 by the master: registry full (full), or no worker could take them (busy).",
                    [.init([("reason", "full")], master.refusedFull), .init([("reason", "busy")], master.refusedBusy)])
        page.family("hive_accept_errors_total", .counter, help: "accept() failures in the master (EMFILE, ENFILE, ...).",
                    [.init([], master.acceptErrors)])
        page.family("hive_connections_assigned_total", .counter, help: "Connections handed to each worker.",
                    perWorker(\.assigned))
        page.family("hive_connections_closed_total", .counter, help: "Connections each worker finished.",
                    perWorker(\.closed))

        // Traffic.
        page.family("hive_http_requests_total", .counter, help: "HTTP requests answered.", perWorker(\.requests))
        page.family("hive_websocket_messages_received_total", .counter, help: "WebSocket messages received from clients.",
                    perWorker(\.messagesIn))
        page.family("hive_websocket_messages_sent_total", .counter,
                    help: "WebSocket messages sent to clients (a broadcast counts once per client reached).",
                    perWorker(\.messagesOut))
        page.family("hive_received_bytes_total", .counter, help: "Bytes read from client sockets (HTTP and WebSocket).",
                    bytes(workers, "in") { $0.closedBytesIn &+ (liveBytes.indices.contains($0.id) ? liveBytes[$0.id].bytesIn : 0) })
        page.family("hive_sent_bytes_total", .counter, help: "Bytes written to client sockets (HTTP and WebSocket).",
                    bytes(workers, "out") { $0.closedBytesOut &+ (liveBytes.indices.contains($0.id) ? liveBytes[$0.id].bytesOut : 0) })
        page.family("hive_broadcasts_total", .counter, help: "Broadcasts each worker wrote to its clients (one per broadcast call, whatever the number of clients).",
                    perWorker(\.broadcasts))
        page.family("hive_broadcast_write_seconds", .histogram,
                    help: "Time from a broadcast reaching a worker (its own call, or the record from another worker) "
                        + "to its frames being written to the last of the worker's clients it reached.",
                    workers.flatMap { worker in
                        let latency = worker.broadcastLatency
                        // Read while the worker writes: +Inf must not be below the last bucket.
                        let count = max(latency.count, latency.cumulative.last ?? 0)
                        let label = ("worker", String(worker.id))
                        let buckets = zip(BroadcastLatency.bounds, latency.cumulative).map { bound, count in
                            PrometheusText.Sample([label, ("le", PrometheusText.format(Double(bound) / 1e9))], count,
                                                  suffix: "_bucket")
                        }
                        return buckets + [
                            PrometheusText.Sample([label, ("le", "+Inf")], count, suffix: "_bucket"),
                            PrometheusText.Sample([label], Double(latency.sumNanoseconds) / 1e9, suffix: "_sum"),
                            PrometheusText.Sample([label], count, suffix: "_count"),
                        ]
                    })
        page.family("hive_pushes_failed_total", .counter,
                    help: "Pushes refused: not a WebSocket, unknown connection, or the worker's inbox was full.",
                    perWorker(\.pushesFailed))
        page.family("hive_slow_consumers_closed_total", .counter,
                    help: "Connections closed because their output queue stayed over --max-output-buffer.",
                    perWorker(\.slowConsumers))
        page.family("hive_protocol_errors_total", .counter,
                    help: "Connections failed for bad HTTP or WebSocket input (limits, malformed frames, refused origins).",
                    perWorker(\.protocolErrors))

        // Workers.
        page.family("hive_worker_state", .gauge,
                    help: "1 for the state each worker is in (starting, running, unresponsive, stopping, restarting, exited), else 0.",
                    workers.flatMap { worker in
                        Self.workerStates.map { state in
                            PrometheusText.Sample([("worker", String(worker.id)), ("state", state.description)],
                                                  worker.state == state ? 1 : 0 as UInt64)
                        }
                    })
        page.family("hive_worker_restarts_total", .counter,
                    help: "Times each worker was started again after its process exited (crash or kill).",
                    perWorker(\.restarts))
        page.family("hive_worker_start_time_seconds", .gauge,
                    help: "When each worker's current process started, in Unix seconds.",
                    workers.map { .init([("worker", String($0.id))], Double($0.startedAt / 1_000_000) / 1e3) })

        // Redis: only when a subscription is configured, so a dashboard can tell "off" from "down".
        if let address = facts.redisAddress {
            let redis = snapshot.redis
            page.family("hive_redis_info", .gauge, help: "Always 1; the Redis address (without password) worker 0 subscribes to.",
                        [.init([("address", address)], 1 as UInt64)])
            page.family("hive_redis_state", .gauge,
                        help: "1 for the state of worker 0's subscription (connecting, subscribed, disconnected), else 0.",
                        Self.redisStates.map { .init([("state", $0.description)], redis.state == $0 ? 1 : 0 as UInt64) })
            page.family("hive_redis_subscriptions", .gauge, help: "Channels and patterns worker 0 subscribes to.",
                        [.init([("kind", "channel")], UInt64(facts.redisChannels)),
                         .init([("kind", "pattern")], UInt64(facts.redisPatterns))])
            page.family("hive_redis_messages_received_total", .counter, help: "Messages received from Redis.",
                        [.init([], redis.messages)])
            page.family("hive_redis_received_bytes_total", .counter, help: "Payload bytes of the messages received from Redis.",
                        [.init([], redis.bytes)])
            page.family("hive_redis_reconnects_total", .counter, help: "Successful subscriptions after the first.",
                        [.init([], redis.reconnects)])
            page.family("hive_redis_messages_dropped_total", .counter,
                        help: "Redis messages dropped because worker 0's queue was full.", [.init([], redis.dropped)])
            page.family("hive_redis_messages_oversized_total", .counter,
                        help: "Redis messages over --max-redis-message, skipped unread.", [.init([], redis.oversized)])
            page.family("hive_redis_last_message_time_seconds", .gauge,
                        help: "When the last Redis message arrived, in Unix seconds (0: none yet).",
                        [.init([], Double(redis.lastMessageAt / 1_000_000) / 1e3)])
        }
        return page.text
    }

    static let workerStates: [WorkerState] = [.starting, .running, .unresponsive, .stopping, .restarting, .exited]
    static let redisStates: [RedisState] = [.connecting, .subscribed, .disconnected]

    /// A byte counter per worker that never goes below what was served before (see the type's comment).
    private mutating func bytes(_ workers: [RegistrySnapshot.Worker], _ direction: String,
                                _ total: (RegistrySnapshot.Worker) -> UInt64) -> [PrometheusText.Sample] {
        workers.map { worker in
            let key = "\(direction) \(worker.id)"
            let value = max(total(worker), served[key] ?? 0)
            served[key] = value
            return PrometheusText.Sample([("worker", String(worker.id))], value)
        }
    }
}
