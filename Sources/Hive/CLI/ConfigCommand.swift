import ArgumentParser
import Foundation
import HiveConfig
import HiveMaster

/// `hive config check FILE`: what `hive start --config FILE` would run with, in this environment.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check a configuration file.", subcommands: [ConfigCheck.self])
}

struct ConfigCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate FILE and print the effective configuration of `hive start --config FILE` (with this "
            + "environment), each value with its source; secrets are shown as ***.")

    @Argument(help: "The YAML or JSON configuration file.")
    var file: String

    func run() throws {
        try runReporting {
            let prepared = try StartConfiguration.prepare(startArguments: [], configPath: file)
            let start: Start
            do { start = try Start.parse(prepared.arguments) } catch {
                var message = Start.message(for: error)
                if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
                throw OperatorError("error: \(file): \(message)")
            }
            print("\(file): valid")
            let width = (ConfigKey.all.map(\.name.count).max() ?? 0) + 2
            for key in ConfigKey.all {
                let value = key.secret ? start.redactedValue(of: key.name) : start.effectiveValue(of: key.name)
                var source = "\(prepared.resolution.sources[key.name] ?? .default)"
                // A password inside the Redis URL comes from where the URL does.
                if key.name == "redis-password", source == "default", value == "***" { source = "in redis" }
                let name = key.name.padding(toLength: width, withPad: " ", startingAt: 0)
                print("\(name)\(value)  (\(source))")
            }
        }
    }
}

extension Start {
    /// An option's effective value as `hive config check` shows it.
    func effectiveValue(of name: String) -> String {
        func list(_ items: [String]) -> String { items.isEmpty ? "[]" : "[" + items.joined(separator: ", ") + "]" }
        switch name {
        case "host": return host
        case "port": return String(port)
        case "workers": return String(workers)
        case "dispatch": return dispatch
        case "run-dir": return runDir ?? RunDirectory.defaultPath(port: port)
        case "max-connections": return String(maxConnections)
        case "grace": return String(grace)
        case "worker-timeout": return String(workerTimeout)
        case "daemon": return String(daemon)
        case "log-file": return logFile ?? (daemon ? "hive.log in the run dir" : "(none: standard error)")
        case "metrics-listen": return metricsListen ?? "(off)"
        case "max-message-size": return String(limits.maxMessageSize)
        case "max-output-buffer": return String(limits.maxOutputBuffer)
        case "slow-consumer-grace": return String(limits.slowConsumerGrace)
        case "max-header-size": return String(limits.maxHeaderSize)
        case "max-body-size": return String(limits.maxBodySize)
        case "handshake-timeout": return String(limits.handshakeTimeout)
        case "http-idle-timeout": return String(limits.httpIdleTimeout)
        case "body-timeout": return String(limits.bodyTimeout)
        case "allowed-origin": return list(limits.allowedOrigins)
        case "ping-interval": return String(limits.pingInterval)
        case "pong-timeout": return String(limits.pongTimeout)
        case "compression": return limits.compression
        case "compression-min-size": return String(limits.compressionMinSize)
        case "log-level": return limits.logLevel
        case "redis-password-file": return redis.address.redisPasswordFile ?? "(none)"
        case "channel": return list(redis.channels.isEmpty && redis.patterns.isEmpty ? ["test"] : redis.channels)
        case "pattern": return list(redis.patterns)
        case "max-redis-message": return String(redis.maxRedisMessage ?? limits.maxMessageSize)
        case "redis-timeout": return String(redis.redisTimeout)
        case "channel-prefix": return redis.channelPrefix.isEmpty ? "(none)" : redis.channelPrefix
        case "max-channels": return String(maxChannels)
        case "history-size": return history.historySize == 0 ? "0 (off)" : String(history.historySize)
        case "history-ttl": return history.historyTTL == 0 ? "0 (no expiry)" : String(history.historyTTL)
        case "history": return list(history.rules)
        case "jwt-public-key": return tokens.jwtPublicKey ?? "(none)"
        default: return "?"
        }
    }

    /// A secret option: where it points, never the password itself.
    func redactedValue(of name: String) -> String {
        let url = (try? redis.address.resolve())?.url
        switch name {
        // RedisURL's description leaves the password out.
        case "redis": return url.map { $0.description + ($0.password != nil ? " (with password ***)" : "") } ?? "none"
        case "redis-password": return url?.password != nil ? "***" : "(none)"
        case "api-key": return (try? publishAPI.resolve()) != nil ? "***" : "(none: the publish API answers 403)"
        case "jwt-secret": return (try? tokens.resolve()).flatMap { if case .secret = $0 { "***" } else { nil } } ?? "(none)"
        default: return "***"
        }
    }
}
