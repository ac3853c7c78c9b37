#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HiveIPC
import XCTest

/// Users against the real binary: connections bound to a user id (the demo's `bind` action calls
/// `HiveServer.bind`), `hive push --user` and `send(toUser:)` reaching every connection of that user, on every
/// worker and every host on one Redis, exactly once; the user in `hive connections`; bad ids refused.
final class UsersIntegrationTests: HiveTestCase {
    /// With Redis: once worker 0 holds the user channel (a message published before would be lost).
    private func startWithRedis(_ redis: RedisServer, workers: Int = 2, _ extra: [String] = []) throws -> (HiveProcess, port: Int) {
        let (hive, port) = try startHive(workers: workers, ["--redis", redis.url, "--dispatch", "round-robin"] + extra)
        try redis.waitForSubscribers(channel: extra.contains("--channel-prefix")
            ? extra[extra.firstIndex(of: "--channel-prefix")! + 1] + "__hive:user" : "__hive:user", count: 1)
        return (hive, port)
    }

    private func runDir(_ hive: HiveProcess) -> String { hive.directory.appendingPathComponent("run").path }

    private func client(_ port: Int) throws -> WebSocketTestClient {
        try WebSocketTestClient(port: port, path: "/", timeout: 5)
    }

    private func bind(_ client: WebSocketTestClient, _ user: String, to target: UInt64? = nil,
                      file: StaticString = #filePath, line: UInt = #line) throws {
        var fields = ["user": user]
        if let target { fields["to"] = String(target) }
        try client.sendText(action("bind", fields))
        XCTAssertEqual(try client.receiveMessage(), .text("bound to \(user)"), file: file, line: line)
    }

    private func pushUser(_ hive: HiveProcess, _ user: String, _ message: String) throws -> HiveCLI.Result {
        try HiveCLI.run(["push", "--user", user, message, "--run-dir", runDir(hive)])
    }

    private func assertNothingMore(_ clients: [WebSocketTestClient], file: StaticString = #filePath, line: UInt = #line) {
        for (index, client) in clients.enumerated() {
            XCTAssertFalse(client.receivedAnything(within: index == 0 ? 0.3 : 0), "client \(index) got more",
                           file: file, line: line)
        }
    }

    /// The users `hive connections --json` shows, by connection id.
    private func users(_ hive: HiveProcess) throws -> [UInt64: String] {
        let rows = try XCTUnwrap(try HiveCLI.json(["connections", "--json", "--run-dir", runDir(hive)]) as? [[String: Any]])
        var users: [UInt64: String] = [:]
        for row in rows {
            guard let id = (row["id"] as? NSNumber)?.uint64Value else { continue }
            if let user = row["user"] as? String { users[id] = user }
        }
        return users
    }

    private func waitForUsers(_ hive: HiveProcess, _ expected: [UInt64: String], timeout: TimeInterval = 3) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var seen: [UInt64: String] = [:]
        while Date() < deadline {
            seen = try users(hive)
            if seen == expected { return }
            usleep(50_000)
        }
        XCTFail("hive connections shows users \(seen), expected \(expected)")
    }

    func testPushUser_withRedis_reachesEachConnectionOfTheUserOnBothWorkersOnce_andNobodyElse() throws {
        let redis = try startRedis()
        let (hive, port) = try startWithRedis(redis)
        let alice = try (0..<3).map { _ in try client(port) }
        let bob = try client(port)
        let nobody = try client(port)
        XCTAssertEqual(Set(try alice.map { try worker(of: $0) }), [0, 1], "alice has connections on both workers")
        for connection in alice { try bind(connection, "alice") }
        try bind(bob, "bob")
        _ = try worker(of: nobody)

        let pushed = try pushUser(hive, "alice", "for alice")
        XCTAssertEqual(pushed.status, 0, pushed.stderr)
        XCTAssertTrue(pushed.stdout.contains("user alice") && pushed.stdout.contains("through Redis"), pushed.stdout)
        for connection in alice { XCTAssertEqual(try connection.receiveMessage(), .text("for alice")) }
        assertNothingMore(alice + [bob, nobody])

        // From application code (send(toUser:) through Redis), in order, and to bob alone.
        for index in 0..<5 {
            try nobody.sendText(action("send-user", ["user": "bob", "content": "bob-\(index)"]))
            XCTAssertEqual(try nobody.receiveMessage(), .text("sent to user bob"))
        }
        for index in 0..<5 { XCTAssertEqual(try bob.receiveMessage(), .text("bob-\(index)")) }
        assertNothingMore(alice + [bob, nobody])

        // A user with no connection: nothing is sent anywhere, and that is no error.
        XCTAssertEqual(try pushUser(hive, "carol", "nobody home").status, 0)
        assertNothingMore(alice + [bob, nobody])
    }

    func testConnectionsShowTheUser_rebindReplaces_unbindAndCloseClear() throws {
        let (hive, port) = try startHive(workers: 2, ["--dispatch", "round-robin"])
        let first = try client(port)
        let second = try client(port)
        XCTAssertNotEqual(try worker(of: first), try worker(of: second))
        let firstID = try connectionID(of: first)
        let secondID = try connectionID(of: second)
        try bind(first, "alice")
        try bind(first, "名前 with space", to: secondID)  // a connection of the other worker
        try waitForUsers(hive, [firstID: "alice", secondID: "名前 with space"])

        let table = try HiveCLI.run(["connections", "--run-dir", runDir(hive)])
        XCTAssertEqual(table.status, 0, table.stderr)
        let header = try XCTUnwrap(table.stdout.split(separator: "\n").first)
        XCTAssertTrue(header.hasSuffix("user"), String(header))
        XCTAssertTrue(table.stdout.contains("alice") && table.stdout.contains("名前 with space"), table.stdout)
        let only = try HiveCLI.run(["connections", "--user", "alice", "--run-dir", runDir(hive)])
        XCTAssertTrue(only.stdout.contains("1 connections"), only.stdout)

        try bind(first, "carol")
        try waitForUsers(hive, [firstID: "carol", secondID: "名前 with space"])
        XCTAssertEqual(try pushUser(hive, "alice", "to the old user").status, 0)
        XCTAssertEqual(try pushUser(hive, "carol", "to the new user").status, 0)
        XCTAssertEqual(try first.receiveMessage(), .text("to the new user"), "a rebind replaces the user")
        assertNothingMore([first, second])

        try first.sendText(action("unbind"))
        XCTAssertEqual(try first.receiveMessage(), .text("unbound"))
        try waitForUsers(hive, [secondID: "名前 with space"])
        second.close()
        try waitForUsers(hive, [:])
        XCTAssertEqual(try pushUser(hive, "名前 with space", "gone").status, 0)
        assertNothingMore([first])
    }

    func testWithoutRedis_pushUserAndSendToUserAreDeliveredOnThisHost() throws {
        let (hive, port) = try startHive(workers: 2, ["--dispatch", "round-robin"])
        let alice = try (0..<2).map { _ in try client(port) }
        let bob = try client(port)
        XCTAssertEqual(Set(try alice.map { try worker(of: $0) }), [0, 1])
        for connection in alice { try bind(connection, "alice") }
        try bind(bob, "bob")

        let pushed = try pushUser(hive, "alice", "local")
        XCTAssertEqual(pushed.status, 0, pushed.stderr)
        XCTAssertTrue(pushed.stdout.contains("on every worker"), pushed.stdout)
        for connection in alice { XCTAssertEqual(try connection.receiveMessage(), .text("local")) }
        try bob.sendText(action("send-user", ["user": "alice", "content": "from bob"]))
        XCTAssertEqual(try bob.receiveMessage(), .text("sent to user alice"))
        for connection in alice { XCTAssertEqual(try connection.receiveMessage(), .text("from bob")) }
        assertNothingMore(alice + [bob])
    }

    func testTwoHostsOnOneRedis_bothDeliverAUserMessage() throws {
        let redis = try startRedis()
        let (hostA, portA) = try startWithRedis(redis, workers: 1)
        let (_, portB) = try startHive(workers: 1, ["--redis", redis.url])
        try redis.waitForSubscribers(channel: "__hive:user", count: 2)
        let a = try client(portA)
        let b = try client(portB)
        let other = try client(portB)
        try bind(a, "alice")
        try bind(b, "alice")
        try bind(other, "bob")
        let pushed = try pushUser(hostA, "alice", "to every host")
        XCTAssertEqual(pushed.status, 0, pushed.stderr)
        XCTAssertEqual(try a.receiveMessage(), .text("to every host"))
        XCTAssertEqual(try b.receiveMessage(), .text("to every host"))
        try other.sendText(action("send-user", ["user": "alice", "content": "from host B"]))
        XCTAssertEqual(try other.receiveMessage(), .text("sent to user alice"))
        XCTAssertEqual(try a.receiveMessage(), .text("from host B"))
        XCTAssertEqual(try b.receiveMessage(), .text("from host B"))
        assertNothingMore([a, b, other])
    }

    /// The channel prefix applies to the user channel too; what was not published by Hive is dropped with a warning.
    func testUserChannelFollowsThePrefix_andForeignMessagesOnItAreDropped() throws {
        let redis = try startRedis()
        let (hive, port) = try startWithRedis(redis, workers: 1, ["--channel-prefix", "app:", "--pattern", "app:*"])
        let alice = try client(port)
        try bind(alice, "alice")
        // Redis counts the channel and the pattern subscription of worker 0's one connection: 2.
        XCTAssertEqual(try redis.publish(channel: "app:__hive:user", message: "alice: not an envelope"), 2)
        try hive.waitForLog(containing: "not a Hive user envelope")
        XCTAssertEqual(try pushUser(hive, "alice", "prefixed").status, 0)
        XCTAssertEqual(try alice.receiveMessage(), .text("prefixed"), "once, though --pattern app:* matches it too")
        assertNothingMore([alice])
    }

    func testBadUserIdsAndTargets_areRefusedWithAClearMessage() throws {
        let (hive, port) = try startHive(workers: 1)
        let caller = try client(port)
        _ = try worker(of: caller)
        for (user, expected) in [("", "must not be empty"), (String(repeating: "x", count: 65), "65 bytes long; the limit is 64"),
                                 ("al\tice", "control character U+9")] {
            let result = try pushUser(hive, user, "x")
            XCTAssertNotEqual(result.status, 0)
            XCTAssertTrue(result.stderr.contains(expected) && result.stderr.contains("--user"), result.stderr)
            try caller.sendText(action("bind", ["user": user]))
            guard case .text(let reply) = try caller.receiveMessage() else { return XCTFail("no answer") }
            XCTAssertTrue(reply.hasPrefix("error: invalidArgument: ") && reply.contains(expected)
                          && reply.contains("1 to 64 bytes of UTF-8 without control characters"), reply)
        }
        try caller.sendText(action("bind", ["user": "alice", "to": "12345"]))
        guard case .text(let unknown) = try caller.receiveMessage() else { return XCTFail("no answer") }
        XCTAssertTrue(unknown.hasPrefix("error: unknownConnection"), unknown)

        let http = try HTTPTestClient(port: port)
        let httpID = try XCTUnwrap(try http.request(path: "/hello").header("X-Hive-Connection"))
        try caller.sendText(action("bind", ["user": "alice", "to": httpID]))
        guard case .text(let notWebSocket) = try caller.receiveMessage() else { return XCTFail("no answer") }
        XCTAssertTrue(notWebSocket.hasPrefix("error: notWebSocket"), notWebSocket)
        try waitForUsers(hive, [:])

        // The master checks the id too: the control socket is not only for this CLI.
        let extraArgs = try HiveCLI.run(["push", "--user", "alice", "1", "x", "--run-dir", runDir(hive)])
        XCTAssertNotEqual(extraArgs.status, 0)
        XCTAssertTrue(extraArgs.stderr.contains("with --user, give only the message"), extraArgs.stderr)
    }
}
