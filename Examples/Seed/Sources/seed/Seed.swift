import Hive

/// The page of the story on `/` and its WebSocket; worker 0 subscribes to the Redis channel `news` and the default
/// `redisMessages` broadcasts every message to every WebSocket client of every worker. The browser's second
/// connection, a plain HTTP keep-alive one for `/favicon.ico`, is never pushed to: a broadcast only reaches
/// established WebSockets.
struct Seed: HiveApplication {
    /// Declared in code; `seed start --channel other` still wins.
    var redisChannels: [String] { ["news"] }

    func shouldUpgrade(path: String) -> Bool { path == "/" }

    func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse {
        guard request.method == .get || request.method == .head else { return .notFound }
        switch request.path {
        case "/": return .html(SeedPage.html)
        case "/favicon.ico": return .bytes(Array(SeedPage.icon.utf8), contentType: "image/svg+xml")
        default: return .notFound
        }
    }

    /// What a client says is not news: the page only listens. Answered, so a client knows it was heard.
    func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws {
        try await hive.push(connection.id, .text("this page only listens; publish to the Redis channel news"))
    }
}
