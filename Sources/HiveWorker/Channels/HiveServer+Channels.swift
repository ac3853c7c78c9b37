import HiveIPC
import HiveRedis
import NIOCore
import NIOWebSocket

/// How worker 0 routes Redis messages by default: the `--channel`/`--pattern` subscriptions broadcast to everyone
/// (as before channels existed); a message on Redis channel `<prefix>NAME` of a dynamic subscription goes to the
/// subscribers of Hive channel `NAME` only.
package struct RedisRouting: Sendable {
    package var broadcastChannels: Set<String> = []
    package var prefix = ""

    package init(broadcastChannels: Set<String> = [], prefix: String = "") {
        self.broadcastChannels = broadcastChannels
        self.prefix = prefix
    }

    /// The Hive channel a Redis message is for, or nil when it is to be broadcast.
    package func hiveChannel(of message: RedisMessage) -> String? {
        guard message.pattern == nil, !broadcastChannels.contains(message.channel),
            message.channel.hasPrefix(prefix)
        else { return nil }
        let name = String(message.channel.dropFirst(prefix.count))
        return ChannelName.problem(name) == nil ? name : nil
    }
}

// Channels: subscribe a WebSocket connection to named channels, and deliver a message to a channel's subscribers
// on every worker of this host (worker 0's Redis subscription follows the registry's channel table, so a message
// published to Redis reaches them on every host).
extension HiveServer {
    /// Subscribes a WebSocket connection to a channel, whichever worker holds it. Subscribing twice is harmless.
    /// - Throws: `HiveError` with code `.invalidArgument` for a bad name (1 to 64 letters, digits or `_ - . : @ /`),
    ///   `.unknownConnection`, `.notWebSocket`, `.channelLimit` when the connection is in 32 channels already or the
    ///   channel table is full, `.forbidden` when the connection's token (`--jwt-secret`, `--jwt-public-key`)
    ///   does not allow the channel, `.workerBusy` when the owner's inbox is full. For a connection of another
    ///   worker, the limits and the token are checked by that worker, which logs a refusal.
    public func subscribe(_ id: ConnectionID, to channel: String) async throws {
        try await changeSubscription(id, channel, subscribe: true)
    }

    /// Unsubscribes a connection from a channel (nothing happens when it was not subscribed).
    /// - Throws: as `subscribe`, but never `.channelLimit`.
    public func unsubscribe(_ id: ConnectionID, from channel: String) async throws {
        try await changeSubscription(id, channel, subscribe: false)
    }

    /// The channels a connection of this worker is subscribed to (empty for one of another worker, or none).
    public func channels(of id: ConnectionID) async -> [String] {
        if eventLoop.inEventLoop { return channelIndex.channels(of: id) }
        return (try? await eventLoop.submit { self.channelIndex.channels(of: id) }.get()) ?? []
    }

    /// Sends messages, in order, to every subscriber of `channel` on every worker of this host: the frames are
    /// encoded once, and one record goes to each other worker that counts subscribers of it (none to the others).
    /// - Throws: `HiveError.invalidArgument` for a bad channel name.
    public func deliver(_ messages: [HiveMessage], toChannel channel: String) async throws {
        if let problem = ChannelName.problem(channel) { throw HiveError.invalidChannel(problem) }
        deliverNow(messages.map { ChannelEntry(message: $0, position: nil) }, toChannel: channel)
    }

    /// What the default `redisMessages` hook does: messages on the `--channel`/`--pattern` subscriptions are
    /// broadcast, messages on a channel's Redis channel (`<--channel-prefix>NAME`) go to the subscribers of `NAME`;
    /// in publish order. A message the history script published carries its position (``publish(channel:_:)``),
    /// which subscribers that asked for envelopes receive with it.
    public func deliver(redisMessages messages: [RedisMessage]) async {
        var run: [ChannelEntry] = []
        var runChannel: String?? = .none  // .none: no run yet; .some(nil): broadcast
        func flush() {
            guard let target = runChannel, !run.isEmpty else { return }
            if let channel = target { deliverNow(run, toChannel: channel) } else { broadcastNow(run.map(HiveMessage.init), fromApplication: false) }
            run.removeAll()
        }
        for message in messages {
            let target = redisRouting.hiveChannel(of: message)
            if case .some(let current) = runChannel, current != target { flush() }
            runChannel = .some(target)
            run.append(target == nil ? ChannelEntry(redisPayload: message.payload, position: nil) : ChannelEntry(subscribed: message.payload))
        }
        flush()
    }

    /// `deliver(_:toChannel:)` for a valid name, from code that is not async.
    func deliverNow(_ entries: [ChannelEntry], toChannel channel: String) {
        guard !entries.isEmpty else { return }
        let workers = registry.workersSubscribed(to: SharedRegistry.ChannelKey(channel))
        guard !workers.isEmpty else { return }
        let others = workers.filter { $0 != workerID }
        if !others.isEmpty {
            let record = IPCMessage.channelMessage(
                channel: channel, entries: ChannelEntryCodec.encode(entries), messages: entries.count
            )
            if !outbox.send(record, to: others) {
                registry.worker(workerID, .pushesFailed).wrappingIncrement(by: UInt64(others.count), ordering: .relaxed)
            }
        }
        guard workers.contains(workerID) else { return }
        onLoop {
            self.deliverHere(toChannel: channel, entries: entries, flush: false)
            self.deferFlush()
        }
    }

    private func changeSubscription(_ id: ConnectionID, _ channel: String, subscribe: Bool) async throws {
        if let problem = ChannelName.problem(channel) { throw HiveError.invalidChannel(problem, connection: id) }
        guard let state = registry.protocolState(of: id) else { throw HiveError.unknownConnection(id) }
        guard state == .websocket else { throw HiveError.notWebSocket(id, state) }
        if id.worker != workerID {
            if !outbox.send(.subscription(id, channel: channel, subscribe: subscribe), to: id.worker) {
                throw HiveError.workerBusy(id, worker: id.worker)
            }
            return
        }
        if eventLoop.inEventLoop {
            try changeSubscriptionHere(id, channel, subscribe: subscribe)
        } else {
            try await eventLoop.submit { try self.changeSubscriptionHere(id, channel, subscribe: subscribe) }.get()
        }
    }

    /// On the event loop, for a connection of this worker.
    func changeSubscriptionHere(_ id: ConnectionID, _ channel: String, subscribe: Bool) throws(HiveError) {
        eventLoop.preconditionInEventLoop()
        guard subscribe else {
            channelIndex.unsubscribe(id, from: channel)
            return
        }
        guard let session = table.sessions[id] else { throw HiveError.unknownConnection(id) }
        // With a token key configured every session has a token (Tokens/HandshakeToken.swift); nil: anonymous.
        if let token = session.connection.token, !token.allows(channel: channel) {
            throw HiveError.forbiddenChannel(id, channel: channel, subject: token.subject, allowed: token.allowedDescription)
        }
        do {
            try channelIndex.subscribe(session, to: channel)
        } catch {
            switch error {
            case .perConnectionLimit: throw HiveError.tooManyChannels(id, channel: channel)
            case .tableFull(let full): throw HiveError.channelTableFull(id, channel: channel, capacity: full.capacity)
            }
        }
    }

    /// A `subscription` record from another worker: the caller has returned already, so a refusal is logged here.
    func applySubscriptionRecord(_ id: ConnectionID, _ channel: String, subscribe: Bool) {
        do {
            try changeSubscriptionHere(id, channel, subscribe: subscribe)
        } catch {
            logger.warning("subscription from another worker refused", metadata: [
                "connection.id": "\(id)", "channel": "\(channel)", "error": "\(error)",
            ])
        }
    }

    /// The connection ended: it leaves its channels (before its close hook, which may wait).
    func leaveChannels(_ id: ConnectionID) {
        channelIndex.leaveAll(id)
    }
}
