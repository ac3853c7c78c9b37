import Foundation
import HiveIPC
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A Redis subscription: a thread of its own connects and subscribes with blocking I/O (bounded by `timeout`), then
/// hands the subscribed connection to the worker's event loop, which reads it (`SubscriptionReader`) and calls
/// `onMessages` there, with no thread hop between a message and the broadcast; the thread waits until the
/// connection ends and then reconnects. (hiredis' async API needs an fd-readiness adapter NIO does not offer.)
///
/// - Never a read timeout on the subscription: it legitimately idles. Connecting and the handshake (AUTH, the
///   SUBSCRIBE confirmations) are bounded by `timeout`: a server that accepts and never answers is a failure.
/// - hiredis only connects; the subscriber writes its commands and reads the socket itself (`RESPStream`), so a
///   message over `maxMessageSize` is skipped as it arrives instead of being buffered and copied first.
/// - Redis unreachable or lost: reconnect with jittered exponential back-off (100 ms doubling, capped at 5 s) and
///   subscribe again; each state change is logged once, never once per retry.
/// - `stop()` returns only when the connection is closed and no message can be delivered any more: on a reload,
///   the old worker 0 is stopped this way before its replacement subscribes, so no message is delivered twice.
/// - Pub/sub is at-most-once: what is published while disconnected is lost (Docs/REDIS.md).
package final class RedisSubscriber: @unchecked Sendable {
    // @unchecked: `stopped`, `connectionFD`, `finished` and `readingEnded` are guarded by `condition`; everything
    // else is immutable or touched by one side at a time: the subscriber thread while it connects and subscribes,
    // then the event loop while it reads the subscription (the thread waits on `condition` meanwhile).
    package struct Configuration: Sendable {
        package var url: RedisURL
        package var channels: [String]
        package var patterns: [String]
        /// Largest payload delivered, in bytes: a larger message is skipped as it arrives (never buffered),
        /// counted (`oversized`) and logged at most once a minute.
        package var maxMessageSize: Int
        /// Seconds to connect, and then for the whole handshake (AUTH, SUBSCRIBE replies), before it counts as
        /// failed and is retried with back-off. Never a limit once subscribed.
        package var timeout: Double
        /// Hive channel `NAME` is Redis channel `channelPrefix + NAME` (`--channel-prefix`).
        package var channelPrefix = ""

        package init(
            url: RedisURL, channels: [String], patterns: [String], maxMessageSize: Int = 1 << 20, timeout: Double = 3,
            channelPrefix: String = ""
        ) {
            self.url = url
            self.channels = channels
            self.patterns = patterns
            self.maxMessageSize = maxMessageSize
            self.timeout = timeout
            self.channelPrefix = channelPrefix
        }
    }

    package typealias Message = RedisMessage

    package let configuration: Configuration
    private let registry: SharedRegistry?
    let logger: Logger
    /// Reads the subscription once it is made.
    let eventLoop: EventLoop
    private let onMessages: @Sendable ([Message]) -> Void
    /// The Redis channels wanted besides `configuration.channels` (the channels with subscribers, from the
    /// registry), asked every `syncInterval` seconds; nil: a fixed subscription.
    let dynamicChannels: (@Sendable () -> Set<String>)?
    /// How often the dynamic channels are compared with the subscription (a channel's last subscriber leaving
    /// becomes an UNSUBSCRIBE within this, plus a round trip).
    package static let syncInterval = 0.2
    /// The dynamic channels subscribed on the current connection.
    private var subscribedDynamic: Set<String> = []
    var lastSync = 0.0
    let condition = NSCondition()
    var stopped = false
    private var finished = false
    private var connectionFD: Int32 = -1
    /// The event loop stopped reading the current connection, and why (guarded by `condition`).
    var readingEnded: (any Error)??
    /// When an oversized message was last logged, and how many were dropped since.
    private var oversizedLoggedAt: Double?
    private var oversizedSinceLog = 0

    /// - Parameters:
    ///   - registry: where `hive status` reads the subscription's state and counters (nil in tests).
    ///   - eventLoop: reads the subscription once it is made, and calls `onMessages`.
    ///   - onMessages: called with the messages read in one go (one, or a burst that was already buffered), in
    ///     publish order: on `eventLoop`, or on the subscriber thread for those that arrived during the handshake;
    ///     must not block for long (Redis drops subscribers that fall behind).
    ///   - dynamicChannels: Redis channels to hold besides the configured ones, asked periodically; the
    ///     subscription follows it with SUBSCRIBE and UNSUBSCRIBE on the same connection.
    ///   - splice: the reload hand-over of the subscription between two processes (`RedisSplice`); nil: none.
    package init(configuration: Configuration, registry: SharedRegistry?, logger: Logger, eventLoop: EventLoop,
                dynamicChannels: (@Sendable () -> Set<String>)? = nil, splice: RedisSplice? = nil,
                onHandOff: (@Sendable (_ marker: String) -> Void)? = nil,
                onMessages: @escaping @Sendable ([Message]) -> Void) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        self.eventLoop = eventLoop
        self.dynamicChannels = dynamicChannels
        self.splice = splice
        self.onHandOff = onHandOff
        self.onMessages = onMessages
    }

    /// Old side of a splice: called once at a successor's marker, after the last batch before it was handed on;
    /// it must write `RedisSplice.fingerprint(marker)` to the registry once that batch has left the process.
    private let onHandOff: (@Sendable (String) -> Void)?
    /// New side: messages after our marker, held until the predecessor wrote the fingerprint (or `holdLimit`).
    var held: [Message]?
    private var heldSince = 0.0
    static let holdLimit = 1.0

    private var splice: RedisSplice?
    private var awaitingSince: Double?
    /// A successor took the subscription over (guarded by `condition`): `stop()` leaves the registry's Redis
    /// state to it.
    private var handedOff = false
    /// Set when this process retires (guarded by `condition`): only then does a foreign marker end its subscription.
    private var successorAllowed = false

    /// A reload retired this process: its successor's splice marker may now take the subscription over.
    package func allowSuccessor() {
        condition.withLock { successorAllowed = true }
    }

    package func start() {
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

    /// Ends the subscription and waits until the subscriber thread is done (at most the connect timeout: a
    /// handshake in progress is interrupted at once). Called on the event loop, nothing is delivered after it.
    package func stop() {
        condition.lock()
        stopped = true
        // Interrupts a blocking read of the handshake, and ends the event loop's reading (the same socket).
        if connectionFD >= 0 { shutdown(connectionFD, Int32(SHUT_RDWR)) }
        condition.broadcast()
        while !finished { condition.wait() }
        let successor = handedOff
        condition.unlock()
        guard !successor else { return }
        registry?.redis(.state).store(RedisState.off.rawValue, ordering: .relaxed)
        registry?.redis(.subscribedSince).store(0, ordering: .relaxed)
        logger.info("redis subscription stopped", metadata: ["redis.address": "\(configuration.url)"])
    }

    var isStopped: Bool { condition.withLock { stopped } }
    var isHandedOff: Bool { condition.withLock { handedOff } }

    /// Subscribed, and delivering (with a predecessor: the splice is done and the predecessor has handed on all
    /// it had before it). Guarded by `condition`.
    private var live = false

    func markLive() {
        condition.withLock {
            live = true
            condition.broadcast()
        }
    }

    /// Waits until the subscription delivers (after the splice, when there is a predecessor), at most `timeout`
    /// seconds. A reload's new worker 0 calls it before it reports ready, so the old worker 0's subscription has
    /// ended before the old process hands its connections over.
    package func waitUntilLive(timeout: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while !live && !stopped && Date() < deadline { _ = condition.wait(until: deadline) }
        return live
    }

    /// Publishes this process's splice marker on a connection of its own (a subscribed connection cannot
    /// publish). A failure is logged; the wait for the marker then ends after `timeout`.
    /// Returns how many subscribers the marker reached (nil when it could not be published).
    private func publishMarker(_ token: String, on channel: String) -> Int? {
        do {
            let connection = try RedisConnection(url: configuration.url, timeout: configuration.timeout)
            let socket = SubscriptionSocket(connection: connection, maxBulk: 1024)
            let deadline = Monotonic.seconds() + configuration.timeout
            if let password = configuration.url.password {
                try socket.send(["AUTH", password].map { Array($0.utf8) })
                _ = try socket.read(deadline: deadline, waitingFor: "AUTH")
            }
            try socket.send(["PUBLISH", channel, token].map { Array($0.utf8) })
            let replies = try socket.read(deadline: deadline, waitingFor: "PUBLISH")
            withExtendedLifetime(connection) {}
            if case .integer(let receivers) = replies.last { return receivers }
            return nil
        } catch {
            logger.warning("cannot publish the redis splice marker", metadata: ["error": "\(error)"])
            return nil
        }
    }

    private func run() {
        var delay = 0.1
        var everSubscribed = false
        var lastLogged: RedisState?
        var lastError: String?
        while !isStopped {
            record(.connecting)
            do {
                let connection = try RedisConnection(url: configuration.url, timeout: configuration.timeout)
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
                let socket = SubscriptionSocket(connection: connection, maxBulk: configuration.maxMessageSize)
                let early = try subscribe(socket)
                connection.clearTimeout()
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
                if isStopped { return }
                if case .awaiting(let token) = splice?.mode, let channel = splice?.channel {
                    awaitingSince = awaitingSince ?? Monotonic.seconds()
                    if let receivers = publishMarker(token, on: channel), receivers <= 1 {
                        // Nobody else holds the stream (the predecessor crashed, or a stale state): ours at once.
                        awaitingSince = nil
                        splice?.stopWaiting()
                        markLive()
                    }
                } else {
                    markLive()
                }
                deliver(early)
                if isHandedOff { return }
                try receiveOnEventLoop(socket)
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

    /// AUTH, SUBSCRIBE and PSUBSCRIBE, all within `timeout` of now. Returns the replies that arrived after the
    /// first confirmation (messages published meanwhile), to be delivered once the subscription counts as made.
    private func subscribe(_ socket: SubscriptionSocket) throws -> [RESPStream.Value] {
        let deadline = Monotonic.seconds() + configuration.timeout
        let address = configuration.url.description
        var replies: [RESPStream.Value] = []
        func next(_ command: String) throws -> RESPStream.Value {
            while replies.isEmpty { replies = try socket.read(deadline: deadline, waitingFor: command) }
            return replies.removeFirst()
        }
        if let password = configuration.url.password {
            try socket.send(["AUTH", password].map { Array($0.utf8) })
            if case .error(let message) = try next("AUTH") {
                throw RedisError(address: address, message: "AUTH failed: \(message); check the password")
            }
        }
        // The dynamic channels as they are now join the first SUBSCRIBE: after a reconnect (or in a new worker 0
        // after a crash or a reload) the whole set is rebuilt from the registry at once.
        subscribedDynamic = dynamicChannels?().subtracting(configuration.channels) ?? []
        lastSync = Monotonic.seconds()
        let channels = configuration.channels + subscribedDynamic.sorted() + (splice.map { [$0.channel] } ?? [])
        let commands = [("SUBSCRIBE", channels), ("PSUBSCRIBE", configuration.patterns)].filter { !$0.1.isEmpty }
        for (command, names) in commands { try socket.send([Array(command.utf8)] + names.map { Array($0.utf8) }) }
        // One confirmation per name, in order; a message may already follow the first one.
        var early: [RESPStream.Value] = []
        for (command, names) in commands {
            var confirmed = 0
            while confirmed < names.count {
                let reply = try next(command)
                if case .error(let message) = reply {
                    let hint = message.hasPrefix("NOAUTH") ? "; give the password (--redis-password-file)" : ""
                    throw RedisError(address: address, message: "\(command) failed: \(message)\(hint)")
                }
                if case .array(let parts) = reply, parts.first?.text == command.lowercased() {
                    confirmed += 1
                } else {
                    early.append(reply)
                }
            }
        }
        return early + replies
    }

    static let maxBatch = 1024

    /// New side of a splice: a marker that never came back ends the wait after `timeout`.
    func stopAwaitingIfOverdue() {
        guard let since = awaitingSince, Monotonic.seconds() - since > configuration.timeout else { return }
        awaitingSince = nil
        splice?.stopWaiting()
        markLive()
        logger.warning("redis splice marker did not come back; delivering without it (some messages may come twice)")
    }

    /// Subscribes to the dynamic channels that gained subscribers and unsubscribes from those that lost the last
    /// one. The confirmations come back among the messages, which ignore them; a message already under way on a
    /// channel just left still arrives and finds no subscriber.
    func syncDynamic(send: ([[UInt8]]) -> Void) {
        lastSync = Monotonic.seconds()
        guard let wanted = dynamicChannels?().subtracting(configuration.channels) else { return }
        let added = wanted.subtracting(subscribedDynamic).sorted()
        let removed = subscribedDynamic.subtracting(wanted).sorted()
        if !added.isEmpty { send([Array("SUBSCRIBE".utf8)] + added.map { Array($0.utf8) }) }
        if !removed.isEmpty { send([Array("UNSUBSCRIBE".utf8)] + removed.map { Array($0.utf8) }) }
        guard !added.isEmpty || !removed.isEmpty else { return }
        subscribedDynamic = wanted
        logger.debug("redis channel subscription changed", metadata: [
            "redis.subscribed": "\(added)", "redis.unsubscribed": "\(removed)", "redis.dynamic.count": "\(wanted.count)",
        ])
    }

    /// Hands the messages among `replies` on in batches of at most `maxBatch` (a burst read in one go becomes one
    /// write per WebSocket connection downstream), and counts and reports the oversized ones.
    func deliver(_ replies: [RESPStream.Value]) {
        var batch: [Message] = []
        func flush() {
            guard !batch.isEmpty else { return }
            registry?.redis(.messages).wrappingIncrement(by: UInt64(batch.count), ordering: .relaxed)
            registry?.redis(.bytes).wrappingIncrement(by: UInt64(batch.reduce(0) { $0 + $1.payload.count }), ordering: .relaxed)
            registry?.redis(.lastMessageAt).store(Clock.wallNanoseconds(), ordering: .relaxed)
            onMessages(batch)
            batch.removeAll(keepingCapacity: true)
        }
        for reply in replies {
            switch Self.event(from: reply) {
            case .message(let message):
                if splice != nil {
                    switch splice!.admit(message, successorAllowed: condition.withLock { successorAllowed }) {
                    case .deliver: break
                    case .drop:
                        if splice?.mode == .delivering && awaitingSince != nil {
                            awaitingSince = nil
                            held = []
                            heldSince = Monotonic.seconds()
                            logger.info("redis subscription spliced: this worker 0 delivers from the marker on")
                        }
                        continue
                    case .handOff:
                        flush()
                        onHandOff?(String(decoding: message.payload, as: UTF8.self))
                        condition.withLock {
                            handedOff = true
                            stopped = true
                        }
                        logger.notice("redis subscription handed to the new worker 0 at the splice marker")
                        return
                    }
                }
                if held != nil {
                    held!.append(message)
                    continue
                }
                batch.append(message)
                if batch.count == Self.maxBatch { flush() }
            case .oversized(let channel, let size):
                oversized(channel: channel, size: size)
            case nil:
                continue
            }
        }
        flush()
        releaseHeldIfDone()
    }

    /// Hands on what was held after our marker once the predecessor has handed on all it had before it.
    func releaseHeldIfDone() {
        guard let waiting = held, let token = splice?.token else { return }
        let done = registry?.redis(.spliceDone).load(ordering: .acquiring) == RedisSplice.fingerprint(token)
        guard done || Monotonic.seconds() - heldSince > Self.holdLimit else { return }
        if !done { logger.warning("the old worker 0 did not confirm the splice in time; delivering (order may differ)") }
        held = nil
        defer { markLive() }
        var offset = 0
        while offset < waiting.count {
            let batch = Array(waiting[offset..<min(offset + Self.maxBatch, waiting.count)])
            registry?.redis(.messages).wrappingIncrement(by: UInt64(batch.count), ordering: .relaxed)
            onMessages(batch)
            offset += batch.count
        }
    }

    private func oversized(channel: String, size: Int) {
        registry?.redis(.oversized).wrappingIncrement(ordering: .relaxed)
        oversizedSinceLog += 1
        let now = Monotonic.seconds()
        if let last = oversizedLoggedAt, now - last < 60 { return }
        logger.warning("redis message over --max-redis-message dropped", metadata: [
            "redis.channel": "\(channel)", "message.bytes": "\(size)", "limit.bytes": "\(configuration.maxMessageSize)",
            "dropped.since.last.log": "\(oversizedSinceLog)",
            "hint": "raise --max-redis-message to deliver messages this large (logged at most once a minute; counted in hive status)",
        ])
        oversizedLoggedAt = now
        oversizedSinceLog = 0
    }

    enum Event: Equatable {
        case message(Message)
        /// A message whose payload was over the limit and skipped.
        case oversized(channel: String, size: Int)
    }

    /// A published message (or the trace of an oversized one), or nil for confirmations and anything else.
    static func event(from reply: RESPStream.Value) -> Event? {
        guard case .array(let parts) = reply, let kind = parts.first?.text else { return nil }
        let channel: String
        let pattern: String?
        switch (kind, parts.count) {
        case ("message", 3): (channel, pattern) = (parts[1].text ?? "", nil)
        case ("pmessage", 4): (channel, pattern) = (parts[2].text ?? "", parts[1].text)
        default: return nil
        }
        switch parts[parts.count - 1] {
        case .string(let payload): return .message(Message(channel: channel, pattern: pattern, payload: payload))
        case .skipped(let size): return .oversized(channel: channel, size: size)
        default: return nil
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
