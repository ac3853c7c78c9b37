import HiveIPC
import HiveRedis

/// The connection a WebSocket hook is about.
public struct HiveConnection: Sendable, Hashable {
    public var id: ConnectionID
    /// The path the client upgraded on ("/", "/echo").
    public var path: String
    public var remote: RemoteAddress
}

/// What an application implements: Swoole's event callbacks (onWorkerStart, onOpen, onMessage, onRequest,
/// onClose), as one protocol with defaults. Every hook of a worker runs on that worker's event loop, one at a
/// time, so an application needs no locks for state it keeps per worker.
public protocol HiveApplication: Sendable {
    /// The worker is ready to serve (Swoole's onWorkerStart). `hive.workerID` says which one: start work that
    /// only one worker should do (a Redis subscription, say) when it is 0.
    func workerStart(_ hive: HiveServer)
    /// The worker stops its worker-wide duties (Swoole's onWorkerStop): on stop, and on reload before its
    /// replacement starts, so a duty held by one worker (a Redis subscription) is never held twice. Connections may
    /// still be open and served after it.
    func workerStop(_ hive: HiveServer)
    /// Whether a WebSocket upgrade on this request path is accepted. Default: every path.
    func shouldUpgrade(path: String) -> Bool
    /// A WebSocket connection is established (onOpen).
    func open(_ connection: HiveConnection, hive: HiveServer)
    /// A complete WebSocket message arrived (onMessage). Throwing closes that connection with 1011.
    func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) throws
    /// A plain HTTP request (onRequest). Throwing answers 500 and logs the error with the connection id.
    func request(_ request: HiveRequest, hive: HiveServer) throws -> HiveResponse
    /// A connection of either protocol ended (onClose).
    func close(_ id: ConnectionID, hive: HiveServer)
    /// Messages from the Redis subscription, in publish order: one, or a burst that arrived together (worker 0
    /// only, on its event loop). Default: `broadcast` them, each as a text frame when its payload is valid UTF-8 and
    /// binary otherwise. Implement it to route instead.
    func redisMessages(_ messages: [RedisSubscriber.Message], hive: HiveServer)
}

extension HiveApplication {
    public func workerStart(_ hive: HiveServer) {}
    public func workerStop(_ hive: HiveServer) {}
    public func shouldUpgrade(path: String) -> Bool { true }
    public func open(_ connection: HiveConnection, hive: HiveServer) {}
    public func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) throws {}
    public func request(_ request: HiveRequest, hive: HiveServer) throws -> HiveResponse { .notFound }
    public func close(_ id: ConnectionID, hive: HiveServer) {}
    public func redisMessages(_ messages: [RedisSubscriber.Message], hive: HiveServer) {
        hive.broadcast(messages.map { HiveMessage(redisPayload: $0.payload) })
    }
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
