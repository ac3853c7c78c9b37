import ArgumentParser
import Foundation
import HiveWorker

/// `--jwt-secret` / `--jwt-public-key`: the key WebSocket handshake tokens must be signed with. Checked in
/// `validate()`, so an unreadable file or a bad PEM stops `hive start` with a message naming the file. The master
/// hands the key to its workers in their environment (the secret, or the PEM text read once at start), never in
/// argv, and never logs it.
struct TokenOptions: ParsableArguments {
    /// The secret, for people and for the configuration file's `jwt-secret` (set in the master's environment).
    static let secretVariable = "HIVE_JWT_SECRET"
    /// The public key's PEM text, for workers only: the master read the file, so a worker restarted after the file
    /// changed still checks with the key the server started with.
    static let publicKeyPEMVariable = "HIVE_JWT_PUBLIC_KEY_PEM"

    @Option(help: ArgumentHelp(
        "Require a JWT on every WebSocket handshake, signed with HS256 and this secret (at least 32 bytes). Default: "
            + "$HIVE_JWT_SECRET. A secret here shows in the process list: prefer the environment.",
        valueName: "secret"))
    var jwtSecret: String?

    @Option(help: ArgumentHelp(
        "Require a JWT on every WebSocket handshake, signed with the private key of this PEM public key: RS256 for "
            + "an RSA key, ES256 for an EC P-256 key.",
        valueName: "path"))
    var jwtPublicKey: String?

    func validate() throws {
        _ = try resolve()
    }

    /// The key from the options, else the environment; nil when none is given.
    /// - Throws: `ValidationError` naming the option, variable or file at fault and what to do.
    func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> TokenKey? {
        let fromEnvironment = environment[Self.secretVariable].flatMap { $0.isEmpty ? nil : $0 }
        let secret = jwtSecret ?? fromEnvironment
        let secretSource = jwtSecret != nil ? "--jwt-secret" : "$\(Self.secretVariable)"
        if let path = jwtPublicKey {
            if secret != nil {
                throw ValidationError("--jwt-public-key and \(secretSource) are both given: tokens are checked with "
                    + "one key; keep one")
            }
            return try Self.readPublicKey(path)
        }
        guard let secret else { return nil }
        let key = TokenKey.secret(Array(secret.utf8))
        if let problem = TokenKey.secretProblem(Array(secret.utf8), source: secretSource) {
            throw ValidationError(problem)
        }
        return key
    }

    /// The secret was given on the command line, where every local user can read it.
    var secretInArguments: Bool { jwtSecret != nil }

    private static func readPublicKey(_ path: String) throws -> TokenKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--jwt-public-key: cannot read \"\(path)\" (\(String(cString: strerror(errno)))); "
                + "give a PEM public key file readable by this user")
        }
        let pem = String(decoding: data, as: UTF8.self)
        do {
            _ = try TokenKey.parsePublicKey(pem: pem, source: "\"\(path)\"")
        } catch {
            throw ValidationError("--jwt-public-key: \(error.message)")
        }
        return .publicKey(pem: pem, source: path)
    }

    /// The environment a worker gets: the key, never on its command line.
    static func workerEnvironment(_ key: TokenKey?) -> [String: String] {
        switch key {
        case nil: [secretVariable: "", publicKeyPEMVariable: ""]
        case let .secret(secret): [secretVariable: String(decoding: secret, as: UTF8.self), publicKeyPEMVariable: ""]
        case let .publicKey(pem, _): [secretVariable: "", publicKeyPEMVariable: pem]
        }
    }

    /// The key a worker was given by `workerEnvironment`.
    static func workerKey(environment: [String: String] = ProcessInfo.processInfo.environment) -> TokenKey? {
        if let pem = environment[publicKeyPEMVariable], !pem.isEmpty {
            return .publicKey(pem: pem, source: "the --jwt-public-key file")
        }
        if let secret = environment[secretVariable], !secret.isEmpty { return .secret(Array(secret.utf8)) }
        return nil
    }
}
