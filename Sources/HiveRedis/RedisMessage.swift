/// One message from the Redis subscription: the channel it was published on, the pattern that matched it (for a
/// `PSUBSCRIBE` delivery), and its bytes as published.
public struct RedisMessage: Sendable, Equatable {
    public var channel: String
    /// The pattern that matched, for PSUBSCRIBE deliveries.
    public var pattern: String?
    public var payload: [UInt8]

    public init(channel: String, pattern: String? = nil, payload: [UInt8]) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }
}
