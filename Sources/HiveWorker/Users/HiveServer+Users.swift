import HiveIPC
import HiveRedis
import NIOCore

// Users: a WebSocket connection may be bound to a user id, and a message for that user reaches every connection
// bound to it, on every worker, and (through the reserved Redis channel `<--channel-prefix>__hive:user`) on every
// Hive host on the same Redis.
extension HiveServer {
    /// Binds a WebSocket connection to a user id, whichever worker holds it (a token's subject is bound this way
    /// at the handshake). A connection has one user: binding again replaces it; closing the connection unbinds it.
    /// The user shows in `hive connections`, ``connectionInfo(_:)`` and ``HiveConnection/user`` (for the hooks
    /// that run after the bind).
    /// - Throws: ``/HiveIPC/HiveError`` with code `.invalidArgument` for a bad user id (1 to 64 bytes of UTF-8
    ///   without control characters), `.unknownConnection`, `.notWebSocket`, `.workerBusy` when the owner's inbox
    ///   is full. For a connection of another worker, the call returns once the owner has been asked.
    public func bind(_ id: ConnectionID, user: String) async throws {
        if let problem = UserID.problem(user) { throw HiveError.invalidUser(problem, connection: id) }
        try await changeBinding(id, user: user)
    }

    /// Unbinds a connection from its user (nothing happens when it has none).
    /// - Throws: as ``bind(_:user:)``, but never `.invalidArgument`.
    public func unbind(_ id: ConnectionID) async throws {
        try await changeBinding(id, user: nil)
    }

    /// Sends a message to every WebSocket connection bound to `user`, on every worker and, when Redis is
    /// configured, on every Hive host on that Redis: it is published on the Redis channel
    /// `<--channel-prefix>__hive:user`, which worker 0 of each host subscribes to. Without Redis it goes to the
    /// user's connections on this host. A user with no connection anywhere is not an error: nothing is sent.
    /// - Throws: ``/HiveIPC/HiveError`` with code `.invalidArgument` for a bad user id or a message over
    ///   `--max-redis-message` (less 69 bytes of envelope), `.workerBusy` or `.redisUnavailable` as
    ///   ``publish(channel:_:)``.
    public func send(toUser user: String, _ message: HiveMessage) async throws {
        if let problem = UserID.problem(user) { throw HiveError.invalidUser(problem) }
        guard let publisher else {
            deliverNow([message], toUser: user)
            return
        }
        let envelope = UserEnvelope(user: user, opcode: message.opcode, payload: message.bytes)
        do {
            _ = try await publisher.publish(channel: UserEnvelope.channel(prefix: redisRouting.prefix), payload: envelope.encoded())
        } catch let error as RedisPublishError {
            throw HiveError(publishing: error)
        }
    }

    /// The user a connection of this worker is bound to (nil for none, or a connection of another worker: read
    /// ``connectionInfo(_:)`` for those).
    public func user(of id: ConnectionID) async -> String? {
        if eventLoop.inEventLoop { return userIndex.user(of: id) }
        return try? await eventLoop.submit { self.userIndex.user(of: id) }.get()
    }

    /// Binds a connection of this worker at once, on the event loop: the entry point for the handshake (a token's
    /// `sub`), where the connection is in `websocket-handshake` or `websocket`. Checks the id like `bind`.
    package func bindLocal(_ id: ConnectionID, user: String) throws(HiveError) {
        if let problem = UserID.problem(user) { throw HiveError.invalidUser(problem, connection: id) }
        guard let state = registry.protocolState(of: id) else { throw HiveError.unknownConnection(id) }
        guard state == .websocket || state == .websocketHandshake else { throw HiveError.notWebSocket(id, state) }
        try bindHere(id, user: user)
    }

    private func changeBinding(_ id: ConnectionID, user: String?) async throws {
        guard let state = registry.protocolState(of: id) else { throw HiveError.unknownConnection(id) }
        guard state == .websocket else { throw HiveError.notWebSocket(id, state) }
        if id.worker != workerID {
            if !outbox.send(.binding(id, user: user), to: id.worker) { throw HiveError.workerBusy(id, worker: id.worker) }
            return
        }
        if eventLoop.inEventLoop {
            try bindHere(id, user: user)
        } else {
            try await eventLoop.submit { try self.bindHere(id, user: user) }.get()
        }
    }

    /// On the event loop, for a connection of this worker; `user` already checked.
    func bindHere(_ id: ConnectionID, user: String?) throws(HiveError) {
        eventLoop.preconditionInEventLoop()
        guard table.channel(id) != nil, registry.protocolState(of: id) != nil else { throw HiveError.unknownConnection(id) }
        guard userIndex.bind(id, to: user) else { return }
        registry.setUser(user, of: id)
        table.sessions[id]?.connection.user = user
    }

    /// A `binding` record from another worker: the caller has returned already, so a refusal is logged here.
    func applyBindingRecord(_ id: ConnectionID, user: String?) {
        do {
            try bindHere(id, user: user)
        } catch {
            logger.warning("binding from another worker refused", metadata: [
                "connection.id": "\(id)", "error": "\(error)",
            ])
        }
    }

    /// The connection ends: unbound before its slot is freed (after that, the slot's next owner writes the
    /// record, and there must never be two writers).
    func unbindOnEnd(_ id: ConnectionID) {
        guard userIndex.bind(id, to: nil) else { return }
        registry.setUser(nil, of: id)
    }

    /// `send(toUser:_:)` on this host: the frames are encoded once; one record goes to each other worker with
    /// WebSocket clients (each looks the user up in its own index), and this worker delivers to its own.
    func deliverNow(_ messages: [HiveMessage], toUser user: String) {
        guard !messages.isEmpty else { return }
        let frames = Self.encodeFrames(messages)
        let others = (0..<registry.workerCount).filter { worker in
            worker != workerID && registry.worker(worker, .webSocketConnections).load(ordering: .relaxed) > 0
        }
        if !others.isEmpty {
            let record = IPCMessage.userMessage(user: user, frames: Array(frames.readableBytesView), messages: messages.count)
            if !outbox.send(record, to: others) {
                registry.worker(workerID, .pushesFailed).wrappingIncrement(by: UInt64(others.count), ordering: .relaxed)
            }
        }
        let count = messages.count
        onLoop {
            self.deliverHere(toUser: user, encodedFrames: frames, messages: count, flush: false)
            self.deferFlush()
        }
    }

    func deliverHere(toUser user: String, encodedFrames: ByteBuffer, messages: Int, flush: Bool) {
        var reached = 0
        for id in userIndex.connections(of: user) {
            if let session = table.sessions[id], session.send(encodedFrames: encodedFrames, messages: messages, flush: flush) {
                reached += 1
            }
        }
        registry.increment(worker: workerID, .messagesOut, by: UInt64(reached * messages))
    }

    /// Worker 0: messages read from the user channel, in publish order.
    func deliver(userEnvelopes messages: [RedisMessage]) {
        eventLoop.preconditionInEventLoop()
        for message in messages {
            switch UserEnvelope.parse(message.payload) {
            case .success(let envelope):
                let hiveMessage: HiveMessage = envelope.opcode == 0x1
                    ? .text(String(decoding: envelope.payload, as: UTF8.self)) : .binary(envelope.payload)
                deliverNow([hiveMessage], toUser: envelope.user)
            case .failure(let refusal):
                userIndex.refusedEnvelopes += 1
                let now = Clock.monotonicNanoseconds()
                if let last = userIndex.refusalLoggedAt, now &- last < 60_000_000_000 { continue }
                logger.warning("dropped a message on the Redis user channel: it is not a Hive user envelope", metadata: [
                    "redis.channel": "\(message.channel)", "reason": "\(refusal.reason)",
                    "dropped.since.last.warning": "\(userIndex.refusedEnvelopes)",
                    "hint": "publish user messages with send(toUser:) or hive push --user, not PUBLISH by hand",
                ])
                userIndex.refusedEnvelopes = 0
                userIndex.refusalLoggedAt = now
            }
        }
    }

    /// A `userPush` record (`hive push --user`, through the master): sent as the application's `send(toUser:)`
    /// would, so it goes through Redis when that is configured. The operator has their answer already.
    func applyUserPush(user: String, opcode: UInt8, payload: [UInt8]) {
        let message: HiveMessage = opcode == 0x1
            ? .text(String(decoding: payload, as: UTF8.self)) : .binary(payload)
        executor.run {
            do {
                try await self.send(toUser: user, message)
            } catch {
                self.logger.warning("hive push --user failed", metadata: ["user": "\(user)", "error": "\(error)"])
            }
        }
    }
}
