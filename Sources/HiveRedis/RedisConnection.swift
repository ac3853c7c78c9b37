import CHiredis

#if canImport(Glibc)
import Glibc
#endif

/// A reply from Redis, copied out of hiredis' reply object.
package enum RedisReply: Sendable, Equatable {
    case string([UInt8])
    case status(String)
    case error(String)
    case integer(Int)
    case null
    case array([RedisReply])

    init(_ reply: UnsafePointer<redisReply>) {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            self = .string(value.str.map { Array(UnsafeRawBufferPointer(start: $0, count: value.len)) } ?? [])
        case REDIS_REPLY_STATUS:
            self = .status(value.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_ERROR:
            self = .error(value.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_INTEGER:
            self = .integer(Int(value.integer))
        case REDIS_REPLY_ARRAY:
            self = .array((0..<value.elements).compactMap { value.element[$0].map { RedisReply(UnsafePointer($0)) } })
        default:
            self = .null
        }
    }

    var text: String? {
        switch self {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }
}

/// What went wrong talking to Redis, with the address and what to do.
package struct RedisError: Error, CustomStringConvertible, Equatable {
    package let address: String
    package let message: String

    package init(address: String, message: String) {
        self.address = address
        self.message = message
    }

    package var description: String { "Redis at \(address): \(message)" }
}

/// One blocking hiredis connection, used by one thread. `fd` may be shut down from another thread to interrupt a
/// blocking read (the owner still frees the context).
final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    let url: RedisURL
    /// Seconds a connect, and then each read or write, may take (SO_RCVTIMEO/SO_SNDTIMEO) until `clearTimeout()`.
    let timeout: Double

    var fd: Int32 { context.pointee.fd }

    /// Connects (bounded by `timeout` seconds) and turns on TCP keep-alive; sends nothing: see `authenticate()`.
    init(url: RedisURL, timeout: Double = 3) throws {
        self.url = url
        self.timeout = timeout
        let limit = Self.timeval(seconds: timeout)
        let made: UnsafeMutablePointer<redisContext>?
        switch url.endpoint {
        case .tcp(let host, let port): made = redisConnectWithTimeout(host, Int32(port), limit)
        case .unix(let path): made = redisConnectUnixWithTimeout(path, limit)
        }
        guard let made else { throw RedisError(address: url.description, message: "out of memory while connecting") }
        guard made.pointee.err == 0 else {
            let reason = withUnsafeBytes(of: made.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            redisFree(made)
            throw RedisError(address: url.description, message: "cannot connect: \(reason); is redis-server running there?")
        }
        context = made
        if case .tcp = url.endpoint { redisEnableKeepAlive(context) }
        // A server that accepts and then never answers must not hold anyone forever.
        redisSetTimeout(context, limit)
    }

    deinit { redisFree(context) }

    /// AUTH with the URL's password, if it has one.
    func authenticate() throws {
        guard let password = url.password else { return }
        if case .error(let message) = try command(["AUTH", password].map { Array($0.utf8) }) {
            throw RedisError(address: url.description, message: "AUTH failed: \(message); check the password")
        }
    }

    /// No read timeout from now on: a subscription legitimately idles for hours.
    func clearTimeout() {
        redisSetTimeout(context, Self.timeval(seconds: 0))
    }

    /// Sends one command and waits for its reply.
    func command(_ arguments: [[UInt8]]) throws -> RedisReply {
        let name = Self.name(arguments)
        let raw = try withArgv(arguments) { count, argv, lengths in redisCommandArgv(context, count, argv, lengths) }
        guard let raw else { throw currentError(name) }
        defer { freeReplyObject(raw) }
        return RedisReply(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Commands sent in one go per `chunk` and their replies read after each chunk, in order: one round trip per chunk
    /// instead of one per command (a `hive status` with thousands of channels with history).
    func pipeline(_ commands: [[[UInt8]]], chunk: Int = 256) throws -> [RedisReply] {
        precondition(chunk > 0)
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        var start = commands.startIndex
        while start < commands.endIndex {
            let part = commands[start..<min(start + chunk, commands.endIndex)]
            for arguments in part {
                let appended = try withArgv(arguments) { count, argv, lengths in
                    redisAppendCommandArgv(context, count, argv, lengths)
                }
                guard appended == REDIS_OK else { throw currentError(Self.name(arguments)) }
            }
            for arguments in part {
                var raw: UnsafeMutableRawPointer?
                guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw currentError(Self.name(arguments)) }
                defer { freeReplyObject(raw) }
                replies.append(RedisReply(raw.assumingMemoryBound(to: redisReply.self)))
            }
            start = part.endIndex
        }
        return replies
    }

    private static func name(_ arguments: [[UInt8]]) -> String { String(decoding: arguments.first ?? [], as: UTF8.self) }

    /// Calls `body` with hiredis' argv form of `arguments`. hiredis copies the arguments into its output buffer,
    /// so the pointers only need to live for the call.
    private func withArgv<Result>(
        _ arguments: [[UInt8]],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafeMutablePointer<Int>) throws -> Result
    ) rethrows -> Result {
        var lengths = arguments.map { $0.count }
        let pointers = arguments.map { argument -> UnsafeMutablePointer<CChar> in
            let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: max(argument.count, 1))
            argument.withUnsafeBytes { UnsafeMutableRawPointer(pointer).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(pointer), byteCount: argument.count) }
            return pointer
        }
        defer { pointers.forEach { $0.deallocate() } }
        var argv: [UnsafePointer<CChar>?] = pointers.map { UnsafePointer($0) }
        return try body(Int32(arguments.count), &argv, &lengths)
    }

    private func currentError(_ command: String) -> RedisError {
        let reason = withUnsafeBytes(of: context.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        // SO_RCVTIMEO/SO_SNDTIMEO expiring reads as EAGAIN, which hiredis reports as its errno text.
        if context.pointee.err == REDIS_ERR_IO && reason == String(cString: strerror(EAGAIN)) {
            return RedisError(address: url.description, message: Self.timeoutMessage(command, seconds: timeout))
        }
        return RedisError(address: url.description, message: reason.isEmpty ? "\(command) failed" : reason)
    }

    static func timeoutMessage(_ command: String, seconds: Double) -> String {
        "timed out: no reply to \(command) within \(seconds.compactText) s; is that a Redis server, and responsive?"
    }

    static func timeval(seconds: Double) -> Glibc.timeval {
        Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1e6))
    }
}

extension Double {
    /// 3 → "3", 0.5 → "0.5".
    var compactText: String { self == rounded() && abs(self) < 1e15 ? String(Int(self)) : String(self) }
}
