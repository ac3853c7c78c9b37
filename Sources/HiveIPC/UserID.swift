/// The rules for a user id (`HiveServer.bind(_:user:)`, a token's `sub`, `hive push --user`): checked wherever one
/// comes in, before it reaches the registry, whose user records hold at most `maxLength` bytes.
package enum UserID {
    /// Bytes of an id. A user record keeps the id whole (8 words), so this is a hard limit of the registry layout.
    package static let maxLength = 64

    /// What is wrong with `user`, or nil when it is a valid user id: 1 to 64 bytes of UTF-8 without control
    /// characters (no line breaks, tabs or NUL: an id is shown in logs and `hive connections`, and a NUL would end
    /// it in the registry).
    package static func problem(_ user: String) -> String? {
        let bytes = user.utf8
        if bytes.isEmpty { return "a user id must not be empty" }
        if bytes.count > maxLength {
            return "user id \"\(user.prefix(maxLength))…\" is \(bytes.count) bytes long; the limit is \(maxLength) bytes"
        }
        if let bad = user.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            let shown = String(String.UnicodeScalarView(user.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
            return "user id \"\(shown)\" contains the control character U+\(String(bad.value, radix: 16, uppercase: true)) "
                + "(shown as ?); control characters are not allowed"
        }
        return nil
    }

    /// `problem` for bytes from another process: nil when they are not UTF-8 either.
    package static func validated<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String? {
        guard let user = String(validating: bytes, as: UTF8.self), problem(user) == nil else { return nil }
        return user
    }
}

extension HiveError {
    /// A user id that breaks `UserID`'s rules.
    package static func invalidUser(_ problem: String, connection: ConnectionID? = nil) -> HiveError {
        HiveError(
            code: .invalidArgument, connection: connection,
            description: "\(problem)\(connection.map { " (connection \($0))" } ?? ""): a user id is 1 to "
                + "\(UserID.maxLength) bytes of UTF-8 without control characters"
        )
    }
}
