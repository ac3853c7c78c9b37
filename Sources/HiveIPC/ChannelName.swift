/// The rules for a channel name, wherever one comes in (the `channels` query parameter of a WebSocket upgrade,
/// `HiveServer.subscribe`, a delivery): checked before it reaches the registry, whose channel slots hold at most
/// `maxLength` bytes of name.
package enum ChannelName {
    /// Bytes of a name. A slot keeps the name whole (8 words), so this is a hard limit of the registry layout.
    package static let maxLength = 64
    /// Channels one connection may be subscribed to at once.
    package static let maxPerConnection = 32
    /// Names Hive uses on Redis for itself (`<--channel-prefix>__hive:user`): no client channel may take one.
    package static let reservedPrefix = "__hive:"

    /// Letters, digits and `_ - . : @ /`: what Redis channel names usually look like, nothing a URL, a shell or a
    /// log line has to quote, and no comma (the list separator of `?channels=`).
    @inline(__always)
    static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "@"),
            UInt8(ascii: "/"):
            true
        default:
            false
        }
    }

    /// What is wrong with `name`, or nil when it is a valid channel name.
    package static func problem(_ name: String) -> String? {
        let bytes = name.utf8
        if bytes.isEmpty { return "a channel name must not be empty" }
        if bytes.count > maxLength {
            return "channel name \"\(name.prefix(maxLength))…\" is \(bytes.count) bytes long; the limit is \(maxLength)"
        }
        if let bad = bytes.first(where: { !isAllowed($0) }) {
            let shown = String(decoding: bytes.prefix(maxLength), as: UTF8.self)
            return "channel name \"\(shown)\" contains \(bad < 0x80 && bad >= 0x20 ? "\"\(Character(Unicode.Scalar(bad)))\"" : "byte 0x\(String(bad, radix: 16))"); "
                + "allowed are letters, digits and _ - . : @ /"
        }
        if name.hasPrefix(reservedPrefix) {
            return "channel name \"\(name)\" begins with \(reservedPrefix), which Hive keeps for its own Redis channels "
                + "(\(UserEnvelope.channelSuffix) carries user messages)"
        }
        return nil
    }

    /// The channels of a `?channels=a,b` query value (already percent-decoded), each checked, without duplicates,
    /// in the order given.
    /// - Throws: a sentence saying which name is wrong and why, or that the list is too long.
    package static func parseList(_ value: String) -> Result<[String], ListError> {
        var names: [String] = []
        for part in value.split(separator: ",", omittingEmptySubsequences: false) {
            let name = String(part)
            if let problem = problem(name) { return .failure(ListError(message: "?channels=: \(problem)")) }
            if !names.contains(name) { names.append(name) }
            if names.count > maxPerConnection {
                return .failure(ListError(message: "?channels= lists more than \(maxPerConnection) channels; "
                    + "a connection may be subscribed to at most \(maxPerConnection)"))
            }
        }
        return .success(names)
    }

    package struct ListError: Error, CustomStringConvertible {
        package var message: String
        package var description: String { message }
        package init(message: String) { self.message = message }
    }
}
