import Foundation
import HiveIPC
import HiveRedis
import TokenTestSupport
import XCTest

/// `hive reload` hands over connections that opened with a JWT (its claims go with them) and connections that
/// receive channel messages in envelopes (their position in each channel goes with them): both stay connected, a
/// tokened one keeps its user and may still join only what its token allows, an enveloped one goes on with the next
/// offset, without a gap or a repeat.
final class HandOverClaimsIntegrationTests: HiveTestCase {
    private func runDir(_ hive: HiveProcess) -> String { hive.directory.appendingPathComponent("run").path }

    private func reload(_ hive: HiveProcess) throws {
        let reloaded = try HiveCLI.run(["reload", "--run-dir", runDir(hive)], timeout: 60)
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
    }

    private func answer(_ client: WebSocketTestClient, _ name: String, _ fields: [String: String] = [:]) throws -> String {
        try client.sendText(action(name, fields))
        guard case .text(let text) = try client.receiveMessage(timeout: 5) else {
            throw TestClientError.misuse("no text answer to \(name)")
        }
        return text
    }

    func testReload_handsOverATokenedClient_withItsUserAndTheChannelsItsTokenAllows() async throws {
        let (hive, port) = try startHive(workers: 1, environment: ["HIVE_JWT_SECRET": TokenTestKeys.secret])
        let token = try await TokenTestKeys.hs256(TokenTestKeys.Claims(sub: "alice", channels: ["news", "room.1"]))
        let client = try WebSocketTestClient(port: port, path: "/?channels=news&token=\(token)", timeout: 5)
        let id = try connectionID(of: client)
        let publisher = try WebSocketTestClient(port: port, path: "/?token=\(token)", timeout: 5)
        let before = hive.currentWorkerPIDs()

        try reload(hive)
        let after = hive.currentWorkerPIDs()
        XCTAssertNotEqual(after[0], before[0])
        XCTAssertFalse(client.receivedAnything(within: 0.05), "the tokened client got something unasked (a close frame?)")
        XCTAssertEqual(try connectionID(of: client), id, "the same connection")

        let rows = try XCTUnwrap(try HiveCLI.json(["connections", "--json", "--run-dir", runDir(hive)]) as? [[String: Any]])
        let row = try XCTUnwrap(rows.first { ($0["id"] as? UInt64) == id }, "connections lists \(id): \(rows)")
        XCTAssertEqual(row["user"] as? String, "alice", "its user, the token's subject")
        XCTAssertEqual((row["pid"] as? Int).map(Int32.init), after[0])

        // The claim holds in the new process: outside it refused, inside it allowed, and the channel still delivers.
        let sport = try answer(client, "subscribe", ["content": "sport"])
        XCTAssertTrue(sport.hasPrefix("error: forbidden: connection "), sport)
        XCTAssertTrue(sport.contains("may not join channel sport"), sport)
        XCTAssertEqual(try answer(client, "subscribe", ["content": "room.1"]), "subscribed to room.1")
        XCTAssertEqual(try answer(publisher, "publish", ["channel": "news", "content": "after the reload"]), "published to news")
        XCTAssertEqual(try client.receiveMessage(timeout: 5), .text("after the reload"))
        let pushed = try HiveCLI.run(["push", "--user", "alice", "to alice", "--run-dir", runDir(hive)])
        XCTAssertEqual(pushed.status, 0, pushed.stderr)
        XCTAssertEqual(try client.receiveMessage(timeout: 5), .text("to alice"))
    }

    /// One envelope: its data and its offset (`EPOCH:OFFSET`), or what else came.
    private struct Envelope {
        var data: String?
        var epoch: String?
        var offset: UInt64?
        var text: String
    }

    private func envelope(_ client: WebSocketTestClient) throws -> Envelope {
        let message = try client.receiveMessage(timeout: 10)
        guard case .text(let text) = message else { return Envelope(text: "\(message)") }
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
        let position = (object["offset"] as? String).flatMap(HistoryPosition.init(parsing:))
        return Envelope(data: object["data"] as? String, epoch: position?.epoch, offset: position?.offset, text: text)
    }

    /// Envelope clients on two workers (one of them resuming with `since` just before the first reload), a steady
    /// publish with history through a real redis-server, two reloads: each gets every message once, in order, with
    /// consecutive offsets, and none is closed.
    func testTwoReloads_underAPublishWithHistory_envelopeClientsKeepConsecutiveOffsets() throws {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url, "--dispatch", "round-robin", "--history-size", "10000"])
        try redis.waitForSubscribers(channel: "test", count: 1)
        var clients = try (0..<4).map { _ in try WebSocketTestClient(port: port, path: "/?channels=news,other&envelope=json", timeout: 5) }
        for client in clients { _ = try connectionID(of: client) }
        try redis.waitForSubscribers(channel: "news", count: 1)

        let keys = ChannelHistory.Keys(redisChannel: "news")
        let connection = try redis.connect()
        func publish(_ text: String) throws -> String {
            guard case .array(let reply?) = try connection.command(
                ["EVAL", ChannelHistory.script, "2", keys.meta, keys.stream, "news", text, "10000", "0"]),
                reply.count >= 2, case .bulk(let epoch?) = reply[0], case .integer(let offset) = reply[1]
            else { throw TestClientError.misuse("the history script answered otherwise") }
            return "\(String(decoding: epoch, as: UTF8.self)):\(offset)"
        }
        for index in 0..<5 { _ = try publish("n\(index)") }
        let first = try (0..<5).map { _ in try envelope(clients[0]) }
        let resumeAt = try XCTUnwrap(first[1].offset.map { "\(first[1].epoch!):\($0)" })

        let publisher = HistoryPublisher(port: redis.port, first: 5, interval: 0.02)
        usleep(200_000)
        // Resumes from n1: it is reading history (or has just caught up) when the reload comes.
        clients.append(try WebSocketTestClient(port: port, path: "/?channels=news&envelope=json&since=\(resumeAt)", timeout: 5))
        let pids = hive.currentWorkerPIDs()
        try reload(hive)
        usleep(200_000)
        try reload(hive)
        usleep(200_000)
        let published = publisher.stop()
        _ = try publish("end")
        XCTAssertTrue(Set(hive.currentWorkerPIDs().values).isDisjoint(with: Set(pids.values)), "both workers were replaced")
        XCTAssertGreaterThan(published, 5 + 20, "the publisher kept publishing")

        for (index, client) in clients.enumerated() {
            var numbers: [Int] = []
            var offsets: [UInt64] = []
            var others: [String] = []
            while true {
                let next = try envelope(client)
                guard let data = next.data, let offset = next.offset else {
                    others.append(next.text)
                    if others.count > 3 { break }
                    continue
                }
                if data == "end" { break }
                numbers.append(Int(data.dropFirst()) ?? -1)
                offsets.append(offset)
            }
            XCTAssertEqual(others, [], "client \(index) got something other than an envelope (a close? recovered:false?)")
            // Client 0 read n0…n4 already; the resuming client gets what follows n1.
            let start = index == 0 ? 5 : index == 4 ? 2 : 0
            XCTAssertEqual(numbers, Array(start..<published), "client \(index): a gap, a repeat or another order")
            if let low = offsets.first {
                XCTAssertEqual(offsets, Array(low..<low + UInt64(offsets.count)), "client \(index): offsets not consecutive")
            }
        }
        let open = try XCTUnwrap(try HiveCLI.json(["connections", "--json", "--run-dir", runDir(hive)]) as? [[String: Any]])
        XCTAssertEqual(open.filter { $0["protocol"] as? String == "websocket" }.count, clients.count, "no client was closed")
    }
}

/// Publishes "n<first>", "n<first+1>", … to `news` through the history script every `interval` seconds on its own
/// thread until stopped.
final class HistoryPublisher: @unchecked Sendable {
    // @unchecked: `running` and `published` are guarded by `lock`.
    private let lock = NSLock()
    private var running = true
    private var published: Int
    private let done = DispatchSemaphore(value: 0)

    init(port: Int, first: Int, interval: TimeInterval) {
        published = first
        Thread {
            defer { self.done.signal() }
            guard let connection = try? RESPConnection(port: port) else { return }
            let keys = ChannelHistory.Keys(redisChannel: "news")
            var next = first
            var due = Date()
            while self.lock.withLock({ self.running }) {
                let reply = try? connection.command(
                    ["EVAL", ChannelHistory.script, "2", keys.meta, keys.stream, "news", "n\(next)", "10000", "0"])
                guard case .array = reply else { break }
                next += 1
                self.lock.withLock { self.published = next }
                due = due.addingTimeInterval(interval)
                let wait = due.timeIntervalSinceNow
                if wait > 0 { usleep(UInt32(wait * 1e6)) }
            }
        }.start()
    }

    /// Stops and returns the number after the last published one.
    func stop() -> Int {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { published }
    }
}
