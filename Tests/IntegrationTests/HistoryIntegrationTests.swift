#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HiveRedis
import XCTest

/// Channel history against a real redis-server and the real `hive`: messages published with history carry a
/// position `EPOCH:OFFSET` in their envelopes; a client that reconnects with `since` gets exactly what it missed,
/// then live messages, from any worker and any host on the same Redis.
final class HistoryIntegrationTests: HiveTestCase {
    private var redis: RedisServer!

    override func setUpWithError() throws {
        redis = try startRedis()
    }

    /// One envelope as a client sees it.
    struct Envelope: Equatable {
        var channel: String
        var offset: String?
        var data: String?
        var encoding: String?
        var recovered: Bool?

        var position: (epoch: String, offset: Int)? {
            guard let offset, let colon = offset.lastIndex(of: ":"), let number = Int(offset[offset.index(after: colon)...]) else { return nil }
            return (String(offset[..<colon]), number)
        }
    }

    private func startWithHistory(size: Int = 100, workers: Int = 2, _ extra: [String] = []) throws -> (HiveProcess, port: Int) {
        let (hive, port) = try startHive(workers: workers, ["--redis", redis.url, "--dispatch", "round-robin",
                                                           "--history-size", String(size)] + extra)
        try redis.waitForSubscribers(channel: "test", count: 1)
        return (hive, port)
    }

    /// A client of `news` with envelopes. One that resumes (`since`) is not asked who it is: its recovered
    /// messages may come before the answer.
    private func subscriber(_ port: Int, _ query: String = "channels=news&envelope=json") throws -> WebSocketTestClient {
        let client = try WebSocketTestClient(port: port, path: "/?" + query, timeout: 5)
        if !query.contains("since=") { _ = try connectionID(of: client) }  // the upgrade is done, and the channel joined
        return client
    }

    /// `hive publish` with history, as an operator would.
    private func publish(_ message: String, channel: String = "news", size: Int = 100) throws {
        let result = try HiveCLI.run(["publish", channel, message, "--redis", redis.url, "--history-size", String(size)])
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    private func envelope(_ client: WebSocketTestClient, file: StaticString = #filePath, line: UInt = #line) throws -> Envelope {
        guard case .text(let text) = try client.receiveMessage(timeout: 5) else {
            XCTFail("not a text message", file: file, line: line)
            return Envelope(channel: "")
        }
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            XCTFail("not a JSON object: \(text)", file: file, line: line)
            return Envelope(channel: "")
        }
        return Envelope(channel: object["channel"] as? String ?? "", offset: object["offset"] as? String,
                        data: object["data"] as? String, encoding: object["encoding"] as? String,
                        recovered: object["recovered"] as? Bool)
    }

    func testEnvelopes_carryIncreasingOffsets_andSinceRecoversExactlyWhatWasMissed_thenLive() throws {
        let (_, port) = try startWithHistory()
        let first = try subscriber(port)
        let plain = try WebSocketTestClient(port: port, path: "/?channels=news", timeout: 5)
        _ = try connectionID(of: plain)
        try redis.waitForSubscribers(channel: "news", count: 1)
        // 1-3 from the shell (EVAL), 4-5 from application code (hive.publish: EVALSHA on the worker's connection).
        for index in 1...3 { try publish("m\(index)") }
        let app = try WebSocketTestClient(port: port, timeout: 5)
        for index in 4...5 {
            try app.sendText(action("publish", ["channel": "news", "content": "m\(index)"]))
            XCTAssertEqual(try app.receiveMessage(timeout: 5), .text("published to news"))
        }
        var received: [Envelope] = []
        for _ in 1...5 { received.append(try envelope(first)) }
        XCTAssertEqual(received.map(\.data), (1...5).map { "m\($0)" })
        XCTAssertEqual(Set(received.map(\.channel)), ["news"])
        let positions = received.compactMap(\.position)
        XCTAssertEqual(positions.count, 5)
        XCTAssertEqual(Set(positions.map(\.epoch)).count, 1, "one epoch: \(received)")
        XCTAssertEqual(positions.map(\.offset), [1, 2, 3, 4, 5])
        for index in 1...5 { XCTAssertEqual(try plain.receiveMessage(), .text("m\(index)"), "no envelope asked for: the payload as it is") }
        let since = try XCTUnwrap(received.last?.offset)
        first.close()

        for index in 6...10 { try publish("m\(index)") }
        // Any worker may read history: two reconnects land on both workers (round-robin).
        let again = try subscriber(port, "channels=news&envelope=json&since=\(since)")
        let other = try subscriber(port, "channels=news&envelope=json&since=\(since)")
        for client in [again, other] {
            let missed = try (6...10).map { _ in try envelope(client) }
            XCTAssertEqual(missed.map(\.data), (6...10).map { "m\($0)" })
            XCTAssertEqual(missed.compactMap(\.position).map(\.offset), Array(6...10))
            XCTAssertEqual(missed.compactMap(\.position).map(\.epoch), Array(repeating: positions[0].epoch, count: 5))
        }
        try publish("m11")
        for client in [again, other] {
            let live = try envelope(client)
            XCTAssertEqual(live.data, "m11")
            XCTAssertEqual(live.offset, "\(positions[0].epoch):11")
            XCTAssertFalse(client.receivedAnything(within: 0.3), "nothing twice")
        }
        XCTAssertNotEqual(try worker(of: again), try worker(of: other))
    }

    func testAPositionOutOfTheWindow_orOfAnotherEpoch_getsRecoveredFalse_thenLive_andChannelsShowsTheHistory() throws {
        let (hive, port) = try startWithHistory(size: 3)
        let watcher = try subscriber(port)
        try redis.waitForSubscribers(channel: "news", count: 1)
        for index in 1...10 { try publish("m\(index)", size: 3) }
        let all = try (1...10).map { _ in try envelope(watcher) }
        let epoch = try XCTUnwrap(all.first?.position?.epoch)
        for since in ["\(epoch):2", "zzz:9", "\(epoch):99"] {
            let late = try subscriber(port, "channels=news&envelope=json&since=\(since)")
            XCTAssertEqual(try envelope(late), Envelope(channel: "news", recovered: false), since)
            try publish("live after \(since)", size: 3)
            XCTAssertEqual(try envelope(late).data, "live after \(since)", since)
            XCTAssertFalse(late.receivedAnything(within: 0.2), since)
        }
        // Inside the window: what is left of it, without a recovered:false.
        let inside = try subscriber(port, "channels=news&envelope=json&since=\(epoch):10")
        XCTAssertEqual(try (0..<3).map { _ in try envelope(inside).data }, ["live after \(epoch):2", "live after zzz:9", "live after \(epoch):99"])

        let run = hive.directory.appendingPathComponent("run").path
        let text = try HiveCLI.run(["channels", "--run-dir", run])
        XCTAssertEqual(text.status, 0, text.stderr)
        let rows = text.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertEqual(rows.first.map { Array($0.suffix(4)) }, ["history", "last", "offset", "epoch"], text.stdout)
        XCTAssertEqual(rows.first { $0.first == "news" }.map { Array($0.suffix(3)) }, ["3", "13", epoch], text.stdout)
        let json = try HiveCLI.run(["channels", "--json", "--run-dir", run])
        let list = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        let history = try XCTUnwrap(list.first { $0["channel"] as? String == "news" }?["history"] as? [String: Any])
        XCTAssertEqual(history["length"] as? Int, 3)
        XCTAssertEqual(history["lastOffset"] as? Int, 13)
        XCTAssertEqual(history["epoch"] as? String, epoch)
    }

    func testTheSamePosition_onASecondHostOnTheSameRedis_givesTheSameMessagesAndOffsets() throws {
        let (_, portA) = try startWithHistory(workers: 1)
        let (_, portB) = try startHive(workers: 1, ["--redis", redis.url, "--history-size", "100"])
        try redis.waitForSubscribers(channel: "test", count: 2)
        let onA = try subscriber(portA)
        try redis.waitForSubscribers(channel: "news", count: 1)
        for index in 1...4 { try publish("m\(index)") }
        let seen = try (1...4).map { _ in try envelope(onA) }
        let since = try XCTUnwrap(seen[1].offset)
        let resumedA = try subscriber(portA, "channels=news&envelope=json&since=\(since)")
        let resumedB = try subscriber(portB, "channels=news&envelope=json&since=\(since)")
        let fromA = try (0..<2).map { _ in try envelope(resumedA) }
        let fromB = try (0..<2).map { _ in try envelope(resumedB) }
        XCTAssertEqual(fromA, Array(seen[2...]))
        XCTAssertEqual(fromB, Array(seen[2...]), "host B gives the same messages and offsets")
    }

    /// The first subscriber of a channel on a host resumes: a message published right after its history read,
    /// before worker 0's Redis subscription to the channel exists, reaches it anyway (the catch-up read), without
    /// waiting for a next message.
    func testResumingAsTheFirstSubscriber_getsAMessagePublishedBeforeTheSubscriptionExists() throws {
        let (_, port) = try startWithHistory(workers: 1)
        let keys = ChannelHistory.Keys(redisChannel: "news")
        let redisClient = try redis.connect()
        func publish(_ text: String) throws -> String {
            guard case .array(let reply?) = try redisClient.command(["EVAL", ChannelHistory.script, "2", keys.meta, keys.stream, "news", text, "100", "0"]),
                reply.count == 3, case .bulk(let epoch?) = reply[0], case .integer(let offset) = reply[1]
            else { throw TestClientError.misuse("the script's reply") }
            return String(decoding: epoch, as: UTF8.self) + ":\(offset)"
        }
        let first = try publish("m1")
        XCTAssertEqual(try redis.numsub("news"), 0)
        let client = try subscriber(port, "channels=news&envelope=json&since=\(first)")
        // After the history read (a few ms) and, most often, before worker 0's next look at the channel table
        // (every 200 ms): then m2 reaches nobody live, and only the catch-up read brings it.
        Thread.sleep(forTimeInterval: 0.06)
        _ = try publish("m2")
        XCTAssertEqual(try envelope(client).data, "m2")
        XCTAssertFalse(client.receivedAnything(within: 0.6), "once")
    }

    func testPlainPublish_isDeliveredWithoutAPosition_binaryInBase64_andBadSinceIsRefused400() throws {
        let (_, port) = try startWithHistory(workers: 1, ["--history", "live*=0"])
        let client = try subscriber(port)
        try redis.waitForSubscribers(channel: "news", count: 1)
        // A channel a --history rule turns off is published with a plain PUBLISH: no position.
        let live = try subscriber(port, "channels=live.scores&envelope=json")
        try redis.waitForSubscribers(channel: "live.scores", count: 1)
        try live.sendText(action("publish", ["channel": "live.scores", "content": "1-0"]))
        let both = [try live.receiveMessage(timeout: 5), try live.receiveMessage(timeout: 5)]
        XCTAssertTrue(both.contains(.text("published to live.scores")), "\(both)")
        XCTAssertTrue(both.contains(.text(#"{"channel":"live.scores","data":"1-0"}"#)), "no offset: \(both)")
        XCTAssertEqual(try redis.publish(channel: "news", message: "plain \"quoted\"\n"), 1)
        XCTAssertEqual(try envelope(client), Envelope(channel: "news", data: "plain \"quoted\"\n"))
        XCTAssertEqual(try redis.publish(channel: "news", bytes: [0xFF, 0x00, 0x01]), 1)
        XCTAssertEqual(try envelope(client), Envelope(channel: "news", data: "/wAB", encoding: "base64"))

        let cases: [(String, String)] = [
            ("channels=news&envelope=json&since=abc", "?since=abc: not a position"),
            ("channels=news&envelope=json&since=e1:-3", "not a position"),
            ("channels=news&since=e1:3", "?since= needs ?envelope=json"),
            ("channels=news,sport&envelope=json&since=e1:3", "exactly one channel"),
            ("channels=news&envelope=xml", "the only envelope is json"),
        ]
        for (query, reason) in cases {
            let http = try HTTPTestClient(port: port)
            try http.send(raw: "GET /?\(query) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            let response = try http.readResponse(timeout: 3)
            XCTAssertEqual(response.status, 400, query)
            XCTAssertTrue(response.text.contains(reason), "\(query): \(response.text)")
        }
    }
}

/// The seam under load: a publisher that never stops (an external one, calling the documented script itself),
/// clients that keep dropping and resuming with `since` on both workers. Each must see every message once, in
/// order, from its first to the last published.
final class HistorySeamIntegrationTests: HiveTestCase {
    private var redis: RedisServer!

    override func setUpWithError() throws {
        redis = try startRedis()
    }

    private final class Published: @unchecked Sendable {
        // Guarded by `lock`.
        private let lock = NSLock()
        private var _count = 0
        private var _stop = false
        var count: Int { lock.withLock { _count } }
        var stopped: Bool { lock.withLock { _stop } }
        func published() { lock.withLock { _count += 1 } }
        func stop() { lock.withLock { _stop = true } }
    }

    func testContinuousPublishing_whileClientsReconnectWithSince_noGapNoDuplicate() throws {
        let (_, port) = try startHive(workers: 2, ["--redis", redis.url, "--dispatch", "round-robin", "--history-size", "10000"])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let anchor = try WebSocketTestClient(port: port, path: "/?channels=news", timeout: 5)
        _ = try connectionID(of: anchor)
        try redis.waitForSubscribers(channel: "news", count: 1)

        let script = ChannelHistory.script
        let keys = ChannelHistory.Keys(redisChannel: "news")
        let state = Published()
        let redisPort = redis.port
        let publisher = Thread {
            guard let connection = try? RESPConnection(port: redisPort) else { return }
            var index = 0
            while !state.stopped {
                index += 1
                let reply = try? connection.command(["EVAL", script, "2", keys.meta, keys.stream, "news", "n\(index)", "10000", "0"])
                guard case .array = reply else { break }
                state.published()
                usleep(1000)
            }
        }
        publisher.start()

        final class Outcome: @unchecked Sendable {
            // Guarded by `lock`.
            let lock = NSLock()
            var sequences: [[Int]] = []
            var errors: [String] = []
        }
        let outcome = Outcome()
        let clients = 4
        let group = DispatchGroup()
        for client in 0..<clients {
            group.enter()
            Thread {
                defer { group.leave() }
                var seen: [Int] = []
                var since: String?
                do {
                    for round in 0..<6 {
                        let query = "/?channels=news&envelope=json" + (since.map { "&since=\($0)" } ?? "")
                        let socket = try WebSocketTestClient(port: port, path: query, timeout: 5)
                        let until = Date().addingTimeInterval(0.1 + 0.05 * Double((client + round) % 4))
                        while Date() < until {
                            guard socket.receivedAnything(within: 0.02) else { continue }
                            guard case .text(let text) = try socket.receiveMessage(timeout: 5),
                                let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { continue }
                            if object["recovered"] != nil { throw TestClientError.misuse("client \(client): \(text)") }
                            guard let data = object["data"] as? String, let number = Int(data.dropFirst()) else { continue }
                            seen.append(number)
                            since = object["offset"] as? String
                        }
                        socket.close()
                    }
                } catch {
                    outcome.lock.withLock { outcome.errors.append("client \(client): \(error)") }
                }
                outcome.lock.withLock { outcome.sequences.append(seen) }
            }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        state.stop()
        XCTAssertEqual(outcome.errors, [])
        XCTAssertGreaterThan(state.count, 100, "the publisher kept publishing")
        for sequence in outcome.sequences {
            guard let first = sequence.first, let last = sequence.last else { XCTFail("a client got nothing"); continue }
            XCTAssertGreaterThan(sequence.count, 50)
            XCTAssertEqual(sequence, Array(first...last), "a gap or a duplicate")
        }
    }

    /// The issue's proof, scaled to threads of blocking test clients: a steady 100 messages/s, a worker killed
    /// with SIGKILL in the middle; every client of that worker reconnects like the demo page (back-off, `since` =
    /// its last offset) and ends with every message exactly once, in order.
    func testKill9OfAWorker_underASteadyPublish_everyClientRecoversEveryMessageOnceInOrder() throws {
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url, "--dispatch", "round-robin", "--history-size", "10000"])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let total = 300
        let clients = 24
        let keys = ChannelHistory.Keys(redisChannel: "news")
        let redisPort = redis.port
        let script = ChannelHistory.script

        final class Results: @unchecked Sendable {
            // Guarded by `lock`.
            let lock = NSLock()
            var sequences: [Int: [Int]] = [:]
            var reconnects = 0
            var connected = 0
        }
        let results = Results()
        let group = DispatchGroup()
        for client in 0..<clients {
            group.enter()
            Thread {
                defer { group.leave() }
                var seen: [Int] = []
                var since: String?
                var delay = 0.1
                let deadline = Date().addingTimeInterval(40)
                var first = true
                while seen.last != total && Date() < deadline {
                    let query = "/?channels=news&envelope=json" + (since.map { "&since=\($0)" } ?? "")
                    guard let socket = try? WebSocketTestClient(port: port, path: query, timeout: 5) else {
                        Thread.sleep(forTimeInterval: delay * Double.random(in: 0.8...1.2))
                        delay = min(delay * 2, 2)
                        continue
                    }
                    if first {
                        first = false
                        results.lock.withLock { results.connected += 1 }
                    } else {
                        results.lock.withLock { results.reconnects += 1 }
                    }
                    delay = 0.1
                    while seen.last != total {
                        guard case .text(let text)? = try? socket.receiveMessage(timeout: 3),
                            let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                        else { break }  // closed (its worker died), or silent: reconnect with `since`
                        if object["recovered"] != nil { seen.append(-1) }
                        guard let data = object["data"] as? String, let number = Int(data.dropFirst()) else { continue }
                        seen.append(number)
                        since = object["offset"] as? String
                    }
                    socket.close()
                }
                results.lock.withLock { results.sequences[client] = seen }
            }.start()
        }
        let connectedBy = Date().addingTimeInterval(10)
        while results.lock.withLock({ results.connected }) < clients && Date() < connectedBy { usleep(10_000) }
        try redis.waitForSubscribers(channel: "news", count: 1)

        let publisher = try RESPConnection(port: redisPort)
        let victim = try XCTUnwrap(hive.currentWorkerPIDs()[1])
        let start = Date()
        for index in 1...total {
            if index == total / 3 { XCTAssertEqual(kill(victim, SIGKILL), 0) }
            let reply = try publisher.command(["EVAL", script, "2", keys.meta, keys.stream, "news", "n\(index)", "10000", "0"])
            guard case .array = reply else { return XCTFail("the script answered \(reply)") }
            let due = start.addingTimeInterval(Double(index) / 100)
            if due > Date() { Thread.sleep(until: due) }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 45), .success)
        XCTAssertGreaterThan(results.reconnects, 0, "the clients of the killed worker reconnected")
        XCTAssertEqual(results.sequences.count, clients)
        for (client, sequence) in results.sequences.sorted(by: { $0.key < $1.key }) {
            // Every client was connected before the first publish: it must have them all.
            XCTAssertEqual(sequence, Array(1...total), "client \(client): a gap, a duplicate or a recovered:false (-1)")
        }
        writeLine("kill -9 under 100 messages/s: \(clients) clients, \(results.reconnects) reconnects, every message once, in order")
    }
}
