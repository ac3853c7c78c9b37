import HiveIPC
import HiveRedis

/// The connection a WebSocket hook is about: ``HiveApplication/open(_:hive:context:)`` and
/// ``HiveApplication/message(_:from:hive:context:)`` receive it.
public struct HiveConnection: Sendable, Hashable {
    /// Its id: what `push`, `disconnect` and `close` name it by, from any worker.
    public var id: ConnectionID
    /// The path the client upgraded on ("/", "/echo"), without the query.
    public var path: String
    /// The peer the master accepted it from.
    public var remote: RemoteAddress
    /// The user it is bound to (``HiveServer/bind(_:user:)``, or a token's subject), nil when none: as of the
    /// hook's start (a bind shows in the hooks that start after it).
    public var user: String?
    /// The verified claims of the JWT it connected with (`sub`: the user, `channels`), nil when no token key is
    /// configured (`hive start --jwt-secret` / `--jwt-public-key`): then connections are anonymous.
    public var token: HiveToken?

    /// A connection as the worker describes it to the hooks (tests of an application's hooks make their own).
    public init(id: ConnectionID, path: String, remote: RemoteAddress, user: String? = nil) {
        self.id = id
        self.path = path
        self.remote = remote
        self.user = user
    }
}

/// What an application implements: Swoole's event callbacks (onWorkerStart, onOpen, onMessage, onRequest,
/// onClose, and the Redis subscription of the story), as one protocol whose every hook has a default.
///
/// Give a value of it to `HiveMain.run(_:)` in the executable's `main.swift`; every worker process (spawned from
/// that same executable) runs its own copy.
///
/// **Threading and order.** Every hook of a worker runs on that worker's event loop (in a worker, the loop is
/// Swift's global executor: `Task {}` and `Task.detached` run there too, so never block in them), so a hook that
/// never suspends runs straight through, with no thread hop and no lock. A hook
/// that awaits (a database, an HTTP service) suspends only itself: the worker goes on serving its other
/// connections meanwhile. The hooks of one connection run one at a time, in order: its requests (and their
/// responses leave in request order), then `open`, its messages, and `close` last. While a hook of a connection is
/// suspended, that connection is not read.
///
/// **Answering at once.** An HTTP request that needs no `await` is cheapest answered by
/// ``respondNow(to:hive:context:)``, which is not async: its response is written right away, without the task
/// switch of the async `request` hook. Return nil from it for the requests that must await, and answer those in
/// `request`.
///
/// **Per-worker state.** `workerStart` may return a value of any type, `Context` (a cache, a pool, a room table):
/// every hook of that worker receives it through the variants with a `context:` parameter. It never leaves its
/// worker's event loop, so it needs no lock and need not be `Sendable`. The application value itself is shared by
/// every hook and must be immutable (`Sendable`).
///
/// Implement either variant of a hook; the one without `context` is simpler when there is no per-worker state.
/// If you implement both, the worker calls the one with `context`.
///
/// **Errors.** A hook that throws never takes the worker down: `open` and `message` close that connection with
/// 1011, `request` and `respondNow` answer 500, and the error is logged with the connection id. `workerStart`
/// throwing stops the worker (restarted by the master with back-off).
///
/// **No main actor.** A worker's main thread waits for signals and never runs the main actor's queue: code
/// isolated to `@MainActor` that a hook awaits never runs. Keep hooks and what they call off the main actor.
public protocol HiveApplication: Sendable {
    /// What `workerStart` makes for its worker and every hook of that worker receives. `Void` by default.
    associatedtype Context = Void

    /// Redis channels worker 0 subscribes to when `start` names no `--channel` and no `--pattern` (the command
    /// line wins, whole). Default: none; with no channel and no pattern from either place, worker 0 subscribes to
    /// the channel `test`. Read once per worker start; `--redis none` turns the subscription off.
    var redisChannels: [String] { get }
    /// Redis patterns (`PSUBSCRIBE`) worker 0 subscribes to when `start` names no `--channel` and no `--pattern`.
    /// Default: none.
    var redisPatterns: [String] { get }

    /// The worker is ready to serve (Swoole's onWorkerStart): no connection is served before it returns, so the
    /// context it returns is there for every other hook. `hive.workerID` says which worker it is. Runs in every
    /// worker process, again in each replacement after a reload or a crash. Throwing stops the worker (the master
    /// starts it again, with back-off). Default (when `Context` is `Void`): nothing.
    func workerStart(_ hive: HiveServer) async throws -> Context
    /// The worker stops its worker-wide duties (Swoole's onWorkerStop): on stop, and on reload before its
    /// replacement starts. Connections may still be open and served after it (a stop closes them during its
    /// grace period, a reload hands them over). Not called when `workerStart` threw. Default: calls
    /// ``workerStop(_:)``.
    func workerStop(_ hive: HiveServer, context: Context) async
    /// ``workerStop(_:context:)`` for an application without per-worker state. Default: nothing.
    func workerStop(_ hive: HiveServer) async
    /// Whether a WebSocket upgrade on this request path (without the query) is accepted; a refused one is served
    /// as a plain HTTP request. Default: every path. Called on the event loop for every upgrade request, and not
    /// async: keep it quick.
    func shouldUpgrade(path: String) -> Bool
    /// A WebSocket connection is established (onOpen): it can receive pushes from now on. Its messages wait until
    /// this returns. Throwing closes it with 1011. Default: calls ``open(_:hive:)``.
    func open(_ connection: HiveConnection, hive: HiveServer, context: Context) async throws
    /// ``open(_:hive:context:)`` for an application without per-worker state. Default: nothing.
    func open(_ connection: HiveConnection, hive: HiveServer) async throws
    /// A complete WebSocket message arrived (onMessage): fragments are joined, text is valid UTF-8, and it is at
    /// most `--max-message-size` bytes. The connection's next message waits until this returns. Throwing closes
    /// that connection with 1011. Default: calls ``message(_:from:hive:)``.
    func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer, context: Context) async throws
    /// ``message(_:from:hive:context:)`` for an application without per-worker state. Default: ignores the message.
    func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws
    /// A plain HTTP request, body complete (onRequest). Pipelined requests of one connection are answered in
    /// order, one hook at a time. Throwing answers 500 and logs the error with the connection id. Default: calls
    /// ``request(_:hive:)``.
    func request(_ request: HiveRequest, hive: HiveServer, context: Context) async throws -> HiveResponse
    /// ``request(_:hive:context:)`` for an application without per-worker state. Default: 404 (`.notFound`).
    func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse
    /// A plain HTTP request answered synchronously, on the event loop, before ``request(_:hive:context:)``
    /// (Swoole's onRequest that does not yield): a response is written at once, with no task switch; nil leaves the
    /// request to the async `request` hook. Called for every request, in order: also for a request that waited
    /// behind a suspended `request` hook of its connection (then when its turn comes). Must not block or wait: it
    /// holds up every connection of the worker. Throwing answers 500 and logs the error, as `request` does.
    /// Default: calls ``respondNow(to:hive:)``.
    func respondNow(to request: HiveRequest, hive: HiveServer, context: Context) throws -> HiveResponse?
    /// ``respondNow(to:hive:context:)`` for an application without per-worker state. Default: nil (every request
    /// goes to the async `request` hook).
    func respondNow(to request: HiveRequest, hive: HiveServer) throws -> HiveResponse?
    /// A connection of either protocol ended (onClose), after its other hooks: the last hook of that connection,
    /// called once. Pushing to `id` fails from now on. Default: calls ``close(_:hive:)``.
    func close(_ id: ConnectionID, hive: HiveServer, context: Context) async
    /// ``close(_:hive:context:)`` for an application without per-worker state. Default: nothing.
    func close(_ id: ConnectionID, hive: HiveServer) async
    /// Messages from the Redis subscription, in publish order: one, or a burst that arrived together (worker 0
    /// only; the next burst waits until this returns). Default: calls ``redisMessages(_:hive:)``.
    func redisMessages(_ messages: [RedisMessage], hive: HiveServer, context: Context) async
    /// ``redisMessages(_:hive:context:)`` for an application without per-worker state. Default:
    /// `hive.deliver(redisMessages:)`: the `--channel` and `--pattern` subscriptions are broadcast, a message on a
    /// channel's Redis channel (`<--channel-prefix>NAME`) goes to the subscribers of `NAME`; each as a text frame
    /// when its payload is valid UTF-8 and binary otherwise. Implement it to route otherwise.
    func redisMessages(_ messages: [RedisMessage], hive: HiveServer) async
}

extension HiveApplication {
    /// No channels declared: the command line's `--channel` options, or the channel `test`.
    public var redisChannels: [String] { [] }
    /// No patterns declared.
    public var redisPatterns: [String] { [] }
    /// Calls ``workerStop(_:)``.
    public func workerStop(_ hive: HiveServer, context: Context) async { await workerStop(hive) }
    /// Does nothing.
    public func workerStop(_ hive: HiveServer) async {}
    /// Accepts an upgrade on every path.
    public func shouldUpgrade(path: String) -> Bool { true }
    /// Calls ``open(_:hive:)``.
    @inline(__always)  // into the witness: one async frame fewer per hook
    public func open(_ connection: HiveConnection, hive: HiveServer, context: Context) async throws {
        try await open(connection, hive: hive)
    }
    /// Does nothing.
    public func open(_ connection: HiveConnection, hive: HiveServer) async throws {}
    /// Calls ``message(_:from:hive:)``.
    @inline(__always)  // into the witness: one async frame fewer per hook
    public func message(
        _ message: HiveMessage, from connection: HiveConnection, hive: HiveServer, context: Context
    ) async throws {
        try await self.message(message, from: connection, hive: hive)
    }
    /// Ignores the message.
    public func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws {}
    /// Calls ``request(_:hive:)``.
    @inline(__always)  // into the witness: one async frame fewer per hook
    public func request(_ request: HiveRequest, hive: HiveServer, context: Context) async throws -> HiveResponse {
        try await self.request(request, hive: hive)
    }
    /// Answers 404 (``HiveResponse/notFound``).
    public func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse { .notFound }
    /// Calls ``respondNow(to:hive:)``.
    @inline(__always)  // into the witness: one call fewer per request
    public func respondNow(to request: HiveRequest, hive: HiveServer, context: Context) throws -> HiveResponse? {
        try respondNow(to: request, hive: hive)
    }
    /// Answers nothing: the async ``request(_:hive:)`` hook answers.
    public func respondNow(to request: HiveRequest, hive: HiveServer) throws -> HiveResponse? { nil }
    /// Calls ``close(_:hive:)``.
    @inline(__always)  // into the witness: one async frame fewer per hook
    public func close(_ id: ConnectionID, hive: HiveServer, context: Context) async { await close(id, hive: hive) }
    /// Does nothing.
    public func close(_ id: ConnectionID, hive: HiveServer) async {}
    /// Calls ``redisMessages(_:hive:)``.
    @inline(__always)  // into the witness: one async frame fewer per hook
    public func redisMessages(_ messages: [RedisMessage], hive: HiveServer, context: Context) async {
        await redisMessages(messages, hive: hive)
    }
    /// Broadcasts the messages, in order, to every established WebSocket of every worker: text frames for
    /// payloads that are valid UTF-8, binary frames for the others (``HiveMessage/init(redisPayload:)``).
    public func redisMessages(_ messages: [RedisMessage], hive: HiveServer) async {
        await hive.deliver(redisMessages: messages)
    }
}

extension HiveApplication where Context == Void {
    /// Does nothing: an application without per-worker state needs no `workerStart`.
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
