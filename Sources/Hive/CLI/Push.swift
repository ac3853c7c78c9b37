import ArgumentParser
import HiveIPC

/// `hive push ID MESSAGE`: a text message to one connection, routed by the master to its owning worker.
/// `hive push --user USER MESSAGE`: to every connection bound to that user, on every worker (and every Hive host on
/// the same Redis): the master hands it to a worker, which sends it as `HiveServer.send(toUser:_:)` does.
struct Push: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Push a text message to one WebSocket connection, or to every connection of a user.",
        usage: "hive push <id> <message>\nhive push --user <user> <message>"
    )

    @OptionGroup var target: RunDirOptions

    @Option(help: "Send to every WebSocket connection bound to this user id (on every worker, and on every Hive host on the same Redis) instead of one connection.")
    var user: String?

    @Argument(help: "Connection id (see `hive connections`), then the text to send; with --user, only the text.")
    var arguments: [String] = []

    /// The connection id (nil with --user) and the text.
    private var parsed: (id: UInt64?, message: String)? {
        switch (user, arguments.count) {
        case (nil, 2): UInt64(arguments[0]).map { ($0, arguments[1]) }
        case (.some, 1): (nil, arguments[0])
        default: nil
        }
    }

    func validate() throws {
        if let user, let problem = UserID.problem(user) {
            throw ValidationError("--user: \(problem); a user id is 1 to \(UserID.maxLength) bytes of UTF-8 without control characters")
        }
        guard let parsed else {
            if user != nil { throw ValidationError("with --user, give only the message: hive push --user <user> <message>") }
            if arguments.count == 2 {
                throw ValidationError("\"\(arguments[0])\" is not a connection id; `hive connections` lists them")
            }
            throw ValidationError("give a connection id and a message (hive push <id> <message>), or --user <user> <message>")
        }
        if parsed.message.utf8.count > 64 * 1024 {
            throw ValidationError("the message is \(parsed.message.utf8.count) bytes; `hive push` sends at most 65536")
        }
    }

    func run() throws {
        try runReporting {
            _ = try target.requireMaster()
            guard let parsed else { return }
            let body = Array(parsed.message.utf8)
            let client = try ControlClient(runDirectory: target.runDirectory)
            if let user {
                let id = Array(user.utf8)
                let reply = try client.request("push-user \(id.count) \(body.count)", body: id + body)
                try printReply(reply.text)
            } else if let id = parsed.id {
                try printReply(client.request("push \(id) \(body.count)", body: body).text)
            }
        }
    }
}

/// `hive disconnect ID`: closes one connection on its owning worker (WebSocket: with a close code).
struct Disconnect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Close one connection.")

    @OptionGroup var target: RunDirOptions

    @Argument(help: "Connection id (see `hive connections`).")
    var id: UInt64

    @Option(help: "WebSocket close code: 1000-1003, 1007-1014 or 3000-4999.")
    var code: Int = 1000

    func validate() throws {
        if let refusal = CloseCode.refusal(code) { throw ValidationError("--code: \(refusal)") }
    }

    func run() throws {
        try runReporting {
            _ = try target.requireMaster()
            let reply = try ControlClient(runDirectory: target.runDirectory).request("disconnect \(id) \(code)")
            try printReply(reply.text)
        }
    }
}

/// `ok ...` is printed; `error <sentence>` becomes the command's error (exit status 1).
func printReply(_ text: String) throws {
    let line = text.trimmingCharacters(in: .newlines)
    if line.hasPrefix("ok") {
        print(line.dropFirst(3))
    } else if line.hasPrefix("error ") {
        throw OperatorError(String(line.dropFirst(6)))
    } else {
        throw OperatorError("unexpected reply from the master: \(line.prefix(200))")
    }
}
