import Foundation
import HiveIPC
import XCTest

/// The packages in Examples/, each built the way a user builds it (its own package, Hive by path) and driven
/// through its real executable: Seed against a real redis-server, Chat with two rooms.
final class ExamplesIntegrationTests: HiveTestCase {
    /// Seed, the story: the page on `/`, the favicon on a keep-alive connection of its own, a WebSocket; a
    /// `PUBLISH news` (the channel Seed declares in code) reaches the WebSocket on either worker and never the
    /// HTTP connections.
    func testSeed_servesThePage_andAPublishToNewsReachesEveryWebSocket_notTheFaviconConnection() throws {
        let seed = try PackageBuild.build(package: PackageBuild.example("Seed"), product: "seed")
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url, "--dispatch", "round-robin"], binary: seed)
        try redis.waitForSubscribers(channel: "news", count: 1)

        let page = try HTTPTestClient(port: port)
        let html = try page.request(path: "/")
        XCTAssertEqual(html.status, 200)
        XCTAssertTrue(html.header("Content-Type")?.hasPrefix("text/html") == true, "\(html)")
        XCTAssertTrue(html.text.contains("new WebSocket("), html.text)
        let favicon = try HTTPTestClient(port: port)
        XCTAssertEqual(try favicon.request(path: "/favicon.ico").status, 200)
        let sockets = try (0..<2).map { _ in try WebSocketTestClient(port: port) }
        // Each answers once it is established, and round-robin put them on both workers.
        for socket in sockets {
            try socket.sendText("hi")
            guard case .text = try socket.receiveMessage() else { return XCTFail("no answer to a message") }
        }
        let listed = try HiveCLI.run(["connections", "--json", "--run-dir", hive.directory.appendingPathComponent("run").path], binary: seed)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(Set(rows.filter { $0["protocol"] as? String == "websocket" }.compactMap { $0["worker"] as? Int }), [0, 1], listed.stdout)

        XCTAssertEqual(try redis.publish(channel: "news", message: "hello from redis"), 1)
        XCTAssertEqual(try redis.publish(channel: "weather", message: "not news"), 0)
        for socket in sockets {
            XCTAssertEqual(try socket.receiveMessage(), .text("hello from redis"))
        }
        XCTAssertFalse(sockets[0].receivedAnything(within: 0.3))
        XCTAssertFalse(page.receivedAnything(within: 0.1))
        XCTAssertFalse(favicon.receivedAnything(within: 0.1))
        // The favicon connection is still open and served: it was left alone, not closed.
        XCTAssertEqual(try favicon.request(path: "/favicon.ico").status, 200)
    }

    /// Chat: two clients in one room hear each other (and themselves); a client in another room hears neither,
    /// and its own room's line reaches only itself.
    func testChat_twoClientsInARoomHearEachOther_andAnotherRoomHearsNothing() throws {
        let chat = try PackageBuild.build(package: PackageBuild.example("Chat"), product: "chat")
        // Two workers, clients spread over them: a room spans workers.
        let (hive, port) = try startHive(workers: 2, ["--dispatch", "round-robin"], binary: chat)
        let alice = try WebSocketTestClient(port: port)
        let bob = try WebSocketTestClient(port: port)
        let carol = try WebSocketTestClient(port: port)
        let aliceID = try join(alice, "lobby")
        let bobID = try join(bob, "lobby")
        let carolID = try join(carol, "kitchen")
        XCTAssertNotEqual(Self.worker(aliceID), Self.worker(bobID), "alice and bob are on different workers")
        _ = hive

        try alice.sendText("hello bob")
        XCTAssertEqual(try alice.receiveMessage(), .text("lobby \(aliceID): hello bob"))
        XCTAssertEqual(try bob.receiveMessage(), .text("lobby \(aliceID): hello bob"))
        try bob.sendText("hi alice")
        XCTAssertEqual(try alice.receiveMessage(), .text("lobby \(bobID): hi alice"))
        XCTAssertEqual(try bob.receiveMessage(), .text("lobby \(bobID): hi alice"))
        try carol.sendText("anyone?")
        XCTAssertEqual(try carol.receiveMessage(), .text("kitchen \(carolID): anyone?"))
        XCTAssertFalse(carol.receivedAnything(within: 0.3))
        XCTAssertFalse(alice.receivedAnything(within: 0.1))
        XCTAssertFalse(bob.receivedAnything(within: 0.1))

        // What is refused is answered to the sender alone.
        try carol.sendText("/join two words")
        XCTAssertEqual(try carol.receiveMessage(), .text("error: send /join ROOM, with ROOM one word of at most 32 characters"))
        try carol.sendText("/join no#hash")
        guard case .text(let refused) = try carol.receiveMessage() else { return XCTFail("no answer to a bad room") }
        XCTAssertTrue(refused.hasPrefix("error: cannot join no#hash:"), refused)
        try carol.sendText(String(repeating: "x", count: 4097))
        XCTAssertEqual(try carol.receiveMessage(), .text("error: a message is at most 4096 bytes, got 4097"))
        XCTAssertFalse(alice.receivedAnything(within: 0.1))

        // Bob leaves (closes): the room is Alice alone; a client in no room is told to join one.
        bob.close()
        try alice.sendText("/who")
        XCTAssertEqual(try alice.receiveMessage(), .text("in lobby on worker \(Self.worker(aliceID)): \(aliceID)"))
        let dave = try WebSocketTestClient(port: port)
        try dave.sendText("hello?")
        XCTAssertEqual(try dave.receiveMessage(), .text("error: you are in no room yet; send /join ROOM first"))
    }

    /// `/join ROOM` and the connection id the answer names.
    /// The worker of a connection id (its bits 24 to 31).
    private static func worker(_ id: String) -> UInt64 { (UInt64(id) ?? 0) >> 24 & 0xFF }

    private func join(_ client: WebSocketTestClient, _ room: String) throws -> String {
        try client.sendText("/join \(room)")
        guard case .text(let reply) = try client.receiveMessage(), reply.hasPrefix("joined \(room) as "),
            let id = reply.split(separator: " ").last
        else { throw TestClientError.misuse("unexpected answer to /join \(room)") }
        return String(id)
    }
}
