import Foundation
import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A Redis subscription on its own thread, with the blocking hiredis API (Swift cannot call the variadic
/// `redisCommand`, and hiredis' async API needs an fd-readiness adapter NIO does not offer).
///
/// - Never a read timeout on the subscription: it legitimately idles.
/// - Redis unreachable or lost: reconnect with jittered exponential back-off (100 ms doubling, capped at 5 s) and
///   subscribe again; each state change is logged once, never once per retry.
/// - `stop()` returns only when the connection is closed and no message can be delivered any more: on a reload,
///   the old worker 0 is stopped this way before its replacement subscribes, so no message is delivered twice.
/// - Pub/sub is at-most-once: what is published while disconnected is lost (Docs/REDIS.md).
public final class RedisSubscriber: @unchecked Sendable {
    // @unchecked: `stopped`, `connectionFD` and `finished` are guarded by `condition`; everything else is
    // immutable or touched by the subscriber thread only.
    public struct Configuration: Sendable {
        public var url: RedisURL
        public var channels: [String]
        public var patterns: [String]

        public init(url: RedisURL, channels: [String], patterns: [String]) {
            self.url = url
            self.channels = channels
            self.patterns = patterns
        }
    }

    public struct Message: Sendable, Equatable {
        public var channel: String
        /// The pattern that matched, for PSUBSCRIBE deliveries.
        public var pattern: String?
        public var payload: [UInt8]
    }

    public let configuration: Configuration
    private let registry: SharedRegistry?
    private let logger: Logger
    private let onMessages: @Sendable ([Message]) -> Void
    private let condition = NSCondition()
    private var stopped = false
    private var finished = false
    private var connectionFD: Int32 = -1

    /// - Parameters:
    ///   - registry: where `hive status` reads the subscription's state and counters (nil in tests).
    ///   - onMessages: called on the subscriber thread with the messages read in one go (one, or a burst that was
    ///     already buffered), in publish order; must not block for long (Redis drops subscribers that fall behind).
    public init(configuration: Configuration, registry: SharedRegistry?, logger: Logger,
                onMessages: @escaping @Sendable ([Message]) -> Void) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        self.onMessages = onMessages
    }

    public func start() {
        let thread = Thread { [self] in
            self.run()
            self.condition.withLock {
                self.finished = true
                self.condition.broadcast()
            }
        }
        thread.name = "hive-redis"
        thread.start()
    }

    /// Ends the subscription and waits until the subscriber thread is done (at most a connect timeout).
    public func stop() {
        condition.lock()
        stopped = true
        if connectionFD >= 0 { shutdown(connectionFD, Int32(SHUT_RDWR)) }  // interrupts the blocking read
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
        registry?.redis(.state).store(RedisState.off.rawValue, ordering: .relaxed)
        registry?.redis(.subscribedSince).store(0, ordering: .relaxed)
        logger.info("redis subscription stopped", metadata: ["redis.address": "\(configuration.url)"])
    }

    private var isStopped: Bool { condition.withLock { stopped } }

    private func run() {
        var delay = 0.1
        var everSubscribed = false
        var lastLogged: RedisState?
        var lastError: String?
        while !isStopped {
            record(.connecting)
            do {
                let connection = try RedisConnection(url: configuration.url)
                let adopted = condition.withLock { () -> Bool in
                    guard !stopped else { return false }
                    connectionFD = connection.fd
                    return true
                }
                guard adopted else { return }
                defer {
                    // Unregister before the connection (and its descriptor) is freed: stop() must never shut down
                    // a descriptor number that has been reused.
                    condition.withLock { connectionFD = -1 }
                    withExtendedLifetime(connection) {}
                }
                try subscribe(connection)
                if everSubscribed { registry?.redis(.reconnects).wrappingIncrement(ordering: .relaxed) }
                everSubscribed = true
                delay = 0.1
                record(.subscribed)
                registry?.redis(.subscribedSince).store(Clock.wallNanoseconds(), ordering: .relaxed)
                if lastLogged != .subscribed {
                    logger.notice("redis subscribed", metadata: [
                        "redis.address": "\(configuration.url)", "redis.channels": "\(configuration.channels)",
                        "redis.patterns": "\(configuration.patterns)",
                    ])
                    lastLogged = .subscribed
                    lastError = nil
                }
                try receive(connection)
            } catch {
                guard !isStopped else { return }
                registry?.redis(.subscribedSince).store(0, ordering: .relaxed)
                registry?.redisLastError = "\(error)"
                record(.disconnected)
                let text = "\(error)"
                if lastLogged != .disconnected || lastError != text {
                    logger.warning(
                        everSubscribed ? "redis subscription lost; reconnecting with back-off" : "redis unreachable; retrying with back-off",
                        metadata: ["error": "\(text)", "hint": "Hive serves meanwhile; messages published now are lost (pub/sub is at-most-once)"]
                    )
                    lastLogged = .disconnected
                    lastError = text
                }
            }
            // Jitter spreads the reconnects of many Hive hosts after a Redis restart.
            sleep(seconds: delay * Double.random(in: 0.8...1.2))
            delay = min(delay * 2, 5)
        }
    }

    private func subscribe(_ connection: RedisConnection) throws {
        for (command, names) in [("SUBSCRIBE", configuration.channels), ("PSUBSCRIBE", configuration.patterns)] where !names.isEmpty {
            let reply = try connection.command([Array(command.utf8)] + names.map { Array($0.utf8) })
            if case .error(let message) = reply {
                throw RedisError(address: configuration.url.description, message: "\(command) failed: \(message)")
            }
            // One confirmation per name; the first came back as the command's reply.
            for _ in 1..<names.count { _ = try connection.readReply() }
        }
    }

    static let maxBatch = 1024

    private func receive(_ connection: RedisConnection) throws {
        var batch: [Message] = []
        while true {
            // Block for one reply, then take the ones hiredis already has buffered: a burst is handed on as one
            // batch, and becomes one write per WebSocket connection downstream.
            var reply: RedisReply? = try connection.readReply()
            while let current = reply {
                if let message = Self.message(from: current) { batch.append(message) }
                reply = batch.count < Self.maxBatch ? try connection.bufferedReply() : nil
            }
            guard !batch.isEmpty else { continue }
            if isStopped { return }
            registry?.redis(.messages).wrappingIncrement(by: UInt64(batch.count), ordering: .relaxed)
            registry?.redis(.bytes).wrappingIncrement(by: UInt64(batch.reduce(0) { $0 + $1.payload.count }), ordering: .relaxed)
            registry?.redis(.lastMessageAt).store(Clock.wallNanoseconds(), ordering: .relaxed)
            onMessages(batch)
            batch.removeAll(keepingCapacity: true)
        }
    }

    /// A published message, or nil for subscribe confirmations and anything else.
    static func message(from reply: RedisReply) -> Message? {
        guard case .array(let parts) = reply, let kind = parts.first?.text else { return nil }
        switch (kind, parts.count) {
        case ("message", 3):
            guard case .string(let payload) = parts[2] else { return nil }
            return Message(channel: parts[1].text ?? "", pattern: nil, payload: payload)
        case ("pmessage", 4):
            guard case .string(let payload) = parts[3] else { return nil }
            return Message(channel: parts[2].text ?? "", pattern: parts[1].text, payload: payload)
        default:
            return nil
        }
    }

    private func record(_ state: RedisState) {
        registry?.redis(.state).store(state.rawValue, ordering: .relaxed)
    }

    /// Sleeps, but wakes at once when stopped.
    private func sleep(seconds: Double) {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(seconds)
        while !stopped && Date() < deadline { _ = condition.wait(until: deadline) }
    }
}
