#if canImport(Glibc)
import Glibc
#endif

/// The subscriber's side of one connection once hiredis has connected it: commands are written and replies read
/// on the socket directly, through `RESPStream`, so a message over the size limit is skipped as it arrives instead
/// of being buffered and copied whole first. Used by the subscriber thread during the handshake, then by the event
/// loop that reads the subscription (`SubscriptionReader`); `connection` keeps the descriptor open (hiredis closes
/// it when freed).
final class SubscriptionSocket: @unchecked Sendable {
    // @unchecked: used by one side at a time, the subscriber thread, then the event loop (see `RedisSubscriber`).
    let connection: RedisConnection
    private var stream: RESPStream
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    init(connection: RedisConnection, maxBulk: Int) {
        self.connection = connection
        stream = RESPStream(maxBulk: maxBulk)
    }

    deinit { buffer.deallocate() }

    private var address: String { connection.url.description }

    /// The connection reached its end from Redis' side.
    var closedByRedis: RedisError {
        RedisError(address: address, message: "connection closed by Redis (a subscriber past client-output-buffer-limit pubsub is closed)")
    }

    /// Writes a whole command; SO_SNDTIMEO (the connection's timeout) bounds a server that stopped reading.
    func send(_ command: [[UInt8]]) throws {
        let bytes = RESPStream.encode(command)
        let name = String(decoding: command.first ?? [], as: UTF8.self)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(connection.fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw RedisError(address: address, message: RedisConnection.timeoutMessage(name, seconds: connection.timeout))
                }
                throw RedisError(address: address, message: "connection lost while sending \(name): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Reads once (blocking, or until `deadline` on the monotonic clock) and returns the replies it completed,
    /// possibly none. `waitingFor` names the command whose reply a timeout would be missing.
    func read(deadline: Double? = nil, waitingFor: String = "") throws -> [RESPStream.Value] {
        let fd = connection.fd
        if let deadline {
            while true {
                let remaining = deadline - Monotonic.seconds()
                guard remaining > 0 else {
                    throw RedisError(address: address, message: RedisConnection.timeoutMessage(waitingFor, seconds: connection.timeout))
                }
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&poller, 1, Int32(min(remaining * 1000 + 1, 60_000)))
                if ready > 0 { break }
                if ready < 0 && errno != EINTR {
                    throw RedisError(address: address, message: "poll failed: \(String(cString: strerror(errno)))")
                }
            }
        }
        var n: Int
        repeat { n = Glibc.read(fd, buffer.baseAddress, buffer.count) } while n < 0 && errno == EINTR
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK {  // SO_RCVTIMEO, during the handshake
                throw RedisError(address: address, message: RedisConnection.timeoutMessage(waitingFor, seconds: connection.timeout))
            }
            throw RedisError(address: address, message: "connection lost: \(String(cString: strerror(errno)))")
        }
        if n == 0 {
            throw closedByRedis
        }
        return try feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
    }

    /// Parses bytes read from this connection (here, or by the event loop once subscribed) and returns the replies
    /// they completed; a reply cut at the end waits for the next bytes.
    func feed(_ bytes: UnsafeRawBufferPointer) throws -> [RESPStream.Value] {
        var replies: [RESPStream.Value] = []
        do {
            try stream.feed(bytes, into: &replies)
        } catch {
            throw RedisError(address: address, message: "\(error)")
        }
        return replies
    }
}

enum Monotonic {
    static func seconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
