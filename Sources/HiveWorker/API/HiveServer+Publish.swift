import HiveIPC
import HiveRedis

// Publishing from application code: through Redis, so every Hive host on that Redis delivers the message.
extension HiveServer {
    /// Publishes a message on a channel, without blocking this worker: the `PUBLISH` goes out on a Redis
    /// connection this worker keeps, on its own thread, and this call suspends until Redis answers.
    ///
    /// - A `--channel` name (a broadcast channel, `test` by default) is published as it is: worker 0 of every host
    ///   subscribed to it broadcasts the message to every WebSocket client.
    /// - Any other name is a Hive channel: it is published on Redis channel `<--channel-prefix>NAME`, and every host
    ///   delivers it to the subscribers of `NAME` (``subscribe(_:to:)``, `?channels=`).
    /// - Without Redis (`--redis none`), the message goes to the subscribers of the channel on this host.
    /// - With channel history (`--history-size`, `--history`), a Hive channel's message goes through the history
    ///   script: stored in the channel's Redis stream and published with its position, which clients that asked
    ///   for envelopes receive and may resume from (Docs/REDIS.md, "Channel history").
    ///
    /// Redis carries bytes: subscribers receive a text message when the payload is valid UTF-8, binary otherwise.
    ///
    /// - Throws: ``/HiveIPC/HiveError`` with code `.invalidArgument` for a bad channel name or a message over
    ///   `--max-redis-message`, `.workerBusy` when too many publishes of this worker already wait for Redis,
    ///   `.redisUnavailable` when Redis cannot be reached, did not answer within `--redis-timeout`, or refused the
    ///   command. After a lost connection or a timeout the message may or may not have been published.
    public func publish(channel: String, _ message: HiveMessage) async throws {
        let isBroadcastChannel = redisRouting.broadcastChannels.contains(channel)
        if !isBroadcastChannel, let problem = ChannelName.problem(channel) { throw HiveError.invalidChannel(problem) }
        guard let publisher else {
            deliverNow([ChannelEntry(message: message, position: nil)], toChannel: channel)
            return
        }
        let redisChannel = isBroadcastChannel ? channel : redisRouting.prefix + channel
        // A channel with history goes through the history script: stored, then published with its position.
        let history = isBroadcastChannel ? nil : historyPolicy(for: channel).map { HistoryTarget(keys: historyKeys(for: channel), policy: $0) }
        do {
            _ = try await publisher.publish(channel: redisChannel, payload: message.bytes, history: history)
        } catch let error as RedisPublishError {
            throw HiveError(publishing: error)
        }
    }
}

extension HiveError {
    /// A failed `PUBLISH`, as the application sees it: the publisher's reason and hint, under one of Hive's codes.
    init(publishing error: RedisPublishError) {
        let code: Code
        switch error.code {
        case .payloadTooLarge: code = .invalidArgument
        case .queueFull: code = .workerBusy
        default: code = .redisUnavailable
        }
        self.init(code: code, description: error.description)
    }
}
