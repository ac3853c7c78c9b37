import Atomics
import CHiveShims
import HiveIPC
import HiveRedis
import Logging
import NIOCore

/// The server as an application sees it from inside one worker: Swoole's `$server` (push, broadcast, exists,
/// isEstablished, getClientInfo, connections, disconnect). Safe to call from any thread; the work happens on this
/// worker's event loop, or on the owning worker's for connections it does not hold.
///
/// Every hook receives it as `hive`; there is one per worker process. A connection id reaches its connection from
/// any worker: the id names the worker that holds the socket, and a push to another worker's connection goes
/// straight to that worker's inbox (not through the master).
///
/// What a call sees of other connections comes from the shared registry, read without locks: a connection may
/// close between `exists(_:)` and `push(_:_:)`, so handle the `HiveError` rather than checking first.
public final class HiveServer: @unchecked Sendable {
    // @unchecked: immutable after init except `table`, which is only touched on `eventLoop` (every mutation goes
    // through `onLoop`), and the registry, whose words are atomics with one writer each.
    /// Which worker this is: 0 ..< ``workerCount``. Worker 0 alone holds the Redis subscription.
    public let workerID: Int
    /// The worker's one event loop: every hook runs on it. For timers and NIO work an application does itself;
    /// never block it (a blocked loop serves none of the worker's connections).
    public let eventLoop: EventLoop
    /// The worker's logger (`--log-level`, `--log-format`, `--log-file`), with `worker.id` and `pid` metadata.
    public let logger: Logger
    /// The shared registry, for reading (`connections`, `connectionInfo` are the usual way in).
    package let registry: SharedRegistry
    let limits: ConnectionLimits
    /// `limits.allowedOrigins`, ready for the WebSocket handshake.
    let originPolicy: OriginPolicy
    /// The application's hooks, with the context of this worker.
    let hooks: any ApplicationHooks
    /// The event loop as the hooks' task executor.
    let executor: EventLoopTaskExecutor
    let table = ConnectionTable()
    /// Channel → this worker's subscribers, and back. Event loop only.
    let channelIndex: ChannelIndex
    /// User → this worker's connections bound to it, and back. Event loop only.
    let userIndex = UserIndex()
    /// Which Redis channels broadcast and which map to Hive channels (worker 0, set before its loop starts).
    package var redisRouting = RedisRouting()
    var outbox: PeerOutbox!
    /// PUBLISH to Redis for `publish(channel:_:)`; nil without Redis. Set before the worker serves.
    var publisher: RedisPublisher?
    /// The key of `POST /api/publish` (--api-key); nil: the API answers 403. Set before the worker serves.
    var publishAPIKey: APIKey?
    /// How much history channels keep (`--history-size`, `--history-ttl`, `--history`); nil: none. Set before
    /// the worker serves.
    var history: ChannelHistory.Rules?
    /// Reads history for recovering clients (`since=`), on its own thread; nil without Redis. Set before serving.
    var historyReader: HistoryReader?
    /// Checks the JWT of every WebSocket handshake (`--jwt-secret`, `--jwt-public-key`); nil: connections are
    /// anonymous. Set before the worker serves.
    package var tokens: TokenVerifier?
    /// During this process's first seconds: what a connection handed over by a retired process of this worker id
    /// must still get (`HandOverLog`). Event loop only.
    var handOverLog: HandOverLog?
    /// Set at `retire` (a reload): this worker id's inbox is the replacement's now, and an application's broadcast
    /// goes there instead of to this process's connections (`broadcastNow`).
    let retired = ManagedAtomic<Bool>(false)
    /// Pings every WebSocket of this worker (nil when --ping-interval is 0). Event loop only.
    private var keepAlive: KeepAliveSweep?
    /// The slow-consumer grace timers of the connections over --max-output-buffer now (`ConnectionRecord`). Event
    /// loop only.
    var graceTimers: [ConnectionID: Scheduled<Void>] = [:]

    init(workerID: Int, eventLoop: EventLoop, registry: SharedRegistry, limits: ConnectionLimits,
         application: some HiveApplication, logger: Logger) {
        self.workerID = workerID
        self.eventLoop = eventLoop
        self.registry = registry
        self.limits = limits
        self.originPolicy = OriginPolicy(allowed: limits.allowedOrigins)
        self.hooks = ApplicationRunner(application)
        self.executor = EventLoopTaskExecutor(eventLoop: eventLoop)
        self.channelIndex = ChannelIndex(registry: registry, workerID: workerID)
        self.logger = logger
        self.sharedWebSocketLimits = SharedWebSocketLimits(WebSocketLimits(
            maxMessageSize: limits.maxMessageSize, pingInterval: limits.pingInterval, pongTimeout: limits.pongTimeout))
    }

    /// The limits of every WebSocket connection of this worker, one copy for all their frame handlers.
    let sharedWebSocketLimits: SharedWebSocketLimits
    var webSocketLimits: WebSocketLimits { sharedWebSocketLimits.limits }

    /// Starts the worker-wide sweep of the WebSocket connections: keep-alive, and the publication of each
    /// session's send counters (`WebSocketSession.publishCounters`), at least once a second even when pings are
    /// off. Call on the event loop, once.
    func startKeepAlive() {
        let pings = KeepAliveSweep.period(for: webSocketLimits)
        let table = self.table
        let sweep = KeepAliveSweep(eventLoop: eventLoop) { now in table.sweepSessions(now: pings == nil ? nil : now) }
        sweep.start(period: pings ?? .seconds(1))
        keepAlive = sweep
    }

    /// Whether a release of freed memory is scheduled. Event loop only.
    private var memoryReleaseScheduled = false

    /// A slow consumer was closed: once its buffers are gone (its close frame has at most 2 s to leave), gives the
    /// heap they took back to the kernel. glibc keeps freed memory in its arenas otherwise, so a worker that met
    /// a flood would keep the flood's peak as its RSS. Rare by nature, and at most once per 3 s.
    func releaseMemorySoon() {
        eventLoop.preconditionInEventLoop()
        guard !memoryReleaseScheduled else { return }
        memoryReleaseScheduled = true
        eventLoop.scheduleTask(in: .seconds(3)) {
            self.memoryReleaseScheduled = false
            _ = CHiveShims_releaseFreeMemory()
        }
    }

    /// Messages of one WebSocket that may wait behind its suspended hook before its reads are held.
    static let messagesBeforeHold: Int32 = 16

    /// How many workers this Hive runs (`--workers`).
    public var workerCount: Int { registry.workerCount }

    /// Sends a message to one connection, whichever worker holds it (Swoole's `push`). Returns once the message is
    /// queued for the client, not when the client has it; the messages this worker sends to one connection arrive
    /// in the order they were sent.
    /// - Throws: a ``/HiveIPC/HiveError`` whose code is `unknownConnection` when no such connection is open,
    ///   `notWebSocket` when it is not an established WebSocket (a plain HTTP keep-alive connection, say: the
    ///   browser's `/favicon.ico` connection), `workerBusy` when the owner's inbox is full (the message is dropped).
    ///   Nothing is logged: the caller decides.
    public func push(_ id: ConnectionID, _ message: HiveMessage) async throws {
        guard let state = registry.protocolState(of: id) else {
            registry.worker(workerID, .pushesFailed).wrappingIncrement(ordering: .relaxed)
            throw HiveError.unknownConnection(id)
        }
        guard state == .websocket else {
            registry.worker(workerID, .pushesFailed).wrappingIncrement(ordering: .relaxed)
            throw HiveError.notWebSocket(id, state)
        }
        let record = IPCMessage.push(id, opcode: message.opcode, payload: message.bytes)
        if id.worker == workerID {
            // Flushed after the deliveries already queued, like a broadcast: the replies of a hook to one read
            // batch leave in one write, and a client that floods an echo and never reads costs bytes, not writes.
            onLoop { self.deliver([record]) }
        } else if !outbox.send(record, to: id.worker) {
            registry.worker(workerID, .pushesFailed).wrappingIncrement(ordering: .relaxed)
            throw HiveError.workerBusy(id, worker: id.worker)
        }
    }

    /// Sends a message to every established WebSocket connection of every worker; plain HTTP connections never
    /// receive it. Never fails: it only reaches WebSocket connections, by construction. A worker whose inbox stays
    /// full misses it (counted as a failed push in `hive status`).
    public func broadcast(_ message: HiveMessage) async {
        broadcastNow([message])
    }

    /// Sends messages, in order, to every established WebSocket connection of every worker. The frames are encoded
    /// once, here; one record goes to each other worker that has WebSocket clients, and each worker writes the
    /// same buffer to every connection it holds, with one flush per connection for the whole batch.
    public func broadcast(_ messages: [HiveMessage]) async {
        broadcastNow(messages)
    }

    /// `broadcast`, from code that is not async.
    ///
    /// - Parameter fromApplication: A broadcast an application makes (not the Redis subscription's). In a retired
    ///   process (a reload) it goes to the replacement through this worker id's inbox, not to the connections
    ///   still here: the replacement delivers it to its own connections, those already handed over included, and
    ///   logs it (`HandOverLog`), so each connection still here gets it once, when it is adopted. Delivered here
    ///   as well, it would reach those twice. (The Redis subscription's messages are split between the two
    ///   processes at the splice marker instead, `RedisSplice`.)
    func broadcastNow(_ messages: [HiveMessage], fromApplication: Bool = true) {
        guard !messages.isEmpty else { return }
        let start = Clock.monotonicNanoseconds()
        let frames = Self.encodeFrames(messages)
        let toReplacement = fromApplication && retired.load(ordering: .relaxed)
        let targets = (0..<registry.workerCount).filter { worker in
            (worker != workerID && registry.worker(worker, .webSocketConnections).load(ordering: .relaxed) > 0)
                || (worker == workerID && toReplacement)
        }
        if !targets.isEmpty {
            let record = IPCMessage.broadcast(frames: Array(frames.readableBytesView), messages: messages.count)
            if !outbox.send(record, to: targets) {
                registry.worker(workerID, .pushesFailed).wrappingIncrement(by: UInt64(targets.count), ordering: .relaxed)
            }
        }
        guard !toReplacement else { return }
        let count = messages.count
        onLoop { self.broadcastHere(frames, messages: count, startedAt: start, alone: true) }
    }

    /// Whether a connection with this id is open (any protocol): Swoole's `exist`. A snapshot: it may close right
    /// after.
    public func exists(_ id: ConnectionID) -> Bool { registry.protocolState(of: id) != nil }

    /// Whether the connection is an established WebSocket (Swoole's `isEstablished`).
    public func isEstablished(_ id: ConnectionID) -> Bool { registry.protocolState(of: id) == .websocket }

    /// What the registry knows about a connection (Swoole's `getClientInfo`): its worker, protocol state, peer
    /// address and counters; nil when no such connection is open. `bytesOut` and `framesOut` of a connection
    /// served by another worker are as of that worker's last publication of them, at most a second old.
    public func connectionInfo(_ id: ConnectionID) -> ConnectionSnapshot? {
        if eventLoop.inEventLoop { table.sessions[id]?.publishCounters() }  // exact for this worker's own
        return registry.lookup(id)
    }

    /// Every open connection of every worker (any protocol), read from the shared registry, in slot order. A lazy
    /// walk over the whole table (`--max-connections` slots): filter it, do not keep it. Other workers'
    /// connections show `bytesOut` and `framesOut` as of their worker's last publication (at most a second old).
    public var connections: some Sequence<ConnectionSnapshot> {
        if eventLoop.inEventLoop { table.publishCounters() }  // exact for this worker's own
        return registry.connections
    }

    /// Closes a connection on whichever worker holds it: a WebSocket gets a close frame with `code` and `reason`, a
    /// plain HTTP connection is closed. Returns once the close is queued; the connection's `close` hook follows.
    /// - Throws: a ``/HiveIPC/HiveError`` whose code is `unknownConnection` when no such connection is open,
    ///   `workerBusy` when the owner's inbox is full.
    public func disconnect(_ id: ConnectionID, code: UInt16 = 1000, reason: String = "") async throws {
        guard registry.protocolState(of: id) != nil else { throw HiveError.unknownConnection(id) }
        let record = IPCMessage.disconnect(id, code: code, reason: reason)
        if id.worker == workerID {
            onLoop { self.deliver(record) }
        } else if !outbox.send(record, to: id.worker) {
            throw HiveError.workerBusy(id, worker: id.worker)
        }
    }

    func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }
}
