import Foundation
import JWTKit
import TokenTestSupport
import XCTest

/// `hive start --jwt-secret` / `--jwt-public-key` with the real binary: a WebSocket handshake needs a valid JWT
/// (401 otherwise), may ask only for the channels its token allows (403 otherwise), and plain HTTP is unaffected.
final class TokenIntegrationTests: HiveTestCase {
    private typealias Claims = TokenTestKeys.Claims

    private func startWithSecret(workers: Int = 1) throws -> Int {
        try startHive(workers: workers, environment: ["HIVE_JWT_SECRET": TokenTestKeys.secret]).port
    }

    /// The handshake's refusal: its status and body (the client throws on anything but 101).
    private func refusal(_ port: Int, path: String = "/", headers: [String: String] = [:]) throws -> HTTPTestResponse {
        do {
            let client = try WebSocketTestClient(port: port, path: path, headers: headers, timeout: 5)
            client.close()
        } catch TestClientError.upgradeRejected(_, let response) {
            return response
        }
        throw TestClientError.misuse("the handshake to \(path) was accepted")
    }

    func testWithASecret_noToken_forgedOrExpired_get401_sayingWhy() async throws {
        let port = try startWithSecret()
        let missing = try refusal(port)
        XCTAssertEqual(missing.status, 401)
        XCTAssertTrue(missing.text.contains("requires a JWT"), missing.text)
        XCTAssertEqual(missing.header("WWW-Authenticate"), "Bearer realm=\"hive\"")

        let forged = try await TokenTestKeys.hs256(Claims(), secret: "not-the-server-secret-but-long-enough!!")
        let bad = try refusal(port, path: "/?token=\(forged)")
        XCTAssertEqual(bad.status, 401)
        XCTAssertTrue(bad.text.contains("signature does not match"), bad.text)
        XCTAssertFalse(bad.text.contains(forged.split(separator: ".")[2]), "the body must not echo the token")

        let expired = try await TokenTestKeys.hs256(Claims(exp: Date().addingTimeInterval(-10)))
        let late = try refusal(port, headers: ["Authorization": "Bearer \(expired)"])
        XCTAssertEqual(late.status, 401)
        XCTAssertTrue(late.text.contains("expired"), late.text)

        let garbage = try refusal(port, path: "/?token=abc")
        XCTAssertEqual(garbage.status, 401)
        XCTAssertTrue(garbage.text.contains("not a JWT"), garbage.text)
    }

    func testValidToken_inTheQueryOrTheBearerHeader_opens_andMessagesFlow_asItsSubject() async throws {
        let (hive, port) = try startHive(workers: 1, environment: ["HIVE_JWT_SECRET": TokenTestKeys.secret])
        let token = try await TokenTestKeys.hs256(Claims(sub: "alice"))
        let byQuery = try WebSocketTestClient(port: port, path: "/?token=\(token)", timeout: 5)
        try byQuery.sendText(action("hello"))
        XCTAssertEqual(try byQuery.receiveMessage(), .text("hello"))
        let byHeader = try WebSocketTestClient(port: port, headers: ["Authorization": "Bearer \(token)"], timeout: 5)
        try byHeader.sendText(action("hello"))
        XCTAssertEqual(try byHeader.receiveMessage(), .text("hello"))
        // The token's subject is each connection's user: in `hive connections`, and `push --user` reaches both.
        let runDir = hive.directory.appendingPathComponent("run").path
        let rows = try XCTUnwrap(try HiveCLI.json(["connections", "--json", "--run-dir", runDir]) as? [[String: Any]])
        XCTAssertEqual(rows.filter { $0["protocol"] as? String == "websocket" }.compactMap { $0["user"] as? String },
                       ["alice", "alice"], "\(rows)")
        _ = try HiveCLI.run(["push", "--user", "alice", "for alice", "--run-dir", runDir])
        XCTAssertEqual(try byQuery.receiveMessage(), .text("for alice"))
        XCTAssertEqual(try byHeader.receiveMessage(), .text("for alice"))
        // Plain HTTP, on the same port and on a keep-alive connection, needs no token.
        let http = try HTTPTestClient(port: port)
        XCTAssertEqual(try http.request(path: "/hello").status, 200)
        XCTAssertEqual(try http.request(path: "/hello").text, "hello")
    }

    func testChannels_outsideTheClaim_get403AtConnect_andForbiddenThroughTheAPI() async throws {
        let port = try startWithSecret()
        let token = try await TokenTestKeys.hs256(Claims(sub: "alice", channels: ["news"]))
        let denied = try refusal(port, path: "/?channels=news,sport&token=\(token)")
        XCTAssertEqual(denied.status, 403)
        XCTAssertTrue(denied.text.contains("does not allow channel sport"), denied.text)

        let client = try WebSocketTestClient(port: port, path: "/?channels=news&token=\(token)", timeout: 5)
        try client.sendText(action("subscribe", ["content": "news"]))
        XCTAssertEqual(try client.receiveMessage(), .text("subscribed to news"), "a channel of the claim is allowed")
        try client.sendText(action("subscribe", ["content": "sport"]))
        guard case .text(let answer) = try client.receiveMessage() else { return XCTFail("no answer") }
        XCTAssertTrue(answer.hasPrefix("error: forbidden: connection "), answer)
        XCTAssertTrue(answer.contains("may not join channel sport"), answer)

        let noClaim = try await TokenTestKeys.hs256(Claims(sub: "bob", channels: nil))
        XCTAssertEqual(try refusal(port, path: "/?channels=news&token=\(noClaim)").status, 403,
                       "a token without a channels claim allows no channel")
        let bob = try WebSocketTestClient(port: port, path: "/?token=\(noClaim)", timeout: 5)
        try bob.sendText(action("subscribe", ["content": "news"]))
        guard case .text(let bobAnswer) = try bob.receiveMessage() else { return XCTFail("no answer") }
        XCTAssertTrue(bobAnswer.hasPrefix("error: forbidden:"), bobAnswer)
    }

    func testRS256PublicKeyFile_acceptsItsTokens_andRefusesOthers() async throws {
        let path = try writeFile("public.pem", try TokenTestKeys.rsaPublicPEM())
        let (_, port) = try startHive(workers: 1, ["--jwt-public-key", path])
        let token = try await TokenTestKeys.rs256(Claims(sub: "bob"))
        let client = try WebSocketTestClient(port: port, path: "/?token=\(token)", timeout: 5)
        try client.sendText(action("hello"))
        XCTAssertEqual(try client.receiveMessage(), .text("hello"))
        let hs = try await TokenTestKeys.hs256(Claims())
        let refused = try refusal(port, path: "/?token=\(hs)")
        XCTAssertEqual(refused.status, 401)
        XCTAssertTrue(refused.text.contains("accepts RS256 only"), refused.text)
    }

    func testWithoutAKey_connectionsAreAnonymous() throws {
        let (_, port) = try startHive(workers: 1)
        let client = try WebSocketTestClient(port: port, path: "/?channels=news", timeout: 5)
        try client.sendText(action("subscribe", ["content": "sport"]))
        XCTAssertEqual(try client.receiveMessage(), .text("subscribed to sport"))
    }

    func testBadKeys_stopTheStart_withAMessageNamingTheFile() throws {
        let missing = try HiveCLI.run(["start", "--port", "0", "--redis", "none", "--jwt-public-key", "/nonexistent/key.pem"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("--jwt-public-key: cannot read \"/nonexistent/key.pem\""), missing.stderr)

        let garbled = try writeFile("garbled.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        let bad = try HiveCLI.run(["start", "--port", "0", "--redis", "none", "--jwt-public-key", garbled])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains(garbled) && bad.stderr.contains("neither an RSA key"), bad.stderr)

        let short = try HiveCLI.run(["start", "--port", "0", "--redis", "none"], environment: ["HIVE_JWT_SECRET": "short"])
        XCTAssertNotEqual(short.status, 0)
        XCTAssertTrue(short.stderr.contains("at least 32 bytes"), short.stderr)
        XCTAssertFalse(short.stderr.contains("short\""), "the secret is not repeated: \(short.stderr)")
    }

    /// The secret from a --config file reaches the workers in their environment: in no command line, no log line.
    func testSecretFromTheConfigFile_isInNoCommandLineAndNoLog() async throws {
        let config = try writeFile("hive.yaml", "jwt-secret: \"\(TokenTestKeys.secret)\"\nlog-level: debug\n")
        let (hive, port) = try startHive(workers: 1, ["--config", config], environment: ["HIVE_JWT_SECRET": ""])
        let token = try await TokenTestKeys.hs256(Claims())
        let client = try WebSocketTestClient(port: port, path: "/?token=\(token)", timeout: 5)
        try client.sendText(action("hello"))
        XCTAssertEqual(try client.receiveMessage(), .text("hello"))
        XCTAssertEqual(try refusal(port).status, 401)
        let master = try XCTUnwrap(hive.pid)
        for pid in [master] + hive.workerPIDs() {
            let commandLine = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
            XCTAssertNil(commandLine.range(of: Data(TokenTestKeys.secret.utf8)), "the secret is in the command line of \(pid)")
        }
        XCTAssertFalse(hive.log().contains(TokenTestKeys.secret), "the secret is in the log")
        XCTAssertFalse(hive.log().contains(token.split(separator: ".")[2]), "the token is in the log")
    }

    private func writeFile(_ name: String, _ text: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hive-token-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }
}
