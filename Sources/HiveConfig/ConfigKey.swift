/// One `hive start` option as the configuration file and the environment know it. The file key is the flag without
/// its dashes (`max-output-buffer`), the variable is `HIVE_` and the key in capitals (`HIVE_MAX_OUTPUT_BUFFER`).
public struct ConfigKey: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A whole number.
        case integer
        /// A number, possibly with a fraction (seconds).
        case number
        case text
        /// Repeatable: a YAML list in the file, comma-separated in the environment, the flag once per item.
        case list
        /// On or off: the flag is given, or not.
        case flag
    }

    public let name: String
    public let kind: Kind
    /// What a good value is, for "KEY must be ..., got ..." when the value is not even of the right kind.
    public let expects: String
    /// Printed as *** by `hive config check`.
    public let secret: Bool
    public let environmentName: String
    /// Handed to the master through its own environment, not as a flag: a secret (the Redis address and
    /// password) never appears among the arguments.
    public let viaEnvironment: Bool

    public var flag: String { "--" + name }

    init(_ name: String, _ kind: Kind, _ expects: String, secret: Bool = false, environmentName: String? = nil,
         viaEnvironment: Bool = false) {
        self.name = name
        self.kind = kind
        self.expects = expects
        self.secret = secret
        self.environmentName = environmentName ?? "HIVE_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
        self.viaEnvironment = viaEnvironment
    }
}

private extension String {
    func replacingOccurrences(of target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}

extension ConfigKey {
    /// Every option of `hive start`, in the order of `hive start --help`. A new option needs a line here (the
    /// integration test `testConfigKeys_coverEveryStartOption` fails otherwise).
    public static let all: [ConfigKey] = [
        ConfigKey("host", .text, "an IPv4 or IPv6 address"),
        ConfigKey("port", .integer, "a port number between 0 (any free port) and 65535"),
        ConfigKey("workers", .integer, "a number of worker processes"),
        ConfigKey("dispatch", .text, "one of least-connections, round-robin, ip-hash"),
        ConfigKey("run-dir", .text, "a folder path"),
        ConfigKey("max-connections", .integer, "a positive number of connections"),
        ConfigKey("max-channels", .integer, "a positive number of channels"),
        ConfigKey("grace", .number, "0 or more seconds"),
        ConfigKey("worker-timeout", .number, "a number of seconds"),
        ConfigKey("daemon", .flag, "true or false"),
        ConfigKey("log-file", .text, "a file path"),
        ConfigKey("metrics-listen", .text, "HOST:PORT"),
        ConfigKey("max-message-size", .integer, "a positive number of bytes"),
        ConfigKey("max-output-buffer", .integer, "a positive number of bytes"),
        ConfigKey("slow-consumer-grace", .number, "a positive number of seconds"),
        ConfigKey("max-header-size", .integer, "a positive number of bytes"),
        ConfigKey("max-body-size", .integer, "a positive number of bytes"),
        ConfigKey("handshake-timeout", .number, "a positive number of seconds"),
        ConfigKey("http-idle-timeout", .number, "a positive number of seconds"),
        ConfigKey("body-timeout", .number, "a positive number of seconds"),
        ConfigKey("allowed-origin", .list, "a list of origins (scheme://host[:port], \"*\" or \"null\")"),
        ConfigKey("ping-interval", .number, "0 or more seconds"),
        ConfigKey("pong-timeout", .number, "a positive number of seconds"),
        ConfigKey("compression", .text, "on or off"),
        ConfigKey("compression-min-size", .integer, "0 or more bytes"),
        ConfigKey("log-level", .text, "one of trace, debug, info, notice, warning, error, critical"),
        // The existing variables keep their names: HIVE_REDIS_URL, HIVE_REDIS_PASSWORD.
        ConfigKey("redis", .text, "a Redis URL (redis://host:port or unix:///path) or \"none\"", secret: true,
                  environmentName: "HIVE_REDIS_URL", viaEnvironment: true),
        ConfigKey("redis-password", .text, "the Redis password", secret: true, viaEnvironment: true),
        ConfigKey("redis-password-file", .text, "a file path"),
        ConfigKey("channel", .list, "a list of channel names"),
        ConfigKey("pattern", .list, "a list of glob patterns"),
        ConfigKey("max-redis-message", .integer, "a positive number of bytes"),
        ConfigKey("redis-timeout", .number, "a positive number of seconds"),
        ConfigKey("channel-prefix", .text, "the prefix of each channel's Redis channel"),
        ConfigKey("api-key", .text, "the key of the HTTP publish API (visible ASCII, no spaces)", secret: true,
                  viaEnvironment: true),
        ConfigKey("history-size", .integer, "0 (off) or more messages"),
        ConfigKey("history-ttl", .integer, "0 (no expiry) or more seconds"),
        ConfigKey("history", .list, "a list of GLOB=SIZE[,TTL] rules"),
        ConfigKey("jwt-secret", .text, "an HS256 secret of at least 32 bytes", secret: true, viaEnvironment: true),
        ConfigKey("jwt-public-key", .text, "a PEM public key file path"),
    ]

    public static func named(_ name: String) -> ConfigKey? { all.first { $0.name == name } }

    /// The known key closest to a misspelt one (at most 3 edits away), for "did you mean ...?".
    public static func suggestion(for name: String) -> String? {
        let scored = all.map { ($0.name, editDistance(name, $0.name)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= 3 else { return nil }
        return best
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased().utf8.prefix(100)), b = Array(b.lowercased().utf8.prefix(100))
        guard !a.isEmpty else { return b.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
