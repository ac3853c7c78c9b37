/// Where an option's effective value came from; the first that has it wins: flag > environment > file > default.
public enum ConfigSource: Sendable, Equatable, CustomStringConvertible {
    case flag
    case environment(String)
    case file(String)
    case `default`

    public var description: String {
        switch self {
        case .flag: "flag"
        case let .environment(variable): "env \(variable)"
        case let .file(path): "file \(path)"
        case .default: "default"
        }
    }
}

/// The options of `hive start` from its command line, the environment and a configuration file, merged into one
/// command line for the argument parser, which then checks them all together as it always has.
public struct ConfigResolution: Sendable {
    /// `--config PATH` (or `$HIVE_CONFIG`) if given.
    public static let configVariable = "HIVE_CONFIG"

    /// Where each key's value comes from (every key of `ConfigKey.all`).
    public var sources: [String: ConfigSource] = [:]
    /// The values taken from the environment or the file, as they were given.
    public var values: [String: ConfigValue] = [:]
    /// Appended to the command line: the flags for the values from the environment and the file.
    public var arguments: [String] = []
    /// Values from the file to set in the master's environment before parsing (only where the environment has
    /// none): the Redis address and password, which must not be in argv.
    public var environment: [String: String] = [:]

    /// The configuration file named on the command line (`--config PATH`, `--config=PATH`), else in
    /// `$HIVE_CONFIG`, else nil.
    /// The last one wins, as for any option.
    public static func configPath(commandLine: [String], environment: [String: String]) -> String? {
        var path: String?
        var index = commandLine.startIndex
        while index < commandLine.endIndex, commandLine[index] != "--" {
            let argument = commandLine[index]
            if argument == "--config", index + 1 < commandLine.endIndex { path = commandLine[index + 1] }
            if argument.hasPrefix("--config=") { path = String(argument.dropFirst("--config=".count)) }
            index += 1
        }
        return path ?? environment[configVariable].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The option names given on the command line (`--port 1`, `--port=1`, `--daemon`), without their dashes.
    public static func flagsGiven(in commandLine: [String]) -> Set<String> {
        var names = Set<String>()
        for argument in commandLine {
            if argument == "--" { break }
            guard argument.hasPrefix("--") else { continue }
            names.insert(String(argument.dropFirst(2).prefix { $0 != "=" }))
        }
        return names
    }

    /// Merges the three sources. `file` is the parsed configuration file (nil: none), `fileName` its path.
    /// - Throws: `ConfigError` naming the variable whose value is not of its option's kind.
    public static func resolve(
        commandLine: [String], environment: [String: String], file: [String: ConfigValue]?, fileName: String
    ) throws -> ConfigResolution {
        let given = flagsGiven(in: commandLine)
        var resolution = ConfigResolution()
        for key in ConfigKey.all {
            if given.contains(key.name) {
                resolution.sources[key.name] = .flag
                continue
            }
            if let text = environment[key.environmentName], !text.isEmpty {
                resolution.sources[key.name] = .environment(key.environmentName)
                let label = "$" + key.environmentName
                // The Redis variables are read, and checked, by the option parser itself, as before.
                let value: ConfigValue = key.viaEnvironment ? .scalar(text) : key.kind == .list
                    ? .list(try text.split(separator: ",").map {
                        try ConfigValue.checked($0.trimmingSpaces, for: key, label: label)
                    }.filter { !$0.isEmpty })
                    : .scalar(try ConfigValue.checked(text.trimmingSpaces, for: key, label: label))
                resolution.values[key.name] = value
                if !key.viaEnvironment { resolution.arguments += arguments(for: key, value) }
                continue
            }
            if let value = file?[key.name] {
                resolution.sources[key.name] = .file(fileName)
                resolution.values[key.name] = value
                if key.viaEnvironment {
                    resolution.environment[key.environmentName] = value.items.first ?? ""
                } else {
                    resolution.arguments += arguments(for: key, value)
                }
                continue
            }
            resolution.sources[key.name] = .default
        }
        return resolution
    }

    /// The command-line form of one value.
    public static func arguments(for key: ConfigKey, _ value: ConfigValue) -> [String] {
        switch key.kind {
        case .flag: value.items.first == "true" ? [key.flag] : []
        // `--name=value`: a value that starts with a dash stays a value.
        case .list, .integer, .number, .text: value.items.map { "\(key.flag)=\($0)" }
        }
    }
}

private extension Substring {
    var trimmingSpaces: String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}

private extension String {
    var trimmingSpaces: String { self[...].trimmingSpaces }
}
