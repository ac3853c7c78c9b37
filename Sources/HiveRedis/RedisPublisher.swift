import Logging

/// PUBLISH from a worker without blocking it: each of a few long-lived hiredis connections is driven by its own
/// thread (`PublisherLane`), and `publish` only queues the message and suspends until the reply.
///
/// - Lazy: no thread and no connection until the first publish. One instance per worker process; `shutdown()` when
///   the worker stops.
/// - Pipelined: a lane writes every publish queued meanwhile in one go before reading their replies, so throughput
///   is bounded by Redis, not by round trips. Replies come back in order, so publishes from one caller that awaits
///   each one are delivered in that caller's order.
/// - Bounded: at most `maxPending` publishes (and `maxPendingBytes` of payload) wait at once; past that `publish`
///   throws `.queueFull` at once instead of growing memory. A payload over `maxMessageSize` is refused too.
/// - Never hangs: every call ends within about `timeout` seconds of being queued (`.timedOut`, the connection is
///   then closed). Redis unreachable or lost fails the calls waiting for it (`.unreachable`, `.connectionLost`); a
///   later publish reconnects, with back-off after failed attempts (100 ms doubling to 5 s, during which publishes
///   fail at once).
/// - The process must ignore SIGPIPE, as workers do: hiredis writes AUTH with write(). The publisher's own writes
///   pass MSG_NOSIGNAL.
/// - Pub/sub is at-most-once: a message is delivered to the subscribers connected when Redis runs the PUBLISH,
///   which is what the returned count says.
package final class RedisPublisher: Sendable {
    package struct Configuration: Sendable {
        package var url: RedisURL
        /// Seconds to connect (AUTH included), and then for each publish from being queued to its reply
        /// (`--redis-timeout`).
        package var timeout: Double
        /// Largest payload accepted, in bytes (`--max-redis-message`: Hive's subscribers skip larger messages).
        package var maxMessageSize: Int
        /// Connections to Redis, each with its own thread; 1 already carries tens of thousands of publishes a
        /// second when callers run concurrently.
        package var connections: Int
        /// Publishes queued or waiting for their reply at once, over all connections.
        package var maxPending: Int
        /// Payload bytes queued or waiting for their reply at once, over all connections.
        package var maxPendingBytes: Int

        package init(url: RedisURL, timeout: Double = 3, maxMessageSize: Int = 1 << 20, connections: Int = 1,
                    maxPending: Int = 10_000, maxPendingBytes: Int = 64 << 20) {
            self.url = url
            self.timeout = timeout
            self.maxMessageSize = maxMessageSize
            self.connections = connections
            self.maxPending = maxPending
            self.maxPendingBytes = maxPendingBytes
        }
    }

    package let configuration: Configuration
    private let lanes: [PublisherLane]
    private let logger: Logger

    /// Starts nothing: the first publish starts a lane's thread, which connects.
    /// - Parameters:
    ///   - configuration: where Redis is and the limits; `connections`, `maxPending`, `maxPendingBytes` and
    ///     `timeout` must be positive.
    ///   - logger: connection lost, unreachable and reconnected are logged once per change, never per publish.
    package init(configuration: Configuration, logger: Logger) {
        precondition(configuration.connections >= 1 && configuration.connections <= 64, "RedisPublisher: connections must be 1...64")
        precondition(configuration.maxPending >= 1 && configuration.maxPendingBytes >= 1, "RedisPublisher: limits must be positive")
        precondition(configuration.timeout > 0, "RedisPublisher: timeout must be positive")
        self.configuration = configuration
        self.logger = logger
        let count = configuration.connections
        // The limits are shared evenly: each lane enforces its part without a lock common to all of them.
        lanes = (0..<count).map { index in
            PublisherLane(
                index: index, configuration: configuration,
                maxPending: max(1, configuration.maxPending / count), maxPendingBytes: max(1, configuration.maxPendingBytes / count),
                logger: logger
            )
        }
    }

    /// Lanes end on their own once their queue is empty; `shutdown()` is the way to wait for that.
    deinit {
        for lane in lanes { lane.stop(wait: nil) }
    }

    /// Publishes `payload` on `channel` and returns how many subscribers received it (PUBLISH's reply). Never blocks
    /// the calling thread: callable from any task or thread, including an event loop's.
    ///
    /// Ends within about `configuration.timeout` seconds; cancelling the task does not withdraw a queued message.
    /// - Throws: `RedisPublishError` (see its codes): the channel, the Redis address and what to do.
    package func publish(channel: String, payload: [UInt8]) async throws -> Int {
        try await publish(channel: channel, payload: payload, history: nil).receivers
    }

    /// Publishes `payload` on `channel`; with `history`, through the history script (Docs/REDIS.md), which appends
    /// it to the channel's stream and publishes it framed with its position, atomically.
    /// - Returns: how many subscribers received it, and its position when it went to history.
    /// - Throws: `RedisPublishError`, as `publish(channel:payload:)`.
    package func publish(channel: String, payload: [UInt8], history: HistoryTarget?) async throws -> PublishReceipt {
        guard payload.count <= configuration.maxMessageSize else {
            throw RedisPublishError(
                code: .payloadTooLarge, channel: channel, address: configuration.url.description,
                reason: "the payload is \(payload.count) bytes, over the limit of \(configuration.maxMessageSize) (--max-redis-message)",
                hint: "nothing was sent; send a smaller message, or raise --max-redis-message (Hive's subscribers skip larger ones)"
            )
        }
        let lane = lanes.count == 1 ? lanes[0] : lanes.min { $0.pendingCount < $1.pendingCount }!
        return try await withCheckedThrowingContinuation { continuation in
            lane.enqueue(channel: channel, payload: payload, history: history, continuation: continuation)
        }
    }

    /// Stops taking publishes (later calls throw `.shutDown`), lets those already queued finish (each within its
    /// timeout), closes the connections and joins the threads. Blocks for about `timeout` seconds at most (never
    /// more than twice that plus one); call it when the worker stops, off its event loop.
    package func shutdown() {
        for lane in lanes { lane.stop(wait: nil) }
        // Each call ends by its deadline, so this is a safety net, not the expected path.
        let deadline = Monotonic.seconds() + 2 * configuration.timeout + 1
        for lane in lanes where !lane.stop(wait: max(0, deadline - Monotonic.seconds())) {
            logger.warning("redis publisher thread still running after shutdown; leaving it to end on its own", metadata: [
                "redis.address": "\(configuration.url)", "redis.connection": "\(lane.index)",
                "hint": "a bug: every publish should have ended within --redis-timeout",
            ])
        }
    }

    /// Publishes queued or waiting for a reply now, over all connections (for tests and status).
    var pendingCount: Int { lanes.reduce(0) { $0 + $1.pendingCount } }
    /// Publishes no connection's thread has taken yet (for tests).
    var queuedCount: Int { lanes.reduce(0) { $0 + $1.queuedCount } }
}

/// Where a history publish goes: the channel's keys and how much it keeps.
package struct HistoryTarget: Sendable, Equatable {
    package var keys: ChannelHistory.Keys
    package var policy: ChannelHistory.Policy

    package init(keys: ChannelHistory.Keys, policy: ChannelHistory.Policy) {
        self.keys = keys
        self.policy = policy
    }
}

/// What Redis said about one publish.
package struct PublishReceipt: Sendable, Equatable {
    /// Subscribers that received it (hosts, for a Hive channel).
    package var receivers: Int
    /// Its place in the channel's history; nil for a plain `PUBLISH`.
    package var position: HistoryPosition?

    package init(receivers: Int, position: HistoryPosition?) {
        self.receivers = receivers
        self.position = position
    }
}
