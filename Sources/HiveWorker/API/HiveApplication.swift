import HiveIPC
import HiveRedis

/// The connection a WebSocket hook is about.
public struct HiveConnection: Sendable, Hashable {
    public var id: ConnectionID
    /// The path the client upgraded on ("/", "/echo").
    public var path: String
    public var remote: RemoteAddress

    public init(id: ConnectionID, path: String, remote: RemoteAddress) {
        self.id = id
        self.path = path
        self.remote = remote
    }
}

/// What an application implements: Swoole's event callbacks (onWorkerStart, onOpen, onMessage, onRequest,
/// onClose, and the Redis subscription of the story), as one protocol whose every hook has a default.
///
/// **Threading and order.** Every hook of a worker runs on that worker's event loop (it is the task executor of
/// the hook's task), so a hook that never suspends runs straight through, with no thread hop and no lock. A hook
/// that awaits (a database, an HTTP service) suspends only itself: the worker goes on serving its other
/// connections meanwhile. The hooks of one connection run one at a time, in order: its requests (and their
/// responses leave in request order), then `open`, its messages, and `close` last. While a hook of a connection is
/// suspended, that connection is not read.
///
/// **Per-worker state.** `workerStart` may return a value of any type, `Context` (a cache, a pool, a room table):
/// every hook of that worker receives it through the variants with a `context:` parameter. It never leaves its
/// worker's event loop, so it needs no lock and need not be `Sendable`. The application value itself is shared by
/// every hook and must be immutable (`Sendable`).
///
/// Implement either variant of a hook; the one without `context` is simpler when there is no per-worker state.
public protocol HiveApplication: Sendable {
    /// What `workerStart` makes for its worker and every hook of that worker receives. `Void` by default.
    associatedtype Context = Void

    /// Redis channels worker 0 subscribes to when `start` names none with `--channel` (the command line wins).
    var redisChannels: [String] { get }
    /// Redis patterns (`PSUBSCRIBE`) worker 0 subscribes to when `start` names none with `--pattern`.
    var redisPatterns: [String] { get }

    /// The worker is ready to serve (Swoole's onWorkerStart): no connection is served before it returns.
    /// `hive.workerID` says which worker it is. Throwing stops the worker (the master starts it again, with
    /// back-off).
    func workerStart(_ hive: HiveServer) async throws -> Context
    /// The worker stops its worker-wide duties (Swoole's onWorkerStop): on stop, and on reload before its
    /// replacement starts. Connections may still be open and served after it.
    func workerStop(_ hive: HiveServer, context: Context) async
    func workerStop(_ hive: HiveServer) async
    /// Whether a WebSocket upgrade on this request path is accepted. Default: every path. Called on the event loop
    /// for every upgrade request: keep it quick.
    func shouldUpgrade(path: String) -> Bool
    /// A WebSocket connection is established (onOpen). Throwing closes it with 1011.
    func open(_ connection: HiveConnection, hive: HiveServer, context: Context) async throws
    func open(_ connection: HiveConnection, hive: HiveServer) async throws
    /// A complete WebSocket message arrived (onMessage). Throwing closes that connection with 1011.
    func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer, context: Context) async throws
    func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws
    /// A plain HTTP request (onRequest). Throwing answers 500 and logs the error with the connection id.
    func request(_ request: HiveRequest, hive: HiveServer, context: Context) async throws -> HiveResponse
    func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse
    /// A connection of either protocol ended (onClose), after its other hooks.
    func close(_ id: ConnectionID, hive: HiveServer, context: Context) async
    func close(_ id: ConnectionID, hive: HiveServer) async
    /// Messages from the Redis subscription, in publish order: one, or a burst that arrived together (worker 0
    /// only). Default: `broadcast` them, each as a text frame when its payload is valid UTF-8 and binary
    /// otherwise. Implement it to route instead.
    func redisMessages(_ messages: [RedisMessage], hive: HiveServer, context: Context) async
    func redisMessages(_ messages: [RedisMessage], hive: HiveServer) async
}

extension HiveApplication {
    public var redisChannels: [String] { [] }
    public var redisPatterns: [String] { [] }
    public func workerStop(_ hive: HiveServer, context: Context) async { await workerStop(hive) }
    public func workerStop(_ hive: HiveServer) async {}
    public func shouldUpgrade(path: String) -> Bool { true }
    public func open(_ connection: HiveConnection, hive: HiveServer, context: Context) async throws {
        try await open(connection, hive: hive)
    }
    public func open(_ connection: HiveConnection, hive: HiveServer) async throws {}
    public func message(
        _ message: HiveMessage, from connection: HiveConnection, hive: HiveServer, context: Context
    ) async throws {
        try await self.message(message, from: connection, hive: hive)
    }
    public func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws {}
    public func request(_ request: HiveRequest, hive: HiveServer, context: Context) async throws -> HiveResponse {
        try await self.request(request, hive: hive)
    }
    public func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse { .notFound }
    public func close(_ id: ConnectionID, hive: HiveServer, context: Context) async { await close(id, hive: hive) }
    public func close(_ id: ConnectionID, hive: HiveServer) async {}
    public func redisMessages(_ messages: [RedisMessage], hive: HiveServer, context: Context) async {
        await redisMessages(messages, hive: hive)
    }
    public func redisMessages(_ messages: [RedisMessage], hive: HiveServer) async {
        await hive.broadcast(messages.map { HiveMessage(redisPayload: $0.payload) })
    }
}

extension HiveApplication where Context == Void {
    public func workerStart(_ hive: HiveServer) async throws {}
}

extension HiveMessage {
    /// Text when the bytes are valid UTF-8, binary otherwise: how a Redis payload becomes a WebSocket message.
    public init(redisPayload payload: [UInt8]) {
        if let text = String(validating: payload, as: UTF8.self) {
            self = .text(text)
        } else {
            self = .binary(payload)
        }
    }
}
