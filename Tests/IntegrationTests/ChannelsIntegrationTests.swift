#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HiveIPC
import XCTest

/// Channels against a real redis-server: clients join channels with `?channels=` or through the API, worker 0's
/// subscription follows the registry's channel table, and a channel's messages reach its subscribers only, on
/// every worker, once, in order; the `--channel` channels still broadcast to everyone.
final class ChannelsIntegrationTests: HiveTestCase {
    private var redis: RedisServer!

    override func setUpWithError() throws {
        redis = try startRedis()
    }

    private func startSubscribed(workers: Int = 2, _ extra: [String] = []) throws -> (HiveProcess, port: Int) {
        let (hive, port) = try startHive(workers: workers, ["--redis", redis.url, "--dispatch", "round-robin"] + extra)
        try redis.waitForSubscribers(channel: "test", count: 1)
        return (hive, port)
    }

    private func client(_ port: Int, channels: String? = nil) throws -> WebSocketTestClient {
        try WebSocketTestClient(port: port, path: channels.map { "/?channels=\($0)" } ?? "/", timeout: 5)
    }

    private func assertNothingMore(_ clients: [WebSocketTestClient], file: StaticString = #filePath, line: UInt = #line) {
        for (index, client) in clients.enumerated() {
            XCTAssertFalse(client.receivedAnything(within: index == 0 ? 0.3 : 0), "client \(index) got more",
                           file: file, line: line)
        }
    }

    func testClientsOnDifferentChannels_onBothWorkers_getExactlyTheirChannelsMessages_onceInOrder_andTheBroadcastChannelReachesAll() throws {
        let (_, port) = try startSubscribed()
        let news = try (0..<2).map { _ in try client(port, channels: "news") }
        let sport = try (0..<2).map { _ in try client(port, channels: "sport") }
        let both = try client(port, channels: "news,sport")
        let none = try client(port)
        let all = news + sport + [both, none]
        XCTAssertEqual(Set(try news.map { try worker(of: $0) }), [0, 1])
        XCTAssertEqual(Set(try sport.map { try worker(of: $0) }), [0, 1])
        _ = try worker(of: both)
        _ = try worker(of: none)
        try redis.waitForSubscribers(channel: "news", count: 1)
        try redis.waitForSubscribers(channel: "sport", count: 1)

        var expectedNews: [WebSocketTestMessage] = []
        var expectedSport: [WebSocketTestMessage] = []
        var expectedBoth: [WebSocketTestMessage] = []
        for index in 0..<20 {
            XCTAssertEqual(try redis.publish(channel: "news", message: "news-\(index)"), 1)
            XCTAssertEqual(try redis.publish(channel: "sport", message: "sport-\(index)"), 1)
            expectedNews.append(.text("news-\(index)"))
            expectedSport.append(.text("sport-\(index)"))
            expectedBoth += [.text("news-\(index)"), .text("sport-\(index)")]
        }
        XCTAssertEqual(try redis.publish(channel: "weather", message: "rain"), 0, "nobody's channel: not subscribed")
        XCTAssertEqual(try redis.publish(channel: "test", message: "to-everyone"), 1)
        for client in news {
            XCTAssertEqual(try expectedNews.map { _ in try client.receiveMessage() } , expectedNews)
        }
        for client in sport {
            XCTAssertEqual(try expectedSport.map { _ in try client.receiveMessage() }, expectedSport)
        }
        XCTAssertEqual(try expectedBoth.map { _ in try both.receiveMessage() }, expectedBoth)
        for client in all { XCTAssertEqual(try client.receiveMessage(), .text("to-everyone")) }
        assertNothingMore(all)
    }

    func testRedisSubscription_followsTheFirstAndTheLastSubscriberAnywhere_withinASecond() throws {
        let (_, port) = try startSubscribed()
        XCTAssertEqual(try redis.numsub("news"), 0)
        let first = try client(port, channels: "news")
        let second = try client(port, channels: "news")
        XCTAssertNotEqual(try worker(of: first), try worker(of: second))
        try redis.waitForSubscribers(channel: "news", count: 1, timeout: 1)
        first.close()
        Thread.sleep(forTimeInterval: 0.6)
        XCTAssertEqual(try redis.numsub("news"), 1, "a subscriber is left on the other worker")
        XCTAssertEqual(try redis.publish(channel: "news", message: "still here"), 1)
        XCTAssertEqual(try second.receiveMessage(), .text("still here"))
        let left = Date()
        second.close()
        try redis.waitForSubscribers(channel: "news", count: 0, timeout: 1)
        XCTAssertLessThan(Date().timeIntervalSince(left), 1)
        XCTAssertEqual(try redis.numsub("test"), 1, "the --channel subscription stays")
    }

    func testSubscribeAndUnsubscribe_throughTheAPI_forAConnectionOnAnotherWorker() throws {
        let (_, port) = try startSubscribed()
        let caller = try client(port)
        let target = try client(port)
        XCTAssertNotEqual(try worker(of: caller), try worker(of: target))
        let targetID = try connectionID(of: target)

        try caller.sendText(action("subscribe", ["content": "news", "to": String(targetID)]))
        XCTAssertEqual(try caller.receiveMessage(), .text("subscribed to news"))
        try redis.waitForSubscribers(channel: "news", count: 1)
        XCTAssertEqual(try redis.publish(channel: "news", message: "for the target"), 1)
        XCTAssertEqual(try target.receiveMessage(), .text("for the target"))
        XCTAssertFalse(caller.receivedAnything(within: 0.3))

        try caller.sendText(action("subscribe", ["content": "bad name!", "to": String(targetID)]))
        guard case .text(let refusal) = try caller.receiveMessage() else { return XCTFail("no answer") }
        XCTAssertTrue(refusal.hasPrefix("error: invalidArgument: channel name \"bad name!\" contains \" \""), refusal)
        try caller.sendText(action("subscribe", ["content": "news", "to": "12345"]))
        guard case .text(let unknown) = try caller.receiveMessage() else { return XCTFail("no answer") }
        XCTAssertTrue(unknown.hasPrefix("error: unknownConnection"), unknown)

        try caller.sendText(action("unsubscribe", ["content": "news", "to": String(targetID)]))
        XCTAssertEqual(try caller.receiveMessage(), .text("unsubscribed from news"))
        try redis.waitForSubscribers(channel: "news", count: 0, timeout: 1)
        XCTAssertEqual(try redis.publish(channel: "news", message: "gone"), 0)
        XCTAssertFalse(target.receivedAnything(within: 0.3))
    }

    func testPerConnectionLimit_isATypedError() throws {
        let (_, port) = try startSubscribed(workers: 1)
        let names = (0..<ChannelName.maxPerConnection).map { "c\($0)" }
        let full = try client(port, channels: names.joined(separator: ","))
        try full.sendText(action("subscribe", ["content": "one-more"]))
        guard case .text(let reply) = try full.receiveMessage() else { return XCTFail("no answer") }
        XCTAssertTrue(reply.hasPrefix("error: channelLimit") && reply.contains("already in 32 channels"), reply)
        try full.sendText(action("subscribe", ["content": "c0"]))
        XCTAssertEqual(try full.receiveMessage(), .text("subscribed to c0"), "an existing subscription is no new one")
    }

    func testBadChannelsQuery_isRefused400WithTheReason() throws {
        let (hive, port) = try startSubscribed(workers: 1)
        let tooMany = (0...ChannelName.maxPerConnection).map { "c\($0)" }.joined(separator: ",")
        let cases: [(String, String)] = [
            ("news,spo%20rt", "channel name \"spo rt\" contains \" \""),
            ("news,,sport", "must not be empty"),
            (String(repeating: "x", count: 65), "the limit is 64"),
            (tooMany, "more than 32 channels"),
            ("news%ZZ", "channel name \"news%ZZ\" contains \"%\""),
            ("news%FF", "not valid percent-encoded"),
        ]
        for (query, reason) in cases {
            let http = try HTTPTestClient(port: port)
            try http.send(raw: "GET /?channels=\(query) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            let response = try http.readResponse(timeout: 3)
            XCTAssertEqual(response.status, 400, query)
            XCTAssertTrue(response.text.contains(reason) && response.text.contains("?channels="), "\(query): \(response.text)")
        }
        // A browser's URLSearchParams writes the comma as %2C.
        let encoded = try client(port, channels: "news%2Csport")
        _ = try worker(of: encoded)
        try redis.waitForSubscribers(channel: "sport", count: 1)
        XCTAssertEqual(try redis.publish(channel: "sport", message: "s"), 1)
        XCTAssertEqual(try encoded.receiveMessage(), .text("s"))
        XCTAssertFalse(hive.log().contains(" error "))
    }

    func testChannelPrefix_mapsHiveChannelsToPrefixedRedisChannels() throws {
        let (_, port) = try startSubscribed(["--channel-prefix", "app:"])
        let reader = try client(port, channels: "news")
        _ = try worker(of: reader)
        try redis.waitForSubscribers(channel: "app:news", count: 1)
        XCTAssertEqual(try redis.numsub("news"), 0)
        XCTAssertEqual(try redis.publish(channel: "app:news", message: "prefixed"), 1)
        XCTAssertEqual(try reader.receiveMessage(), .text("prefixed"))
        XCTAssertEqual(try redis.publish(channel: "test", message: "broadcast"), 1, "--channel is not prefixed")
        XCTAssertEqual(try reader.receiveMessage(), .text("broadcast"))
    }

    /// Worker 0 holds the subscription: killed with -9, its replacement subscribes again to exactly the channels
    /// that still have subscribers (its own clients died with it, and their channels are gone).
    func testKill9OfWorker0_rebuildsTheSubscriptionSetFromTheRegistry() throws {
        let (hive, port) = try startSubscribed()
        let onZero = try client(port, channels: "news,zero-only")
        let onOne = try client(port, channels: "news,one-only")
        XCTAssertEqual(try worker(of: onZero), 0)
        XCTAssertEqual(try worker(of: onOne), 1)
        for channel in ["news", "zero-only", "one-only"] { try redis.waitForSubscribers(channel: channel, count: 1) }
        let worker0 = try XCTUnwrap(hive.currentWorkerPIDs()[0])
        XCTAssertEqual(kill(worker0, SIGKILL), 0)
        XCTAssertTrue(onZero.isClosedByPeer(within: 5))
        try redis.waitForSubscribers(channel: "zero-only", count: 0, timeout: 10)
        try redis.waitForSubscribers(channel: "test", count: 1, timeout: 10)
        try redis.waitForSubscribers(channel: "news", count: 1, timeout: 10)
        try redis.waitForSubscribers(channel: "one-only", count: 1, timeout: 10)
        XCTAssertEqual(try redis.publish(channel: "news", message: "after the crash"), 1)
        XCTAssertEqual(try onOne.receiveMessage(), .text("after the crash"))
        XCTAssertEqual(try redis.publish(channel: "one-only", message: "one"), 1)
        XCTAssertEqual(try onOne.receiveMessage(), .text("one"))
        XCTAssertFalse(onOne.receivedAnything(within: 0.3), "exactly once: one Redis connection holds the set")
        let fresh = try client(port, channels: "zero-only")
        _ = try worker(of: fresh)
        try redis.waitForSubscribers(channel: "zero-only", count: 1)
    }

    func testChannelsCommand_listsSubscribersPerWorker_andStatusCountsChannels() throws {
        let (hive, port) = try startSubscribed(["--max-channels", "2"])
        let run = hive.directory.appendingPathComponent("run").path
        let news = try (0..<3).map { _ in try client(port, channels: "news") }
        let sport = try client(port, channels: "sport")
        for client in news + [sport] { _ = try worker(of: client) }

        let text = try HiveCLI.run(["channels", "--run-dir", run])
        XCTAssertEqual(text.status, 0, text.stderr)
        let rows = text.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertEqual(rows.first, ["channel", "subscribers", "worker", "0", "worker", "1"], text.stdout)
        XCTAssertTrue(rows.contains(["news", "3", "2", "1"]), text.stdout)
        XCTAssertTrue(rows.contains(["sport", "1", "0", "1"]), text.stdout)
        XCTAssertTrue(text.stdout.contains("2 channels (at most 2, --max-channels)"), text.stdout)

        let json = try HiveCLI.run(["channels", "--json", "--run-dir", run])
        let list = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(list.map { $0["channel"] as? String }, ["news", "sport"])
        XCTAssertEqual(list.first?["subscribers"] as? Int, 3)
        XCTAssertEqual(list.first?["workers"] as? [Int], [2, 1])

        let status = try HiveCLI.run(["status", "--json", "--run-dir", run])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["channels"] as? Int, 2)
        XCTAssertTrue(try HiveCLI.run(["status", "--run-dir", run]).stdout.contains("channels: 2"))

        // The table is full: a third channel is refused at connect with the reason, an existing one still joins.
        let refused = try client(port, channels: "weather")
        XCTAssertTrue(refused.isClosedByPeer(within: 3), "a connection whose channel has no room is closed")
        try hive.waitForLog(containing: "channel weather cannot be added")
        let more = try client(port, channels: "news")
        _ = try worker(of: more)
        try more.sendText(action("subscribe", ["content": "weather"]))
        guard case .text(let reply) = try more.receiveMessage() else { return XCTFail("no answer") }
        XCTAssertTrue(reply.hasPrefix("error: channelLimit") && reply.contains("--max-channels"), reply)

        for client in news + [sport, more] { client.close() }
        try redis.waitForSubscribers(channel: "news", count: 0, timeout: 2)
        let empty = try HiveCLI.run(["channels", "--run-dir", run])
        XCTAssertTrue(empty.stdout.contains("0 channels"), empty.stdout)
    }

    /// A reload with --drop closes the old workers' clients (1012): their channels go with them, the new worker 0
    /// holds the subscription alone, and reconnected clients subscribe again.
    func testReload_keepsTheSubscriptionSetRight() throws {
        let (hive, port) = try startSubscribed()
        let old = try (0..<2).map { _ in try client(port, channels: "news") }
        XCTAssertEqual(Set(try old.map { try worker(of: $0) }), [0, 1])
        try redis.waitForSubscribers(channel: "news", count: 1)
        let reloaded = try HiveCLI.run(["reload", "--drop", "--run-dir", hive.directory.appendingPathComponent("run").path])
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        for client in old { XCTAssertTrue(client.isClosedByPeer(within: 10)) }
        try redis.waitForSubscribers(channel: "news", count: 0, timeout: 10)
        try redis.waitForSubscribers(channel: "test", count: 1, timeout: 10)

        let new = try (0..<2).map { _ in try client(port, channels: "news") }
        XCTAssertEqual(Set(try new.map { try worker(of: $0) }), [0, 1])
        try redis.waitForSubscribers(channel: "news", count: 1)
        XCTAssertEqual(try redis.publish(channel: "news", message: "after the reload"), 1)
        for client in new { XCTAssertEqual(try client.receiveMessage(), .text("after the reload")) }
        assertNothingMore(new)
    }

    /// A reload hands the subscribed connections over with their channels: the new worker 0 subscribes the same
    /// channels, the registry's counts stay (one per connection, not two), and a channel message still reaches
    /// exactly its subscribers, once.
    func testReload_handsChannelSubscriptionsOverWithTheConnections() throws {
        let (hive, port) = try startSubscribed()
        let news = try (0..<2).map { _ in try client(port, channels: "news") }
        let sport = try client(port, channels: "sport")
        XCTAssertEqual(Set(try news.map { try worker(of: $0) }), [0, 1])
        _ = try worker(of: sport)
        try redis.waitForSubscribers(channel: "news", count: 1)
        let registry = try RegistryProbe.attach(masterPID: try XCTUnwrap(hive.pid))
        func counts(_ name: String) -> [UInt64] {
            guard let slot = registry.findChannel(SharedRegistry.ChannelKey(name))?.index else { return [] }
            return (0..<2).map { registry.channelCount(slot, worker: $0).load(ordering: .relaxed) }
        }
        let before = counts("news")
        XCTAssertEqual(before.reduce(0, +), 2)

        let reloaded = try HiveCLI.run(["reload", "--run-dir", hive.directory.appendingPathComponent("run").path])
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        XCTAssertEqual(counts("news"), before, "the counts moved with the connections, neither doubled nor lost")
        try redis.waitForSubscribers(channel: "news", count: 1, timeout: 10)
        XCTAssertEqual(try redis.publish(channel: "news", message: "after the reload"), 1)
        for client in news { XCTAssertEqual(try client.receiveMessage(), .text("after the reload")) }
        assertNothingMore(news + [sport])
    }

    func testTwoHostsOnOneRedis_bothDeliverAChannelMessage() throws {
        let (_, portA) = try startSubscribed(workers: 1)
        let (_, portB) = try startHive(workers: 1, ["--redis", redis.url])
        let a = try client(portA, channels: "news")
        let b = try client(portB, channels: "news")
        let other = try client(portB, channels: "sport")
        for client in [a, b, other] { _ = try worker(of: client) }
        try redis.waitForSubscribers(channel: "news", count: 2)
        XCTAssertEqual(try redis.publish(channel: "news", message: "to every host"), 2)
        XCTAssertEqual(try a.receiveMessage(), .text("to every host"))
        XCTAssertEqual(try b.receiveMessage(), .text("to every host"))
        assertNothingMore([a, b, other])
    }
}
