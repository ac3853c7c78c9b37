import ArgumentParser
import HiveRedis

/// Worker 0's Redis subscription. `start` takes these and forwards them to every worker; only worker 0 uses them.
struct RedisOptions: ParsableArguments {
    @Option(help: "Redis to subscribe to: redis://[:password@]host:port[/db] or unix:///path; \"none\" for no subscription.")
    var redis: String = "redis://127.0.0.1:6379"

    @Option(name: .customLong("channel"), help: "Channel to SUBSCRIBE to (repeatable; default: test).")
    var channels: [String] = []

    @Option(name: .customLong("pattern"), help: "Glob pattern to PSUBSCRIBE to (repeatable).")
    var patterns: [String] = []

    func validate() throws {
        if redis != "none" {
            do { _ = try RedisURL(parsing: redis) } catch { throw ValidationError("--redis: \(error)") }
        }
        for name in channels + patterns where name.isEmpty || name.contains(where: { $0 == "\n" || $0 == "\r" }) {
            throw ValidationError("--channel and --pattern need a non-empty name without line breaks")
        }
    }

    /// nil when Redis is off (`--redis none`).
    var configuration: RedisSubscriber.Configuration? {
        guard redis != "none", let url = try? RedisURL(parsing: redis) else { return nil }
        return RedisSubscriber.Configuration(
            url: url, channels: channels.isEmpty && patterns.isEmpty ? ["test"] : channels, patterns: patterns
        )
    }

    var arguments: [String] {
        ["--redis", redis] + channels.flatMap { ["--channel", $0] } + patterns.flatMap { ["--pattern", $0] }
    }
}

/// `hive publish CHANNEL MESSAGE`: PUBLISH through hiredis, and say how many subscribers got it.
struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Publish a message to a Redis channel (through hiredis).")

    @Argument(help: "The channel.")
    var channel: String

    @Argument(help: "The message.")
    var message: String

    @Option(help: "Redis URL: redis://[:password@]host:port[/db] or unix:///path.")
    var redis: String = "redis://127.0.0.1:6379"

    func run() throws {
        try runReporting {
            let url: RedisURL
            do { url = try RedisURL(parsing: redis) } catch { throw OperatorError("--redis: \(error)") }
            do {
                let receivers = try RedisPublisher.publish(url: url, channel: channel, payload: Array(message.utf8))
                print("published to \(channel) on \(url): \(receivers) subscriber\(receivers == 1 ? "" : "s") received it")
            } catch let error as RedisError {
                throw OperatorError("cannot publish: \(error)")
            }
        }
    }
}
