import Foundation
import Yams

/// What a configuration file or variable says, before it is checked against the option's own rules.
public enum ConfigValue: Sendable, Equatable {
    case scalar(String)
    case list([String])

    /// The items of a list key: a list, or one item on its own.
    public var items: [String] {
        switch self {
        case let .scalar(value): [value]
        case let .list(values): values
        }
    }
}

/// A configuration file, an environment variable or a value in them is wrong: one line, naming the file and key or
/// the variable.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// `hive start --config FILE`: a YAML file (JSON is YAML too) whose top level maps option names to values.
public enum ConfigFile {
    /// Larger files are refused before parsing: an option file is a few hundred bytes.
    public static let maxSize = 1 << 20

    /// The file's keys and values, every key known and every value of its key's kind.
    /// - Throws: `ConfigError` naming `path`.
    public static func load(path: String) throws -> [String: ConfigValue] {
        let name = path
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ConfigError("\(name): cannot read the configuration file (\(String(cString: strerror(errno))))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ConfigError("\(name): not a regular file; give the path of a YAML or JSON configuration file")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ConfigError("\(name): cannot read the configuration file (\(String(cString: strerror(errno))))")
        }
        defer { try? handle.close() }
        // Read at most one byte past the limit: a file that grows while read is refused all the same.
        let data = (try? handle.read(upToCount: maxSize + 1)) ?? Data()
        guard data.count <= maxSize else {
            throw ConfigError("\(name): the configuration file is over \(maxSize) bytes; an option file is a few hundred")
        }
        return try parse(data, name: name)
    }

    /// Parses a file's contents; `name` is the file, for messages.
    public static func parse(_ data: Data, name: String) throws -> [String: ConfigValue] {
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError("\(name): not UTF-8 text; a configuration file is YAML or JSON in UTF-8")
        }
        if text.unicodeScalars.contains(where: { $0.value == 0 }) {
            throw ConfigError("\(name): contains a NUL byte; a configuration file is YAML or JSON text")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError("\(name): not valid YAML: \(describe(error))")
        } catch {
            throw ConfigError("\(name): not valid YAML: \(error)")
        }
        guard let root else { return [:] }  // An empty file (or only comments): all defaults.
        guard case let .mapping(mapping) = root else {
            throw ConfigError("\(name): the top level must map option names to values (e.g. \"port: 9501\"), got \(kind(of: root))")
        }
        var values: [String: ConfigValue] = [:]
        for (keyNode, valueNode) in mapping {
            guard case let .scalar(keyScalar) = keyNode else {
                throw ConfigError("\(name)\(at(keyNode)): a key must be an option name, got \(kind(of: keyNode))")
            }
            let keyName = keyScalar.string
            guard let key = ConfigKey.named(keyName) else {
                let hint = ConfigKey.suggestion(for: keyName).map { " (did you mean \"\($0)\"?)" }
                    ?? "; the keys are the options of `hive start --help` without the dashes"
                throw ConfigError("\(name)\(at(keyNode)): unknown key \"\(printable(keyName))\"\(hint)")
            }
            guard values[keyName] == nil else {
                throw ConfigError("\(name)\(at(keyNode)): key \"\(keyName)\" is given twice; keep one")
            }
            values[keyName] = try value(of: valueNode, for: key, label: "\(name): \(keyName)")
        }
        return values
    }

    /// A value of the file, checked against its key's kind.
    static func value(of node: Node, for key: ConfigKey, label: String) throws -> ConfigValue {
        switch node {
        case let .scalar(scalar):
            let value = try ConfigValue.checked(scalar.string, for: key, label: label)
            return key.kind == .list ? .list([value]) : .scalar(value)
        case let .sequence(sequence) where key.kind == .list:
            return .list(try sequence.map { item in
                guard case let .scalar(scalar) = item else {
                    throw ConfigError("\(label) must be \(key.expects), got a list holding \(kind(of: item))")
                }
                return try ConfigValue.checked(scalar.string, for: key, label: label)
            })
        default:
            throw ConfigError("\(label) must be \(key.expects), got \(kind(of: node))")
        }
    }

    static func kind(of node: Node) -> String {
        switch node {
        case .scalar: "a single value"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    static func at(_ node: Node) -> String {
        node.mark.map { ":\($0.line)" } ?? ""
    }

    static func describe(_ error: YamlError) -> String {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            let around = context.map { " (\($0.text))" } ?? ""
            return "line \(mark.line), column \(mark.column): \(problem)\(around)"
        case let .reader(problem, offset, _, _):
            return "\(problem)\(offset.map { " at byte \($0)" } ?? "")"
        case let .duplicatedKeysInMapping(duplicates, _):
            return "key \(duplicates.map { "\"\($0)\"" }.joined(separator: ", ")) is given twice; keep one"
        default:
            return String(String(describing: error).prefix(200)).split(separator: "\n").first.map(String.init) ?? "unreadable"
        }
    }

    /// A value as it can be shown in a message: control characters escaped, long ones cut.
    static func printable(_ text: String) -> String {
        let escaped = text.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
        return escaped.count > 80 ? String(escaped.prefix(80)) + "..." : escaped
    }
}

extension ConfigValue {
    /// `text` if it is of `key`'s kind (a flag's `true` / `false` become "true" / "false"), else an error.
    static func checked(_ text: String, for key: ConfigKey, label: String) throws -> String {
        // A secret is never repeated in a message.
        let shown = key.secret ? "" : ", got \"\(ConfigFile.printable(text))\""
        let bad = ConfigError("\(label) must be \(key.expects)\(shown)")
        switch key.kind {
        case .integer:
            guard Int(text) != nil else { throw bad }
        case .number:
            guard let number = Double(text), number.isFinite else { throw bad }
        case .flag:
            switch text.lowercased() {
            case "true", "yes", "on", "1": return "true"
            case "false", "no", "off", "0": return "false"
            default: throw bad
            }
        case .text, .list:
            guard !text.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\0" }) else {
                throw ConfigError("\(label) must be \(key.expects) on one line\(shown)")
            }
        }
        return text
    }
}
