import ArgumentParser
import Foundation
import HiveConfig
import HiveIPC
import HiveRedis

/// `hive start`'s options from a configuration file and `HIVE_<OPTION>` variables: turned into flags after the
/// ones on the command line, so the argument parser checks everything together as before, and the workers get
/// the effective values the way they always have (LimitOptions.arguments, the Redis address in their environment).
enum StartConfiguration {
    struct Prepared {
        var arguments: [String]
        var resolution: ConfigResolution
    }

    /// `startArguments` (what follows `start`) with the values of the environment and `--config FILE` (or
    /// `$HIVE_CONFIG`) added where no flag gives them; the file's Redis address and password are set in this
    /// process's environment instead (never in argv). Each added value is checked on its own first, so a bad one
    /// is reported with its file and key, or its variable.
    /// - Throws: `ConfigError`.
    static func prepare(
        startArguments: [String], configPath: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Prepared {
        let path = configPath ?? ConfigResolution.configPath(commandLine: startArguments, environment: environment)
        let file = try path.map { try ConfigFile.load(path: $0) }
        let resolution = try ConfigResolution.resolve(
            commandLine: startArguments, environment: environment, file: file, fileName: path ?? "")
        for key in ConfigKey.all {
            guard let value = resolution.values[key.name], let source = resolution.sources[key.name] else { continue }
            try check(key, value, label: label(key, source))
        }
        for (variable, value) in resolution.environment { setenv(variable, value, 1) }
        if let path, case .file = resolution.sources["api-key"],
           let mode = try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, mode & 0o077 != 0 {
            writeLine("hive: warning: \(path) holds the API key and is readable by other users; chmod 600 it, or give "
                + "the key in HIVE_API_KEY", to: 2)
        }
        if let path, holdsSecret(resolution), let mode = try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int,
           mode & 0o077 != 0 {
            // A warning, not a refusal, as for --redis-password-file (container secrets are often 0444).
            writeLine("hive: warning: \(path) holds the Redis password and is readable by other users; chmod 600 it, "
                + "or give the password in HIVE_REDIS_PASSWORD or --redis-password-file", to: 2)
        }
        return Prepared(arguments: startArguments + resolution.arguments, resolution: resolution)
    }

    /// The file gives the Redis password (in `redis-password`, or in the `redis` URL).
    private static func holdsSecret(_ resolution: ConfigResolution) -> Bool {
        let url = resolution.sources["redis"].flatMap { if case .file = $0 { resolution.values["redis"]?.items.first } else { nil } }
        let inURL = url.flatMap { try? RedisURL(parsing: $0) }?.password != nil
        guard case .file = resolution.sources["redis-password"] else { return inURL }
        return true
    }

    static func label(_ key: ConfigKey, _ source: ConfigSource) -> String {
        switch source {
        case let .file(path): "\(path): \(key.name)"
        default: "$\(key.environmentName)"
        }
    }

    /// The option's own checks (those of `hive start`) on this one value, the error relabelled from the flag to
    /// `label`. Errors that are not about this option (a check of two options together) are left to the full parse.
    private static func check(_ key: ConfigKey, _ value: ConfigValue, label: String) throws {
        do {
            switch key.name {
            case "redis": _ = try RedisAddressOptions.parse(["--redis=" + (value.items.first ?? "")]).resolve(environment: [:])
            case "redis-password": return
            default: _ = try Start.parse(ConfigResolution.arguments(for: key, value))
            }
        } catch {
            var message = Start.message(for: error)
            if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
            guard message.hasPrefix(key.flag + " ") || message.hasPrefix(key.flag + ":") else { return }
            let rest = message.dropFirst(key.flag.count)
            // A secret is not repeated in a message.
            if key.secret { throw ConfigError("\(label) is not \(key.expects)") }
            throw ConfigError(label + rest)
        }
    }
}
