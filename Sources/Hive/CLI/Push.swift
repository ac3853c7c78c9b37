import ArgumentParser
import HiveIPC

/// `hive push ID MESSAGE`: a text message to one connection, routed by the master to its owning worker.
struct Push: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Push a text message to one WebSocket connection.")

    @OptionGroup var target: RunDirOptions

    @Argument(help: "Connection id (see `hive connections`).")
    var id: UInt64

    @Argument(help: "The text to send.")
    var message: String

    func validate() throws {
        if message.utf8.count > 64 * 1024 {
            throw ValidationError("the message is \(message.utf8.count) bytes; `hive push` sends at most 65536")
        }
    }

    func run() throws {
        try runReporting {
            _ = try target.requireMaster()
            let body = Array(message.utf8)
            let reply = try ControlClient(runDirectory: target.runDirectory).request("push \(id) \(body.count)", body: body)
            try printReply(reply.text)
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
