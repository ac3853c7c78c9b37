import HiveIPC
import HiveRedis

/// An application's hooks with its per-worker context bound: what the worker calls, whatever the application's
/// `Context` type is.
protocol ApplicationHooks: AnyObject, Sendable {
    var redisChannels: [String] { get }
    var redisPatterns: [String] { get }
    func workerStart(_ hive: HiveServer) async throws
    func workerStop(_ hive: HiveServer) async
    func shouldUpgrade(path: String) -> Bool
    func open(_ connection: HiveConnection, hive: HiveServer) async throws
    func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws
    func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse
    func respondNow(to request: HiveRequest, hive: HiveServer) throws -> HiveResponse?
    func close(_ id: ConnectionID, hive: HiveServer) async
    func redisMessages(_ messages: [RedisMessage], hive: HiveServer) async
}

/// Holds the application and the context its `workerStart` made, and passes the context to every hook.
final class ApplicationRunner<Application: HiveApplication>: ApplicationHooks, @unchecked Sendable {
    // @unchecked: `context` is written once, by `workerStart` on the event loop, before any connection is served,
    // and only read after that, on the event loop: every hook runs there (HookQueue, EventLoopTaskExecutor).
    let application: Application
    /// The context `workerStart` returned (once `hasContext`), in memory of its own: an `Application.Context?`
    /// makes this generic code look the optional's type metadata up at every hook (about 400 instructions per
    /// message).
    private let context = UnsafeMutablePointer<Application.Context>.allocate(capacity: 1)
    private var hasContext = false

    init(_ application: Application) {
        self.application = application
    }

    deinit {
        if hasContext { context.deinitialize(count: 1) }
        context.deallocate()
    }

    var redisChannels: [String] { application.redisChannels }
    var redisPatterns: [String] { application.redisPatterns }

    private var started: Application.Context {
        if hasContext { return context.pointee }
        return Self.noContext()
    }

    /// An application without per-worker state needs no workerStart (tests drive hooks without one). Out of line:
    /// the cast's optional result would cost `started` the metadata look-up otherwise.
    @inline(never)
    private static func noContext() -> Application.Context {
        if let none = () as? Application.Context { return none }
        preconditionFailure("a hook ran before workerStart returned its context")
    }

    func workerStart(_ hive: HiveServer) async throws {
        let started = try await application.workerStart(hive)
        if hasContext { context.deinitialize(count: 1) }
        context.initialize(to: started)
        hasContext = true
    }

    func workerStop(_ hive: HiveServer) async {
        guard hasContext else { return }
        await application.workerStop(hive, context: context.pointee)
    }

    func shouldUpgrade(path: String) -> Bool { application.shouldUpgrade(path: path) }

    // Inlined into its protocol witness: one async frame (and one executor check) fewer per hook.
    @inline(__always)
    func open(_ connection: HiveConnection, hive: HiveServer) async throws {
        try await application.open(connection, hive: hive, context: started)
    }

    // Inlined into its protocol witness: one async frame (and one executor check) fewer per hook.
    @inline(__always)
    func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws {
        try await application.message(message, from: connection, hive: hive, context: started)
    }

    // Inlined into its protocol witness: one async frame (and one executor check) fewer per hook.
    @inline(__always)
    func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse {
        try await application.request(request, hive: hive, context: started)
    }

    // Inlined into its protocol witness: one call fewer per request.
    @inline(__always)
    func respondNow(to request: HiveRequest, hive: HiveServer) throws -> HiveResponse? {
        try application.respondNow(to: request, hive: hive, context: started)
    }

    // Inlined into its protocol witness: one async frame (and one executor check) fewer per hook.
    @inline(__always)
    func close(_ id: ConnectionID, hive: HiveServer) async {
        await application.close(id, hive: hive, context: started)
    }

    // Inlined into its protocol witness: one async frame (and one executor check) fewer per hook.
    @inline(__always)
    func redisMessages(_ messages: [RedisMessage], hive: HiveServer) async {
        await application.redisMessages(messages, hive: hive, context: started)
    }
}
