import Foundation
import XCTest

/// `POST /api/publish` on the client port, against the real `hive` binary: refused without a key configured (403)
/// or without the right one (401), delivered to the channel's subscribers only, locally without Redis and by every
/// host through Redis; bad calls get a status and a sentence, on a connection that stays open.
final class PublishAPIIntegrationTests: HiveTestCase {
    private static let key = "it-key-0123456789abcdef"

    private func post(
        _ http: HTTPTestClient, query: String = "", key: String? = PublishAPIIntegrationTests.key,
        headers: [String: String] = [:], body: [UInt8], method: String = "POST"
    ) throws -> HTTPTestResponse {
        var headers = headers
        if let key { headers["Authorization"] = "apikey \(key)" }
        return try http.request(method: method, path: "/api/publish" + query, headers: headers, body: body)
    }

    private func postJSON(
        _ http: HTTPTestClient, _ json: String, key: String? = PublishAPIIntegrationTests.key
    ) throws -> HTTPTestResponse {
        try post(http, key: key, headers: ["Content-Type": "application/json"], body: Array(json.utf8))
    }

    /// The "error" of a JSON answer.
    private func errorText(_ response: HTTPTestResponse) -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        return object?["error"] as? String ?? "(no error in \(response))"
    }

    func testWithoutAKeyConfigured_everyCallIs403_sayingHowToEnableIt_andTheConnectionStaysOpen() throws {
        let (_, port) = try startHive(workers: 1)
        let http = try HTTPTestClient(port: port)
        let refused = try postJSON(http, #"{"channel": "news", "data": "x"}"#)
        XCTAssertEqual(refused.status, 403, "\(refused)")
        XCTAssertEqual(refused.header("Content-Type"), "application/json")
        XCTAssertTrue(errorText(refused).contains("disabled") && errorText(refused).contains("--api-key"), errorText(refused))
        XCTAssertEqual(try http.request(method: "GET", path: "/api/publish").status, 403,
                       "the path is Hive's: the application's request hook never sees it")
        XCTAssertEqual(try http.request(method: "GET", path: "/").status, 200, "same connection, still served")
    }

    func testAMissingOrWrongKey_is401_andTheKeyIsNeverLogged() throws {
        let (hive, port) = try startHive(workers: 1, ["--api-key", Self.key, "--log-level", "debug"])
        let http = try HTTPTestClient(port: port)
        let body = #"{"channel": "news", "data": "x"}"#
        let missing = try postJSON(http, body, key: nil)
        XCTAssertEqual(missing.status, 401, "\(missing)")
        XCTAssertEqual(missing.header("WWW-Authenticate"), "apikey")
        XCTAssertTrue(errorText(missing).contains("no Authorization header"), errorText(missing))
        let wrongKey = "it-key-0123456789abcdeX"
        let wrong = try postJSON(http, body, key: wrongKey)
        XCTAssertEqual(wrong.status, 401)
        XCTAssertTrue(errorText(wrong).contains("wrong API key"), errorText(wrong))
        let bearer = try post(http, key: nil, headers: ["Authorization": "Bearer \(Self.key)"], body: Array(body.utf8))
        XCTAssertEqual(bearer.status, 401)
        XCTAssertEqual(try postJSON(http, body).status, 200, "the right key, same connection")
        try hive.waitForLog(containing: "publish API call refused", count: 3)
        let log = hive.log()
        XCTAssertFalse(log.contains(wrongKey), "a wrong key is never logged")
        XCTAssertTrue(log.contains("the API key is on the command line"), "the operator is warned about ps")
        XCTAssertFalse(log.contains(Self.key), "the key is never logged")
    }

    func testWithoutRedis_aJSONCall_reachesTheChannelsSubscribersOnEveryWorker_andNoOneElse() throws {
        let (_, port) = try startHive(workers: 2, ["--api-key", Self.key, "--dispatch", "round-robin"])
        let news = try (0..<2).map { _ in try WebSocketTestClient(port: port, path: "/?channels=news", timeout: 5) }
        let sport = try WebSocketTestClient(port: port, path: "/?channels=sport", timeout: 5)
        XCTAssertEqual(Set(try news.map { try worker(of: $0) }), [0, 1])
        _ = try worker(of: sport)
        let http = try HTTPTestClient(port: port)

        let published = try postJSON(http, #"{"channel": "news", "data": "héllo"}"#)
        XCTAssertEqual(published.status, 200, "\(published)")
        XCTAssertEqual(published.text, #"{"ok":true}"#)
        for client in news { XCTAssertEqual(try client.receiveMessage(), .text("héllo")) }

        let raw = try post(http, query: "?channel=news", headers: ["Content-Type": "application/octet-stream"],
                           body: [0xFF, 0x00, 0x01])
        XCTAssertEqual(raw.status, 200, "\(raw)")
        for client in news { XCTAssertEqual(try client.receiveMessage(), .binary([0xFF, 0x00, 0x01])) }
        let text = try post(http, query: "?channel=news", headers: ["Content-Type": "text/plain"], body: Array("plain".utf8))
        XCTAssertEqual(text.status, 200, "\(text)")
        for client in news { XCTAssertEqual(try client.receiveMessage(), .text("plain")) }
        XCTAssertFalse(sport.receivedAnything(within: 0.3), "sport is not subscribed to news")
    }

    func testThroughRedis_twoHostsOnOneRedis_bothDeliver_toAChannelAndToAUser_withTheKeyFromHIVE_API_KEY() throws {
        let redis = try startRedis()
        let environment = ["HIVE_API_KEY": Self.key]
        let (_, portA) = try startHive(workers: 2, ["--redis", redis.url, "--max-redis-message", "100"],
                                       environment: environment)
        let (_, portB) = try startHive(workers: 1, ["--redis", redis.url], environment: environment)
        let newsA = try WebSocketTestClient(port: portA, path: "/?channels=news", timeout: 5)
        let newsB = try WebSocketTestClient(port: portB, path: "/?channels=news", timeout: 5)
        let sportB = try WebSocketTestClient(port: portB, path: "/?channels=sport", timeout: 5)
        for client in [newsA, newsB, sportB] { _ = try worker(of: client) }
        try redis.waitForSubscribers(channel: "news", count: 2)

        let http = try HTTPTestClient(port: portA)
        let published = try postJSON(http, #"{"channel": "news", "data": "to both hosts"}"#)
        XCTAssertEqual(published.status, 200, "\(published)")
        XCTAssertEqual(try newsA.receiveMessage(), .text("to both hosts"))
        XCTAssertEqual(try newsB.receiveMessage(), .text("to both hosts"), "the other host got it through Redis")
        XCTAssertFalse(sportB.receivedAnything(within: 0.3))

        try bind(newsA, "alice")
        try bind(sportB, "alice")
        let toUser = try post(http, query: "?user=alice", body: Array("to alice everywhere".utf8))
        XCTAssertEqual(toUser.status, 200, "\(toUser)")
        XCTAssertEqual(try newsA.receiveMessage(), .text("to alice everywhere"))
        XCTAssertEqual(try sportB.receiveMessage(), .text("to alice everywhere"), "alice on the other host too")
        XCTAssertFalse(newsB.receivedAnything(within: 0.3), "not alice")

        let hundred = Array(repeating: UInt8(ascii: "a"), count: 100)
        let overUser = try post(http, query: "?user=alice", body: hundred)
        XCTAssertEqual(overUser.status, 413, "100 bytes and the 10-byte envelope of alice exceed 100: \(overUser)")
        XCTAssertTrue(errorText(overUser).contains("the largest published is 90 bytes"), errorText(overUser))
        XCTAssertEqual(try post(http, query: "?channel=news", body: hundred).status, 200, "a channel takes 100")
        XCTAssertEqual(try newsA.receiveMessage(), .text(String(repeating: "a", count: 100)))
        XCTAssertEqual(try newsB.receiveMessage(), .text(String(repeating: "a", count: 100)))

        let wrong = try postJSON(try HTTPTestClient(port: portB), #"{"channel": "news", "data": "x"}"#, key: "nope")
        XCTAssertEqual(wrong.status, 401, "the key from the environment is the one checked")
    }

    func testWithoutRedis_aUserCall_reachesEveryConnectionOfTheUser_onEveryWorker_andNoOneElse() throws {
        let (_, port) = try startHive(workers: 2, ["--api-key", Self.key, "--dispatch", "round-robin"])
        let alice = try (0..<2).map { _ in try WebSocketTestClient(port: port, path: "/", timeout: 5) }
        let bob = try WebSocketTestClient(port: port, path: "/", timeout: 5)
        XCTAssertEqual(Set(try alice.map { try worker(of: $0) }), [0, 1])
        for client in alice { try bind(client, "alice") }
        try bind(bob, "bob")
        let published = try postJSON(try HTTPTestClient(port: port), #"{"user": "alice", "data": "just you"}"#)
        XCTAssertEqual(published.status, 200, "\(published)")
        for client in alice { XCTAssertEqual(try client.receiveMessage(), .text("just you")) }
        XCTAssertFalse(bob.receivedAnything(within: 0.3), "bob is not alice")
    }

    /// Binds a demo WebSocket to a user (the demo's `bind` action).
    private func bind(_ client: WebSocketTestClient, _ user: String) throws {
        try client.sendText(action("bind", ["user": user]))
        XCTAssertEqual(try client.receiveMessage(), .text("bound to \(user)"))
    }

    func testWhenRedisIsUnreachable_a503NamesRedis_withinTheTimeout() throws {
        let closedPort = HiveProcess.freePort()
        let (_, port) = try startHive(workers: 1, [
            "--redis", "redis://127.0.0.1:\(closedPort)", "--redis-timeout", "1", "--api-key", Self.key,
        ])
        let http = try HTTPTestClient(port: port, timeout: 10)
        let failed = try postJSON(http, #"{"channel": "news", "data": "lost"}"#)
        XCTAssertEqual(failed.status, 503, "\(failed)")
        XCTAssertTrue(errorText(failed).contains("127.0.0.1:\(closedPort)"), errorText(failed))
    }

    func testBadCalls_getTheirStatusAndASentence_onAConnectionThatStaysOpen() throws {
        let (_, port) = try startHive(workers: 1, [
            "--api-key", Self.key, "--max-message-size", "1000", "--max-body-size", "4000",
        ])
        let http = try HTTPTestClient(port: port)
        let get = try http.request(method: "GET", path: "/api/publish", headers: ["Authorization": "apikey \(Self.key)"])
        XCTAssertEqual(get.status, 405, "\(get)")
        XCTAssertEqual(get.header("Allow"), "POST")

        let badJSON = try postJSON(http, #"{"channel": "news", "data": "x""#)
        XCTAssertEqual(badJSON.status, 400)
        XCTAssertTrue(errorText(badJSON).contains("not valid JSON"), errorText(badJSON))
        let badName = try postJSON(http, #"{"channel": "no spaces", "data": "x"}"#)
        XCTAssertEqual(badName.status, 400)
        XCTAssertTrue(errorText(badName).contains("channel name \"no spaces\""), errorText(badName))
        let noData = try postJSON(http, #"{"channel": "news"}"#)
        XCTAssertEqual(noData.status, 400)
        XCTAssertTrue(errorText(noData).contains(#"no "data""#), errorText(noData))

        let badUser = try postJSON(http, #"{"user": "", "data": "x"}"#)
        XCTAssertEqual(badUser.status, 400, "\(badUser)")
        XCTAssertTrue(errorText(badUser).contains("a user id must not be empty"), errorText(badUser))

        let oversized = try post(http, query: "?channel=news", body: Array(repeating: UInt8(ascii: "a"), count: 1001))
        XCTAssertEqual(oversized.status, 413, "\(oversized)")
        XCTAssertTrue(errorText(oversized).contains("1001 bytes; the largest published is 1000"), errorText(oversized))
        XCTAssertEqual(try post(http, query: "?channel=news", body: Array(repeating: 0x61, count: 1000)).status, 200,
                       "the connection is still open, and the limit itself is allowed")

        let other = try HTTPTestClient(port: port)
        let overBody = try post(other, query: "?channel=news", body: Array(repeating: 0x61, count: 4001))
        XCTAssertEqual(overBody.status, 413, "over --max-body-size: the HTTP limit answers, before the API")
        XCTAssertEqual(try http.request(method: "GET", path: "/").status, 200, "other connections are untouched")
    }

    /// `api-key` in a `--config` file: the workers get it in their environment, no command line shows it, and
    /// `hive config check` prints it as ***.
    func testAPIKeyFromTheConfigFile_works_andIsInNoCommandLine() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("hive-apikey-\(UUID().uuidString.prefix(8)).yaml")
        try Data("api-key: \(Self.key)\n".utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        defer { try? FileManager.default.removeItem(at: file) }
        let (hive, port) = try startHive(workers: 1, ["--config", file.path], environment: ["HIVE_API_KEY": ""])
        XCTAssertEqual(try postJSON(try HTTPTestClient(port: port), #"{"channel": "news", "data": "x"}"#).status, 200)
        for pid in [try XCTUnwrap(hive.pid)] + hive.workerPIDs() {
            let commandLine = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
            XCTAssertNil(commandLine.range(of: Data(Self.key.utf8)), "the key is in the command line of \(pid)")
        }
        let check = try HiveCLI.run(["config", "check", file.path], environment: ["HIVE_API_KEY": ""])
        XCTAssertEqual(check.status, 0, check.stderr)
        XCTAssertTrue(check.stdout.contains("api-key") && !check.stdout.contains(Self.key), check.stdout)
    }
}
