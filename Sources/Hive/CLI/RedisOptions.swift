import ArgumentParser
import Foundation
import HiveRedis

/// Where Redis is and its password, from the command line or the environment. The password never has to be on a
/// command line, where every local user can read it (`ps`, /proc/PID/cmdline): `--redis-password-file` or
/// `HIVE_REDIS_URL` / `HIVE_REDIS_PASSWORD` in the environment (/proc/PID/environ is readable by the owner only).
/// The master hands the resolved address to its workers the same way, in their environment, never in argv.
struct RedisAddressOptions: ParsableArguments {
    static let urlVariable = "HIVE_REDIS_URL"
    static let passwordVariable = "HIVE_REDIS_PASSWORD"
    static let defaultURL = "redis://127.0.0.1:6379"

    @Option(help: ArgumentHelp(
        "Redis: redis://[:password@]host:port[/db] or unix:///path; \"none\" for no subscription. Default: $HIVE_REDIS_URL, else \(defaultURL). A password here shows in the process list: prefer --redis-password-file or the environment.",
        valueName: "url"
    ))
    var redis: String?

    @Option(help: ArgumentHelp("File whose first line is the Redis password (instead of a password in the URL).", valueName: "path"))
    var redisPasswordFile: String?

    struct Resolved {
        /// nil: `none`, no Redis.
        var url: RedisURL?
        /// Where the URL came from, for messages.
        var source: String
        /// The password was given on the command line (in `--redis`).
        var passwordInArguments: Bool
    }

    /// The address and password from the options, then the environment, then the default.
    /// - Throws: `ValidationError` naming the option or variable at fault.
    func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Resolved {
        let fromEnvironment = environment[Self.urlVariable].flatMap { $0.isEmpty ? nil : $0 }
        let text = redis ?? fromEnvironment ?? Self.defaultURL
        let source = redis != nil ? "--redis" : fromEnvironment != nil ? "$\(Self.urlVariable)" : "the default"
        guard text != "none" else { return Resolved(url: nil, source: source, passwordInArguments: false) }
        var url: RedisURL
        do { url = try RedisURL(parsing: text) } catch { throw ValidationError("\(source): \(error)") }
        let inURL = url.password != nil
        var password: String?
        var passwordSource = source
        if let path = redisPasswordFile {
            password = try Self.readPassword(path)
            passwordSource = "--redis-password-file"
        } else if let variable = environment[Self.passwordVariable], !variable.isEmpty {
            password = variable
            passwordSource = "$\(Self.passwordVariable)"
        }
        if let password {
            guard !inURL else {
                throw ValidationError("the Redis password is given twice, in \(source) and in \(passwordSource): keep one")
            }
            url.password = password
        }
        return Resolved(url: url, source: source, passwordInArguments: inURL && redis != nil)
    }

    /// The password file can be read by users other than its owner (mode bits 077): worth a warning, not a
    /// refusal (secrets mounted by container runtimes are often 0444 inside a private mount).
    var passwordFileIsShared: Bool {
        guard let path = redisPasswordFile, let mode = try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        else { return false }
        return mode & 0o077 != 0
    }

    private static func readPassword(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--redis-password-file: cannot read \"\(path)\" (\(String(cString: strerror(errno)))); give a file readable by this user")
        }
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
        let password = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        guard !password.isEmpty else {
            throw ValidationError("--redis-password-file: \"\(path)\" is empty; its first line must be the password")
        }
        return password
    }

    /// The environment a worker gets: the address and the password, never on its command line.
    static func workerEnvironment(_ url: RedisURL?) -> [String: String] {
        guard let url else { return [urlVariable: "none", passwordVariable: ""] }
        return [urlVariable: url.description, passwordVariable: url.password ?? ""]
    }
}

/// Worker 0's Redis subscription. `start` takes these and forwards them to every worker (the address and password
/// in the environment); only worker 0 uses them.
struct RedisOptions: ParsableArguments {
    @OptionGroup var address: RedisAddressOptions

    @Option(name: .customLong("channel"), help: "Channel to SUBSCRIBE to (repeatable; default: test).")
    var channels: [String] = []

    @Option(name: .customLong("pattern"), help: "Glob pattern to PSUBSCRIBE to (repeatable).")
    var patterns: [String] = []

    @Option(help: ArgumentHelp("Largest Redis message delivered, in bytes (default: --max-message-size); a larger one is dropped unread and counted.", valueName: "bytes"))
    var maxRedisMessage: Int?

    @Option(help: "Seconds to connect to Redis, and for its replies to AUTH and SUBSCRIBE, before retrying with back-off.")
    var redisTimeout: Double = 3

    @Option(help: ArgumentHelp("Prefix of the Redis channel of each Hive channel: clients of channel news get what is published to <prefix>news.", valueName: "prefix"))
    var channelPrefix = ""

    func validate() throws {
        _ = try address.resolve()
        for name in channels + patterns where name.isEmpty || name.contains(where: { $0 == "\n" || $0 == "\r" }) {
            throw ValidationError("--channel and --pattern need a non-empty name without line breaks")
        }
        if let maxRedisMessage, !(1...Int(UInt32.max)).contains(maxRedisMessage) {
            throw ValidationError("--max-redis-message must be between 1 and \(UInt32.max) bytes, got \(maxRedisMessage)")
        }
        if channelPrefix.utf8.count > 64 || channelPrefix.contains(where: { $0.isWhitespace || $0.isNewline }) {
            throw ValidationError("--channel-prefix must be at most 64 bytes without spaces or line breaks, got \"\(channelPrefix.prefix(80))\"")
        }
        guard redisTimeout > 0, redisTimeout <= 3600 else {
            throw ValidationError("--redis-timeout must be a positive number of seconds (at most 3600), got \(redisTimeout)")
        }
    }

    /// nil when Redis is off (`none`). `maxMessageSize` is the default of `--max-redis-message`. Without --channel
    /// and --pattern, worker 0 subscribes to what the application declares (`redisChannels`, `redisPatterns`), and
    /// to channel `test` when it declares nothing either.
    func configuration(
        maxMessageSize: Int, declared: (channels: [String], patterns: [String]) = ([], [])
    ) -> RedisSubscriber.Configuration? {
        guard let url = try? address.resolve().url else { return nil }
        var (channels, patterns) = (channels, patterns)
        if channels.isEmpty && patterns.isEmpty { (channels, patterns) = declared }
        if channels.isEmpty && patterns.isEmpty { channels = ["test"] }
        return RedisSubscriber.Configuration(
            url: url, channels: channels, patterns: patterns,
            maxMessageSize: maxRedisMessage ?? maxMessageSize, timeout: redisTimeout, channelPrefix: channelPrefix
        )
    }

    /// The options for a worker's command line: everything but the address and password (see
    /// `RedisAddressOptions.workerEnvironment`).
    func workerArguments(maxMessageSize: Int) -> [String] {
        channels.flatMap { ["--channel", $0] } + patterns.flatMap { ["--pattern", $0] }
            + ["--max-redis-message", String(maxRedisMessage ?? maxMessageSize), "--redis-timeout", String(redisTimeout)]
            + (channelPrefix.isEmpty ? [] : ["--channel-prefix", channelPrefix])
    }
}

/// `hive publish CHANNEL MESSAGE`: PUBLISH through hiredis, and say how many subscribers got it.
struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Publish a message to a Redis channel (through hiredis).")

    @Argument(help: "The channel.")
    var channel: String

    @Argument(help: "The message.")
    var message: String

    @OptionGroup var address: RedisAddressOptions

    @OptionGroup var history: HistoryOptions

    @Option(help: ArgumentHelp("With --history-size: the --channel-prefix of the Hive that serves CHANNEL (a Hive channel name then).", valueName: "prefix"))
    var channelPrefix = ""

    func run() throws {
        try runReporting {
            let resolved: RedisAddressOptions.Resolved
            do { resolved = try address.resolve() } catch let error as ValidationError { throw OperatorError(error.message) }
            guard let url = resolved.url else { throw OperatorError("cannot publish: Redis is \"none\" (\(resolved.source))") }
            do {
                if let policy = history.historyRules?.policy(for: channel) {
                    let redisChannel = channelPrefix + channel
                    let target = HistoryTarget(keys: ChannelHistory.Keys(redisChannel: redisChannel), policy: policy)
                    let receipt = try RedisPublisher.publish(url: url, channel: redisChannel, payload: Array(message.utf8), history: target)
                    print("published to \(redisChannel) on \(url) at \(receipt.position.map { "\($0)" } ?? "?"): "
                        + "\(receipt.receivers) subscriber\(receipt.receivers == 1 ? "" : "s") received it")
                    return
                }
                let receivers = try RedisPublisher.publish(url: url, channel: channel, payload: Array(message.utf8))
                print("published to \(channel) on \(url): \(receivers) subscriber\(receivers == 1 ? "" : "s") received it")
            } catch let error as RedisError {
                throw OperatorError("cannot publish: \(error)")
            }
        }
    }
}
