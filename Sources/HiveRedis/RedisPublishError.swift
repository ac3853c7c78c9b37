/// Why a `RedisPublisher.publish` call failed: which channel, which Redis (never its password), what happened and
/// what to do. Callers switch over `code`; a struct rather than an enum so a new code is not a breaking change.
package struct RedisPublishError: Error, CustomStringConvertible, Sendable, Equatable {
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case queueFull, payloadTooLarge, unreachable, connectionLost, timedOut, rejected, shutDown
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// Too many publishes already wait for Redis: nothing was sent.
        package static let queueFull = Code(.queueFull)
        /// The payload is over `Configuration.maxMessageSize`: nothing was sent.
        package static let payloadTooLarge = Code(.payloadTooLarge)
        /// Redis could not be reached (connect, AUTH), or is in back-off after such a failure: nothing was sent.
        package static let unreachable = Code(.unreachable)
        /// The connection broke before the reply: the message may or may not have been published.
        package static let connectionLost = Code(.connectionLost)
        /// No reply within `Configuration.timeout`: the message may or may not have been published.
        package static let timedOut = Code(.timedOut)
        /// Redis answered with an error (NOAUTH, …): not published.
        package static let rejected = Code(.rejected)
        /// The publisher was shut down before the message was sent.
        package static let shutDown = Code(.shutDown)

        package var description: String { value.rawValue }
    }

    package let code: Code
    package let channel: String
    /// The Redis address without its password.
    package let address: String
    /// What happened.
    package let reason: String
    /// What to do about it.
    package let hint: String

    package var description: String { "PUBLISH to channel \"\(channel)\" on \(address) failed: \(reason); \(hint)" }
}
