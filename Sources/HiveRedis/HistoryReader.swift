import Foundation
import Logging

/// Reads channel history for recovering clients, off the event loop: one blocking connection driven by its own
/// thread, one request at a time, in order. Any worker has one (started by its first read), so recovery never
/// waits for worker 0. Each read is one `MULTI` / `HMGET meta epoch offset` / `XRANGE stream from + COUNT n` /
/// `EXEC`: the epoch, the last offset and the entries are one consistent snapshot.
package final class HistoryReader: @unchecked Sendable {
    // @unchecked: `queue`, `state` are guarded by `lock`; `connection` is touched by the reader thread only; the
    // rest is immutable.

    /// One snapshot of a channel's history.
    package struct Page: Sendable, Equatable {
        /// nil: the channel has no history (never published with history, expired, or lost).
        package var epoch: String?
        /// The channel's last offset (0 without history).
        package var last: UInt64
        /// Entries after the offset asked for, in order, at most the limit asked for.
        package var entries: [Entry]

        package init(epoch: String?, last: UInt64, entries: [Entry]) {
            self.epoch = epoch
            self.last = last
            self.entries = entries
        }
    }

    package struct Entry: Sendable, Equatable {
        package var offset: UInt64
        package var payload: [UInt8]

        package init(offset: UInt64, payload: [UInt8]) {
            self.offset = offset
            self.payload = payload
        }
    }

    private struct Request {
        let keys: ChannelHistory.Keys
        let after: UInt64
        let limit: Int
        let completion: @Sendable (Result<Page, RedisError>) -> Void
    }

    private let url: RedisURL
    private let timeout: Double
    private let logger: Logger
    private let lock = NSCondition()
    private var queue: [Request] = []
    private var started = false
    private var stopping = false
    private var finished = false
    private var connection: RedisConnection?

    package init(url: RedisURL, timeout: Double, logger: Logger) {
        self.url = url
        self.timeout = timeout
        self.logger = logger
    }

    /// Reads the entries after offset `after` (at most `limit`); `completion` runs on the reader's thread.
    package func read(_ keys: ChannelHistory.Keys, after: UInt64, limit: Int,
                      completion: @escaping @Sendable (Result<Page, RedisError>) -> Void) {
        lock.lock()
        guard !stopping else {
            lock.unlock()
            completion(.failure(RedisError(address: url.description, message: "the history reader was shut down (the worker is stopping)")))
            return
        }
        queue.append(Request(keys: keys, after: after, limit: max(1, limit), completion: completion))
        if !started {
            started = true
            let thread = Thread { [self] in self.run() }
            thread.name = "hive-redis-history"
            thread.start()
        }
        lock.signal()
        lock.unlock()
    }

    /// Fails what is queued, lets the read in progress end (within `timeout`) and returns once the thread is gone.
    package func shutdown() {
        lock.lock()
        stopping = true
        let left = queue
        queue = []
        lock.broadcast()
        let deadline = Date(timeIntervalSinceNow: 2 * timeout + 1)
        while started && !finished { if !lock.wait(until: deadline) { break } }
        lock.unlock()
        for request in left {
            request.completion(.failure(RedisError(address: url.description, message: "the history reader was shut down (the worker is stopping)")))
        }
    }

    private func run() {
        while true {
            lock.lock()
            while queue.isEmpty && !stopping { lock.wait() }
            if stopping {
                finished = true
                lock.broadcast()
                lock.unlock()
                connection = nil
                return
            }
            let request = queue.removeFirst()
            lock.unlock()
            request.completion(perform(request))
        }
    }

    private func perform(_ request: Request) -> Result<Page, RedisError> {
        do {
            if connection == nil {
                let made = try RedisConnection(url: url, timeout: timeout)
                try made.authenticate()
                connection = made
            }
            let reply = try Self.snapshot(connection!, request.keys, after: request.after, limit: request.limit)
            guard let page = Self.page(reply) else {
                return .failure(RedisError(address: url.description, message: "reading history gave an unexpected reply: \(String(describing: reply).prefix(200))"))
            }
            return .success(page)
        } catch let error as RedisError {
            // The connection may be half-way through a reply: a new one for the next read.
            connection = nil
            return .failure(error)
        } catch {
            connection = nil
            return .failure(RedisError(address: url.description, message: "\(error)"))
        }
    }

    private static func snapshot(_ connection: RedisConnection, _ keys: ChannelHistory.Keys, after: UInt64, limit: Int) throws -> RedisReply {
        let commands: [[String]] = [
            ["MULTI"],
            ["HMGET", keys.meta, "epoch", "offset"],
            ["XRANGE", keys.stream, "\(after &+ 1)-0", "+", "COUNT", String(limit)],
        ]
        for command in commands {
            if case .error(let message) = try connection.command(command.map { Array($0.utf8) }) {
                _ = try? connection.command([Array("DISCARD".utf8)])
                throw RedisError(address: connection.url.description, message: "\(command[0]) failed: \(message)")
            }
        }
        return try connection.command([Array("EXEC".utf8)])
    }

    /// EXEC's `[[epoch, offset], [[id, [field, value, …]], …]]`; nil for any other shape.
    static func page(_ reply: RedisReply) -> Page? {
        guard case .array(let results) = reply, results.count == 2, case .array(let meta) = results[0], meta.count == 2,
            case .array(let rows) = results[1]
        else { return nil }
        var epoch: String?
        var last: UInt64 = 0
        if case .string(let bytes) = meta[0] {
            guard HistoryPosition.isEpoch(bytes) else { return nil }
            epoch = String(decoding: bytes, as: UTF8.self)
            guard case .string(let digits) = meta[1], let offset = HistoryPosition.offset(digits[...]) else { return nil }
            last = offset
        }
        var entries: [Entry] = []
        entries.reserveCapacity(rows.count)
        for row in rows {
            guard case .array(let parts) = row, parts.count == 2, case .string(let id) = parts[0],
                let dash = id.firstIndex(of: UInt8(ascii: "-")), let offset = HistoryPosition.offset(id[..<dash]),
                case .array(let fields) = parts[1]
            else { return nil }
            var payload: [UInt8]?
            var index = 0
            while index + 1 < fields.count {
                if case .string(let name) = fields[index], name == [UInt8(ascii: "d")], case .string(let value) = fields[index + 1] {
                    payload = value
                }
                index += 2
            }
            guard let payload else { return nil }
            entries.append(Entry(offset: offset, payload: payload))
        }
        return Page(epoch: epoch, last: last, entries: entries)
    }

    /// What `hive channels` shows of one channel's history.
    package struct Summary: Sendable, Equatable {
        package var epoch: String?
        package var last: UInt64
        package var length: Int
    }

    /// Each channel's epoch, last offset and stream length, read with one blocking connection (the CLI's), the
    /// commands pipelined: thousands of channels cost a few round trips, not two per channel.
    package static func summaries(url: RedisURL, redisChannels: [String], timeout: Double = 3) throws -> [Summary] {
        let connection = try RedisConnection(url: url, timeout: timeout)
        try connection.authenticate()
        let commands = redisChannels.flatMap { channel -> [[[UInt8]]] in
            let keys = ChannelHistory.Keys(redisChannel: channel)
            return [["HMGET", keys.meta, "epoch", "offset"].map { Array($0.utf8) }, ["XLEN", keys.stream].map { Array($0.utf8) }]
        }
        let replies = try connection.pipeline(commands)
        return redisChannels.indices.map { index in
            var summary = Summary(epoch: nil, last: 0, length: 0)
            if case .array(let meta) = replies[2 * index], meta.count == 2,
                case .string(let epoch) = meta[0], case .string(let offset) = meta[1] {
                summary.epoch = String(decoding: epoch, as: UTF8.self)
                summary.last = HistoryPosition.offset(offset[...]) ?? 0
            }
            if case .integer(let length) = replies[2 * index + 1] { summary.length = length }
            return summary
        }
    }
}
