import Foundation

/// The verified claims of the token a WebSocket client opened its connection with (`hive start --jwt-secret` or
/// `--jwt-public-key`): who it is (`sub`) and which channels it may join (`channels`). `HiveConnection.token` is
/// nil when no key is configured (connections are anonymous).
///
/// A class, not a struct: a connection keeps only a reference to it, so a connection without a token costs 8 bytes
/// for it, not the size of its strings and arrays. It never changes after the handshake.
public final class HiveToken: Sendable, Hashable, CustomStringConvertible {
    /// The `sub` claim: the user the token was issued to (1 to 64 bytes of UTF-8, no control characters).
    public let subject: String
    /// The `channels` claim as given, nil when the token has none. See `allows(channel:)` for the rule.
    public let channels: [String]?
    /// The `exp` claim, nil when the token has none. Checked at the handshake only: a connection stays open after it.
    public let expiresAt: Date?

    /// A token as the handshake verifies it (tests of an application's hooks make their own).
    public init(subject: String, channels: [String]?, expiresAt: Date? = nil) {
        self.subject = subject
        self.channels = channels
        self.expiresAt = expiresAt
    }

    /// The `channels` entry that allows every channel.
    public static let anyChannel = "*"

    /// Whether the token lets its connection join `channel`: when its `channels` claim lists that name or `"*"`.
    /// A token without a `channels` claim allows no channel (the safe default: a token grants what it says).
    public func allows(channel: String) -> Bool {
        guard let channels else { return false }
        return channels.contains(channel) || channels.contains(Self.anyChannel)
    }

    /// The allowed channels as a sentence part, for error messages.
    var allowedDescription: String {
        guard let channels else { return "has no channels claim, which allows no channel" }
        if channels.isEmpty { return "allows no channel (its channels claim is empty)" }
        return "allows only \(channels.prefix(8).joined(separator: ", "))\(channels.count > 8 ? ", …" : "")"
    }

    /// The subject and channels, for logs and debugging (no signature: there is none to show).
    public var description: String { "HiveToken(subject: \(subject), channels: \(channels.map { "\($0)" } ?? "none"))" }

    /// Equal claims.
    public static func == (lhs: HiveToken, rhs: HiveToken) -> Bool {
        lhs === rhs || (lhs.subject == rhs.subject && lhs.channels == rhs.channels && lhs.expiresAt == rhs.expiresAt)
    }

    /// Hashes the claims.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(subject)
        hasher.combine(channels)
        hasher.combine(expiresAt)
    }
}
