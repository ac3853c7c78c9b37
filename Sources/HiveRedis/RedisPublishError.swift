/// Why a `RedisPublisher.publish` call failed: which channel, which Redis (never its password), what happened and
/// what to do. Callers switch over `code`; a struct rather than an enum so a new code is not a breaking change.
public struct RedisPublishError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case queueFull, payloadTooLarge, unreachable, connectionLost, timedOut, rejected, shutDown
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// Too many publishes already wait for Redis: nothing was sent.
        public static let queueFull = Code(.queueFull)
        /// The payload is over `Configuration.maxMessageSize`: nothing was sent.
        public static let payloadTooLarge = Code(.payloadTooLarge)
        /// Redis could not be reached (connect, AUTH), or is in back-off after such a failure: nothing was sent.
        public static let unreachable = Code(.unreachable)
        /// The connection broke before the reply: the message may or may not have been published.
        public static let connectionLost = Code(.connectionLost)
        /// No reply within `Configuration.timeout`: the message may or may not have been published.
        public static let timedOut = Code(.timedOut)
        /// Redis answered with an error (NOAUTH, …): not published.
        public static let rejected = Code(.rejected)
        /// The publisher was shut down before the message was sent.
        public static let shutDown = Code(.shutDown)

        public var description: String { value.rawValue }
    }

    public let code: Code
    public let channel: String
    /// The Redis address without its password.
    public let address: String
    /// What happened.
    public let reason: String
    /// What to do about it.
    public let hint: String

    public var description: String { "PUBLISH to channel \"\(channel)\" on \(address) failed: \(reason); \(hint)" }
}
