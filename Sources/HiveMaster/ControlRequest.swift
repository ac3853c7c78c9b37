import HiveIPC

/// One request on the control socket, parsed from the bytes a client sent. Pure, so that every byte sequence a
/// client can send is checked without a socket (Tests/Fuzz, target fuzz-control): it must parse, wait for more,
/// or be refused with a sentence, never trap the master.
enum ControlRequest: Equatable {
    case hello
    /// A text message for one connection (the body, cut to the announced length).
    case push(ConnectionID, text: String)
    /// A text message for every connection of a user (`hive push --user`): `push-user <id bytes> <text bytes>`,
    /// then the id and the text back to back (an id may hold spaces).
    case pushUser(user: String, text: String)
    case disconnect(ConnectionID, code: UInt16)
    /// Reopen the `--daemon` log file (logrotate's postrotate).
    case reopenLogs
    /// Not a request the master can act on; the reply says why.
    case refused(String)

    /// The request in `buffer`, or nil while it is incomplete: no newline yet, or a push whose body has not all
    /// arrived.
    static func parse(_ buffer: [UInt8]) -> ControlRequest? {
        guard let newline = buffer.firstIndex(of: 0x0A) else { return nil }
        let line = String(decoding: buffer[..<newline], as: UTF8.self)
        let body = buffer[(newline + 1)...]
        let words = line.split(separator: " ").map(String.init)
        switch words.first {
        case "hello":
            return .hello
        case "reopen-logs" where words.count == 1:
            return .reopenLogs
        case "push" where words.count == 3:
            // A negative length would be a negative `prefix` below: a trap that took the master down.
            guard let id = UInt64(words[1]).map(ConnectionID.init(rawValue:)), let length = Int(words[2]), length >= 0
            else {
                return .refused("malformed push request: expected `push <id> <length>`")
            }
            guard body.count >= length else { return nil }  // wait for the whole body
            return .push(id, text: String(decoding: body.prefix(length), as: UTF8.self))
        case "push-user" where words.count == 3:
            guard let userLength = Int(words[1]), let length = Int(words[2]), userLength >= 0, length >= 0 else {
                return .refused("malformed push-user request: expected `push-user <user id length> <text length>`")
            }
            guard (1...UserID.maxLength).contains(userLength) else {
                return .refused("a user id is 1 to \(UserID.maxLength) bytes of UTF-8 without control characters; "
                    + "this one is \(userLength) bytes")
            }
            // Compared one at a time: their sum could overflow.
            guard body.count >= userLength, body.count - userLength >= length else { return nil }
            let idBytes = body.prefix(userLength)
            guard let user = UserID.validated(idBytes) else {
                let shown = String(decoding: idBytes, as: UTF8.self)
                return .refused(UserID.problem(shown).map { "\($0); a user id is 1 to \(UserID.maxLength) bytes of UTF-8 without control characters" }
                    ?? "the user id is not valid UTF-8")
            }
            return .pushUser(user: user, text: String(decoding: body.dropFirst(userLength).prefix(length), as: UTF8.self))
        case "disconnect" where words.count == 3:
            guard let id = UInt64(words[1]).map(ConnectionID.init(rawValue:)), let number = Int(words[2]) else {
                return .refused("malformed disconnect request: expected `disconnect <id> <code>`")
            }
            // Checked here too, not only by the CLI: anything that can reach this socket can send this line.
            if let refusal = CloseCode.refusal(number) { return .refused(refusal) }
            return .disconnect(id, code: UInt16(number))
        default:
            return .refused("unknown request \"\(line.prefix(40))\"; expected hello, push, push-user, disconnect or reopen-logs")
        }
    }
}
