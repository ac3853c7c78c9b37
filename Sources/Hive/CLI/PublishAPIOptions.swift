import ArgumentParser
import Foundation

/// The key of the HTTP publish API (`POST /api/publish`), from `--api-key` or `HIVE_API_KEY`. Like the Redis
/// password, the master hands it to its workers in their environment, never in argv.
struct PublishAPIOptions: ParsableArguments {
    static let keyVariable = "HIVE_API_KEY"

    @Option(help: ArgumentHelp(
        "Key of the HTTP publish API (POST /api/publish with Authorization: apikey KEY); without one the API answers 403. Default: $HIVE_API_KEY. A key here shows in the process list: prefer the environment or the config file.",
        valueName: "key"))
    var apiKey: String?

    func validate() throws {
        _ = try resolve()
    }

    /// The key from the option, else the environment; nil: the API is off.
    /// - Throws: `ValidationError` when the key from the environment cannot be sent in a header.
    func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        if let apiKey {
            try Self.check(apiKey, source: "--api-key")
            return apiKey
        }
        guard let key = environment[Self.keyVariable], !key.isEmpty else { return nil }
        try Self.check(key, source: "$\(Self.keyVariable)")
        return key
    }

    /// A key a client can send as `Authorization: apikey KEY`: visible ASCII, no spaces. The key is never quoted.
    private static func check(_ key: String, source: String) throws {
        guard !key.isEmpty else {
            throw ValidationError("\(source) is empty: give a key (e.g. from `openssl rand -hex 32`), or leave it out to keep the API off")
        }
        guard key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }), key.utf8.count <= 1024 else {
            throw ValidationError("\(source) must be at most 1024 visible ASCII characters without spaces (it is sent in a header); e.g. `openssl rand -hex 32`")
        }
    }

    /// What an operator should hear about the key at start: on the command line, or short.
    var warnings: [(message: String, hint: String)] {
        var warnings: [(message: String, hint: String)] = []
        if apiKey != nil {
            warnings.append(("the API key is on the command line, where every local user can read it",
                             "give it in HIVE_API_KEY in the environment, or as api-key in the config file (chmod 600)"))
        }
        if let key = try? resolve(), key.utf8.count < 16 {
            warnings.append(("the API key is shorter than 16 characters, easy to guess",
                             "use a long random key, e.g. `openssl rand -hex 32`"))
        }
        return warnings
    }

    /// The environment a worker gets: the key, or an empty value (off), so an inherited variable cannot differ.
    static func workerEnvironment(_ key: String?) -> [String: String] { [keyVariable: key ?? ""] }
}
