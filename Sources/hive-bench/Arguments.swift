/// Hand-rolled `--name value` parsing: the generator has a handful of subcommands with plain numeric options, and a
/// shard's command line is written by the coordinator, not by a person.
struct Arguments {
    struct UsageError: Error, CustomStringConvertible {
        let description: String
    }

    static let flags: Set<String> = [
        "json", "smoke", "help", "quiet", "inject-faults", "compression", "no-baseline", "drop", "no-resume",
        "hold-connections",
    ]

    let command: String
    private var values: [String: String] = [:]
    private var present: Set<String> = []

    init(_ argv: [String]) throws {
        var rest = Array(argv.dropFirst())
        // `hive-bench --smoke …` is the test suite's spelling of the smoke subcommand.
        if let first = rest.first, !first.hasPrefix("--") {
            command = first
            rest.removeFirst()
        } else if rest.contains("--smoke") {
            command = "smoke"
        } else if rest.contains("--help") || rest.contains("-h") || rest.isEmpty {
            command = "help"
        } else {
            throw UsageError(description: "the first argument must be a subcommand (fanout, channels, roundtrip, idle, recovery, publish, smoke; see help)")
        }
        var i = 0
        while i < rest.count {
            let word = rest[i]
            guard word.hasPrefix("--") else { throw UsageError(description: "unexpected argument \"\(word)\"") }
            var name = String(word.dropFirst(2))
            if let equals = name.firstIndex(of: "=") {
                values[String(name[..<equals])] = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            } else if Self.flags.contains(name) {
                present.insert(name)
            } else {
                guard i + 1 < rest.count else { throw UsageError(description: "--\(name) needs a value") }
                values[name] = rest[i + 1]
                i += 1
            }
            present.insert(name)
            i += 1
        }
    }

    func flag(_ name: String) -> Bool { present.contains(name) }

    func has(_ name: String) -> Bool { values[name] != nil }

    func string(_ name: String, default value: String) -> String { values[name] ?? value }

    func int(_ name: String, default value: Int) throws -> Int {
        guard let text = values[name] else { return value }
        guard let number = Int(text.replacingUnderscores()) else { throw UsageError(description: "--\(name) must be an integer, got \(text)") }
        return number
    }

    func double(_ name: String, default value: Double) throws -> Double {
        try optionalDouble(name) ?? value
    }

    func optionalDouble(_ name: String) throws -> Double? {
        guard let text = values[name] else { return nil }
        guard let number = Double(text) else { throw UsageError(description: "--\(name) must be a number, got \(text)") }
        return number
    }

    /// `--hive-pids 12,13,14`
    func pids(_ name: String) throws -> [Int32] {
        guard let text = values[name], !text.isEmpty else { return [] }
        return try text.split(separator: ",").map {
            guard let pid = Int32($0) else { throw UsageError(description: "--\(name): \"\($0)\" is not a pid") }
            return pid
        }
    }

    /// The server address: loopback only. This tool generates load, and load goes nowhere but this machine.
    func loopbackHost() throws -> String {
        let host = string("host", default: "127.0.0.1")
        guard host.hasPrefix("127."), host.split(separator: ".").count == 4 else {
            throw UsageError(description: "--host must be a 127.x.x.x address (loopback only), got \(host)")
        }
        return host
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
