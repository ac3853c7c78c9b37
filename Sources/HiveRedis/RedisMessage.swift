/// One message from the Redis subscription: the channel it was published on, the pattern that matched it (for a
/// `PSUBSCRIBE` delivery), and its bytes as published.
///
/// Worker 0 receives them in its `redisMessages` hook, in publish order, from the channels and patterns of
/// `HiveApplication.redisChannels` and `redisPatterns` (or `start --channel` / `--pattern`).
public struct RedisMessage: Sendable, Equatable {
    /// The channel it was published on.
    public var channel: String
    /// The pattern that matched, for PSUBSCRIBE deliveries; nil for a channel subscription.
    public var pattern: String?
    /// The bytes as published: any bytes, not necessarily UTF-8.
    public var payload: [UInt8]

    /// A message as the subscription delivers it (tests of an application's `redisMessages` make their own).
    public init(channel: String, pattern: String? = nil, payload: [UInt8]) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }
}
