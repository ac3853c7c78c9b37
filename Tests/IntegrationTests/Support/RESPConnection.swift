#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

// MARK: - RESP

/// One RESP2 reply. `nil` payloads are Redis's null bulk string (`$-1`) and null array (`*-1`).
enum RESPValue: Equatable, Sendable, CustomStringConvertible {
    case simple(String)
    case error(String)
    case integer(Int)
    case bulk([UInt8]?)
    case array([RESPValue]?)

    /// A bulk string holding `text` as UTF-8: `reply == .text("OK")` reads better than spelling out the bytes.
    static func text(_ text: String) -> RESPValue {
        .bulk(Array(text.utf8))
    }

    /// Simple and (non-null) bulk strings as text, invalid UTF-8 replaced; nil for anything else.
    var stringValue: String? {
        switch self {
        case .simple(let text): return text
        case .bulk(let bytes?): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }

    var bytesValue: [UInt8]? {
        switch self {
        case .simple(let text): return Array(text.utf8)
        case .bulk(let bytes?): return bytes
        default: return nil
        }
    }

    var intValue: Int? {
        if case .integer(let value) = self { return value }
        return nil
    }

    var arrayValue: [RESPValue]? {
        if case .array(let items?) = self { return items }
        return nil
    }

    var isError: Bool {
        if case .error = self { return true }
        return false
    }

    /// One line, close to the wire: `+OK`, `-ERR …`, `:1`, `"bulk"`, `(nil bulk)`, `[…]`; long bulks truncated.
    var description: String {
        switch self {
        case .simple(let text): return "+" + text
        case .error(let text): return "-" + text
        case .integer(let value): return ":\(value)"
        case .bulk(nil): return "(nil bulk)"
        case .bulk(let bytes?): return Self.quote(bytes)
        case .array(nil): return "(nil array)"
        case .array(let items?): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        }
    }

    /// `bytes` in quotes, with \r, \n, \", \\ and non-printable bytes escaped, cut after `limit` bytes.
    static func quote(_ bytes: [UInt8], limit: Int = 200) -> String {
        var text = "\""
        for byte in bytes.prefix(limit) {
            switch byte {
            case 0x0D: text += "\\r"
            case 0x0A: text += "\\n"
            case 0x22: text += "\\\""
            case 0x5C: text += "\\\\"
            case 0x20..<0x7F: text.unicodeScalars.append(UnicodeScalar(byte))
            default: text += String(format: "\\x%02x", byte)
            }
        }
        text += "\""
        return bytes.count > limit ? text + "… (\(bytes.count) bytes)" : text
    }
}

/// Reads one complete RESP2 reply off a TestSocket: bulk strings of any size, arrays nested to any depth.
enum RESPParser {
    private static let crlf: [UInt8] = [0x0D, 0x0A]
    /// Refuse absurd lengths: a garbage header must fail the test, not exhaust memory. Redis's own limit
    /// (proto-max-bulk-len) defaults to 512 MB.
    static let maxLength = 1 << 30

    static func read(from socket: TestSocket, deadline: TestDeadline, waitingFor what: String) throws -> RESPValue {
        let line = try socket.read(until: Self.crlf, deadline: deadline, waitingFor: what)
        guard let type = line.first else {
            throw RedisServerError.protocolError(reason: "empty line", bufferedBytes: socket.buffer)
        }
        let rest = String(decoding: line.dropFirst(), as: UTF8.self)
        switch type {
        case UInt8(ascii: "+"):
            return .simple(rest)
        case UInt8(ascii: "-"):
            return .error(rest)
        case UInt8(ascii: ":"):
            return .integer(try Self.number(rest, in: line, socket: socket))
        case UInt8(ascii: "$"):
            let length = try Self.length(rest, in: line, socket: socket)
            guard length >= 0 else { return .bulk(nil) }
            let bytes = try socket.read(exactly: length + 2, deadline: deadline, waitingFor: what)
            guard bytes.suffix(2).elementsEqual(Self.crlf) else {
                throw RedisServerError.protocolError(
                    reason: "bulk string of \(length) bytes not followed by CRLF", bufferedBytes: bytes)
            }
            return .bulk(Array(bytes.prefix(length)))
        case UInt8(ascii: "*"):
            let count = try Self.length(rest, in: line, socket: socket)
            guard count >= 0 else { return .array(nil) }
            var items: [RESPValue] = []
            items.reserveCapacity(min(count, 1024))
            for _ in 0..<count {
                items.append(try Self.read(from: socket, deadline: deadline, waitingFor: what))
            }
            return .array(items)
        default:
            throw RedisServerError.protocolError(
                reason: "unknown type byte \(RESPValue.quote([type])) in line \(RESPValue.quote(line))",
                bufferedBytes: socket.buffer)
        }
    }

    private static func number(_ text: String, in line: [UInt8], socket: TestSocket) throws -> Int {
        guard let value = Int(text) else {
            throw RedisServerError.protocolError(
                reason: "bad number in line \(RESPValue.quote(line))", bufferedBytes: socket.buffer)
        }
        return value
    }

    /// A bulk or array length: -1 (null) up to `maxLength`.
    private static func length(_ text: String, in line: [UInt8], socket: TestSocket) throws -> Int {
        let value = try Self.number(text, in: line, socket: socket)
        guard value >= -1, value <= Self.maxLength else {
            throw RedisServerError.protocolError(
                reason: "length out of range in line \(RESPValue.quote(line))", bufferedBytes: socket.buffer)
        }
        return value
    }
}

/// A message delivered to a subscribed connection. `pattern` is set for `pmessage` (pattern subscriptions).
struct RESPPubSubMessage: Equatable, Sendable {
    var pattern: String?
    var channel: String
    var payload: [UInt8]

    var text: String { String(decoding: self.payload, as: UTF8.self) }
}

/// A minimal blocking Redis client over one TCP connection to 127.0.0.1 (RESP2, no dependencies).
///
/// Sends exactly what it is told and reads one reply per `readReply()`; never reconnects, so a test can see the
/// server drop it (e.g. after `RedisServer.restart()`). Every read is bounded by a deadline.
final class RESPConnection {
    let port: Int
    /// Default budget in seconds for each reply, and for each blocked send.
    var timeout: TimeInterval
    private let socket: TestSocket

    /// Connects at once; throws `TestClientError.syscall` (e.g. ECONNREFUSED) if nothing listens.
    init(port: Int, timeout: TimeInterval = 5) throws {
        self.port = port
        self.timeout = timeout
        self.socket = try TestSocket(port: port, timeout: timeout)
    }

    /// Closes the socket; also done on deinit.
    func close() {
        self.socket.close()
    }

    // MARK: Commands

    /// Sends one command and reads its reply. An error reply comes back as `.error`, not thrown.
    func command(_ args: [String]) throws -> RESPValue {
        try self.command(args.map { Array($0.utf8) })
    }

    /// `command` with binary-safe arguments.
    func command(_ args: [[UInt8]]) throws -> RESPValue {
        try self.send(args)
        return try self.readReply(waitingFor: "the reply to \(Self.describe(args))")
    }

    /// Sends one command as a RESP array of bulk strings, without reading the reply (pipelining, SUBSCRIBE).
    func send(_ args: [[UInt8]]) throws {
        try self.socket.send(Self.encode(args))
    }

    func send(_ args: [String]) throws {
        try self.send(args.map { Array($0.utf8) })
    }

    /// Sends raw bytes, e.g. an inline command or a malformed request.
    func send(raw bytes: [UInt8]) throws {
        try self.socket.send(bytes)
    }

    /// The next reply, or push message on a subscribed connection.
    /// - Parameter timeout: seconds for the whole reply; `self.timeout` if nil.
    func readReply(timeout: TimeInterval? = nil) throws -> RESPValue {
        try self.readReply(timeout: timeout, waitingFor: "a RESP reply")
    }

    // MARK: Pub/Sub

    /// `SUBSCRIBE channels…`, then reads one confirmation per channel.
    func subscribe(_ channels: [String]) throws {
        try self.subscribe(kind: "subscribe", channels)
    }

    /// `PSUBSCRIBE patterns…`, then reads one confirmation per pattern.
    func psubscribe(_ patterns: [String]) throws {
        try self.subscribe(kind: "psubscribe", patterns)
    }

    /// The next `message` / `pmessage` on a subscribed connection; anything else throws `unexpectedReply`.
    func readPubSubMessage(timeout: TimeInterval? = nil) throws -> RESPPubSubMessage {
        let reply = try self.readReply(timeout: timeout, waitingFor: "a published message")
        guard let items = reply.arrayValue, let kind = items.first?.stringValue else {
            throw RedisServerError.unexpectedReply(command: "(subscribed connection)", reply: reply)
        }
        if kind == "message", items.count == 3, let channel = items[1].stringValue, let payload = items[2].bytesValue {
            return RESPPubSubMessage(pattern: nil, channel: channel, payload: payload)
        }
        if kind == "pmessage", items.count == 4, let pattern = items[1].stringValue,
            let channel = items[2].stringValue, let payload = items[3].bytesValue
        {
            return RESPPubSubMessage(pattern: pattern, channel: channel, payload: payload)
        }
        throw RedisServerError.unexpectedReply(command: "(subscribed connection)", reply: reply)
    }

    // MARK: Connection state

    /// True if the server closes the connection within `seconds` (data arriving first is kept).
    func isClosedByPeer(within seconds: TimeInterval) -> Bool {
        (try? self.socket.waitForClose(deadline: TestDeadline(seconds: seconds))) ?? true
    }

    /// True if at least one byte is waiting or arrives within `seconds`, e.g. to assert nothing was published.
    func receivedAnything(within seconds: TimeInterval) -> Bool {
        (try? self.socket.receivedAnything(deadline: TestDeadline(seconds: seconds))) ?? false
    }

    // MARK: Encoding

    /// `*<n>\r\n` then `$<len>\r\n<bytes>\r\n` per argument: the form redis-cli sends.
    static func encode(_ args: [[UInt8]]) -> [UInt8] {
        var bytes = Array("*\(args.count)\r\n".utf8)
        for arg in args {
            bytes += Array("$\(arg.count)\r\n".utf8)
            bytes += arg
            bytes += [0x0D, 0x0A]
        }
        return bytes
    }

    /// A command for error messages: the first few arguments, quoted, long ones cut.
    static func describe(_ args: [[UInt8]]) -> String {
        let shown = args.prefix(4).map { RESPValue.quote($0, limit: 40) }.joined(separator: " ")
        return args.count > 4 ? shown + " … (\(args.count) arguments)" : shown
    }

    private func readReply(timeout: TimeInterval? = nil, waitingFor what: String) throws -> RESPValue {
        try RESPParser.read(
            from: self.socket, deadline: TestDeadline(seconds: timeout ?? self.timeout),
            waitingFor: "\(what) from redis on port \(self.port)")
    }

    private func subscribe(kind: String, _ names: [String]) throws {
        try self.send([kind.uppercased()] + names)
        for name in names {
            let reply = try self.readReply(waitingFor: "the \(kind) confirmation for \(name)")
            guard let items = reply.arrayValue, items.count == 3, items[0].stringValue == kind,
                items[1].stringValue == name, items[2].intValue != nil
            else {
                throw RedisServerError.unexpectedReply(command: "\(kind.uppercased()) \(name)", reply: reply)
            }
        }
    }
}

@available(*, unavailable)
extension RESPConnection: Sendable {}   // one owner: replies are read in order by one test thread
