/// A message for one user as it travels on the reserved Redis channel `<--channel-prefix>__hive:user`: every Hive
/// host on that Redis reads it (worker 0 holds the subscription) and delivers it to that user's connections.
///
///     "HU" | version 1 | opcode (1 text, 2 binary) | id length n (1...64) | n bytes of user id | payload
///
/// Anything may be published on a Redis channel, so `parse` trusts nothing: a wrong magic, version or opcode, a
/// length past the end, an id that breaks `UserID`'s rules, or a text payload that is not UTF-8 is refused with
/// the reason (never a trap, never a partial delivery). Fuzzed by `fuzz-user-envelope`.
package struct UserEnvelope: Equatable, Sendable {
    package var user: String
    /// The WebSocket opcode: 0x1 text, 0x2 binary.
    package var opcode: UInt8
    package var payload: [UInt8]

    /// The suffix of the reserved Redis channel (after `--channel-prefix`). Not a valid channel name for clients
    /// (`ChannelName` refuses the `__hive:` prefix), so no Hive channel can collide with it.
    package static let channelSuffix = "__hive:user"
    static let magic: [UInt8] = [0x48, 0x55]  // "HU"
    static let version: UInt8 = 1
    /// Bytes before the user id.
    static let headerSize = 5

    package init(user: String, opcode: UInt8, payload: [UInt8]) {
        self.user = user
        self.opcode = opcode
        self.payload = payload
    }

    /// The Redis channel for `prefix` (`--channel-prefix`).
    package static func channel(prefix: String) -> String { prefix + channelSuffix }

    /// The bytes to PUBLISH. `user` must be valid (`UserID.problem` is nil).
    package func encoded() -> [UInt8] {
        let id = Array(user.utf8)
        precondition(!id.isEmpty && id.count <= UserID.maxLength, "user id of \(id.count) bytes")
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerSize + id.count + payload.count)
        out += Self.magic
        out.append(Self.version)
        out.append(opcode)
        out.append(UInt8(id.count))
        out += id
        out += payload
        return out
    }

    package struct Refusal: Error, CustomStringConvertible, Equatable {
        package var reason: String
        package var description: String { "user message refused: \(reason)" }
    }

    /// The envelope in `bytes`, or why they are not one.
    package static func parse(_ bytes: [UInt8]) -> Result<UserEnvelope, Refusal> {
        func refuse(_ reason: String) -> Result<UserEnvelope, Refusal> { .failure(Refusal(reason: reason)) }
        guard bytes.count >= headerSize else {
            return refuse("\(bytes.count) bytes, shorter than the \(headerSize)-byte header")
        }
        guard bytes[0] == magic[0], bytes[1] == magic[1] else {
            return refuse("it does not start with \"HU\" (not published by Hive's send(toUser:))")
        }
        guard bytes[2] == version else { return refuse("format version \(bytes[2]); this Hive reads version \(version)") }
        let opcode = bytes[3]
        guard opcode == 0x1 || opcode == 0x2 else { return refuse("opcode \(opcode); expected 1 (text) or 2 (binary)") }
        let length = Int(bytes[4])
        guard (1...UserID.maxLength).contains(length) else {
            return refuse("user id length \(length); expected 1 to \(UserID.maxLength)")
        }
        guard bytes.count >= headerSize + length else {
            return refuse("the user id (\(length) bytes) runs past the end of the \(bytes.count)-byte message")
        }
        let idBytes = bytes[headerSize..<headerSize + length]
        guard let user = String(validating: idBytes, as: UTF8.self) else { return refuse("the user id is not UTF-8") }
        if let problem = UserID.problem(user) { return refuse(problem) }
        let payload = Array(bytes[(headerSize + length)...])
        if opcode == 0x1, String(validating: payload, as: UTF8.self) == nil {
            return refuse("a text message for user \(user) is not valid UTF-8")
        }
        return .success(UserEnvelope(user: user, opcode: opcode, payload: payload))
    }
}
