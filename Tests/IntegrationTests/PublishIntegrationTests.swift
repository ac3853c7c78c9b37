import Foundation
import XCTest

/// `HiveServer.publish(channel:_:)` from application code (the demo's `publish` action), against a real
/// redis-server: through Redis every host delivers, without Redis this host does, and an unreachable Redis is a
/// typed error that names what to do, within --redis-timeout.
final class PublishIntegrationTests: HiveTestCase {
    private func publish(_ client: WebSocketTestClient, channel: String, _ content: String) throws -> String {
        try client.sendText(action("publish", ["channel": channel, "content": content]))
        guard case .text(let reply) = try client.receiveMessage(timeout: 10) else {
            throw TestClientError.misuse("no text reply to publish")
        }
        return reply
    }

    func testPublish_throughRedis_reachesTheChannelsSubscribersOnEveryHost_andTheBroadcastChannelReachesAll() throws {
        let redis = try startRedis()
        let (_, portA) = try startHive(workers: 2, ["--redis", redis.url])
        let (_, portB) = try startHive(workers: 1, ["--redis", redis.url])
        try redis.waitForSubscribers(channel: "test", count: 2)
        let newsA = try WebSocketTestClient(port: portA, path: "/?channels=news", timeout: 5)
        let newsB = try WebSocketTestClient(port: portB, path: "/?channels=news", timeout: 5)
        let publisher = try WebSocketTestClient(port: portA, path: "/", timeout: 5)
        for client in [newsA, newsB, publisher] { _ = try worker(of: client) }
        try redis.waitForSubscribers(channel: "news", count: 2)

        XCTAssertEqual(try publish(publisher, channel: "news", "from code"), "published to news")
        XCTAssertEqual(try newsA.receiveMessage(), .text("from code"))
        XCTAssertEqual(try newsB.receiveMessage(), .text("from code"))
        XCTAssertFalse(publisher.receivedAnything(within: 0.3), "the publisher is not subscribed to news")

        XCTAssertEqual(try publish(publisher, channel: "test", "to everyone"), "published to test")
        for client in [newsA, newsB] { XCTAssertEqual(try client.receiveMessage(), .text("to everyone")) }
        XCTAssertEqual(try publisher.receiveMessage(), .text("to everyone"))
    }

    func testPublish_withoutRedis_reachesThisHostsSubscribers_andABadNameIsATypedError() throws {
        let (_, port) = try startHive(workers: 2, ["--dispatch", "round-robin"])
        let subscribers = try (0..<2).map { _ in try WebSocketTestClient(port: port, path: "/?channels=news", timeout: 5) }
        XCTAssertEqual(Set(try subscribers.map { try worker(of: $0) }), [0, 1])
        let publisher = try WebSocketTestClient(port: port, path: "/", timeout: 5)
        XCTAssertEqual(try publish(publisher, channel: "news", "local"), "published to news")
        for client in subscribers { XCTAssertEqual(try client.receiveMessage(), .text("local")) }

        let bad = try publish(publisher, channel: "no spaces", "x")
        XCTAssertTrue(bad.hasPrefix("error: invalidArgument"), bad)
    }

    func testPublish_whenRedisIsUnreachable_failsWithinTheTimeout_namingRedis() throws {
        let closedPort = HiveProcess.freePort()
        let (_, port) = try startHive(workers: 1, ["--redis", "redis://127.0.0.1:\(closedPort)", "--redis-timeout", "1"])
        let client = try WebSocketTestClient(port: port, path: "/", timeout: 5)
        let started = Date()
        let reply = try publish(client, channel: "news", "lost")
        XCTAssertTrue(reply.hasPrefix("error: redisUnavailable"), reply)
        XCTAssertTrue(reply.contains("127.0.0.1:\(closedPort)"), "names the Redis it could not reach: \(reply)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        try client.sendText(action("hello"))
        XCTAssertEqual(try client.receiveMessage(), .text("hello"), "the worker keeps serving")
    }
}
