#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HiveIPC
import XCTest

/// The WebSocket opening handshake against the real binary (see LimitsTestCase): which pages may open a WebSocket
/// (`--allowed-origin`, cross-site WebSocket hijacking) and what a malformed handshake gets (RFC 6455 section 4.2).
final class HandshakeIntegrationTests: LimitsTestCase {
    private static let validKey = "dGhlIHNhbXBsZSBub25jZQ=="

    /// Sends an upgrade request to /echo, with `changes` replacing (or, with nil, removing) the usual headers, and
    /// reads the answer.
    private func handshake(
        _ hive: Launched, requestLine: String = "GET /echo HTTP/1.1", _ changes: [String: String?] = [:]
    ) throws -> (HTTPTestResponse, HTTPTestClient, worker: Int) {
        var fields: [(String, String)] = [
            ("Host", "127.0.0.1:\(hive.port)"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", Self.validKey), ("Sec-WebSocket-Version", "13"),
        ]
        for (name, value) in changes.sorted(by: { $0.key < $1.key }) {
            fields.removeAll { $0.0 == name }
            if let value { fields.append((name, value)) }
        }
        let (client, worker) = try openHTTP(hive)
        sendIgnoringEarlyClose(client, requestLine + "\r\n" + fields.map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n")
        return (try client.readResponse(timeout: 3), client, worker)
    }

    /// A refused handshake: `status`, a body that says why (containing `mentions`), then the close.
    private func assertRefused(
        _ result: (HTTPTestResponse, HTTPTestClient, worker: Int), _ status: Int, mentioning mentions: [String],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let (response, client, _) = result
        XCTAssertEqual(response.status, status, "\(response)", file: file, line: line)
        for text in mentions {
            XCTAssertTrue(response.text.contains(text), "the body should mention \(text): \(response)", file: file,
                          line: line)
        }
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close", file: file, line: line)
        XCTAssertTrue(client.isClosedByPeer(within: 3), "still open after the \(status)", file: file, line: line)
    }

    // MARK: Origin (--allowed-origin)

    func testOrigin_fromAnotherSiteOrNull_isRefused403NamingTheOriginAndTheOption() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let evil = try handshake(hive, ["Origin": "https://evil.example"])
        assertRefused(evil, 403, mentioning: ["\"https://evil.example\"", "--allowed-origin", "127.0.0.1:\(hive.port)"])
        try waitForCounter(hive, worker: evil.worker, .protocolErrors, atLeast: 1)
        try hive.process.waitForLog(containing: "WebSocket handshake refused")
        XCTAssertTrue(hive.process.log().contains("https://evil.example"), "the log names the refused origin")

        assertRefused(try handshake(hive, ["Origin": "null"]), 403, mentioning: ["\"null\""])
        // Same host, other port: another origin.
        assertRefused(try handshake(hive, ["Origin": "http://127.0.0.1:\(hive.port + 1)"]), 403, mentioning: [])
        try assertWorkerStillServes(hive, worker: evil.worker)
    }

    /// The control: a page served by this server (Origin = Host, in any case) and a client without Origin connect.
    func testOrigin_ofTheServersOwnHostOrAbsent_upgrades() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        for headers in [["Origin": "http://127.0.0.1:\(hive.port)"], ["Origin": "HTTP://127.0.0.1:\(hive.port)"], [:]] {
            let client = try WebSocketTestClient(port: hive.port, path: "/echo", headers: headers, timeout: 3)
            try client.sendText("same origin")
            XCTAssertEqual(try client.receiveMessage(), .text("same origin"), "\(headers)")
        }
    }

    func testOrigin_whenAllowed_upgradesThoseOriginsOnly() throws {
        let hive = try launch(["--allowed-origin", "https://app.example", "--allowed-origin", "null"])
        defer { _ = try? hive.process.stop() }
        for origin in ["https://app.example", "null"] {
            let client = try WebSocketTestClient(
                port: hive.port, path: "/echo", headers: ["Origin": origin], timeout: 3)
            try client.sendText(origin)
            XCTAssertEqual(try client.receiveMessage(), .text(origin))
        }
        let evil = try handshake(hive, ["Origin": "https://evil.example"])
        assertRefused(evil, 403, mentioning: ["https://evil.example"])
        assertRefused(try handshake(hive, ["Origin": "http://app.example"]), 403, mentioning: [])
    }

    func testOrigin_whenStarIsAllowed_upgradesAnyOrigin() throws {
        let hive = try launch(["--allowed-origin", "*"])
        defer { _ = try? hive.process.stop() }
        for origin in ["https://evil.example", "null"] {
            let client = try WebSocketTestClient(
                port: hive.port, path: "/echo", headers: ["Origin": origin], timeout: 3)
            try client.sendText("ok")
            XCTAssertEqual(try client.receiveMessage(), .text("ok"))
        }
    }

    func testStart_withAnAllowedOriginThatIsNotAnOrigin_failsNamingIt() throws {
        let bad = try HiveProcess(arguments: ["--port", "0", "--redis", "none",
                                              "--allowed-origin", "https://app.example/chat"])
        XCTAssertThrowsError(try bad.start(readyTimeout: 10))
        XCTAssertEqual(bad.exitStatus, 1)
        XCTAssertTrue(bad.log().contains("--allowed-origin must be an origin"), bad.log())
        XCTAssertTrue(bad.log().contains("\"https://app.example/chat\""), bad.log())
    }

    // MARK: Malformed handshakes (RFC 6455 section 4.2)

    func testHandshake_withAMissingShortOrNonBase64Key_is400SayingSo() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let short = try handshake(hive, ["Sec-WebSocket-Key": "c2hvcnQ="])
        assertRefused(short, 400, mentioning: ["Sec-WebSocket-Key must be 16 bytes in base64", "c2hvcnQ="])
        try waitForCounter(hive, worker: short.worker, .protocolErrors, atLeast: 1)
        assertRefused(try handshake(hive, ["Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!!!"]), 400,
                      mentioning: ["16 bytes in base64"])
        assertRefused(try handshake(hive, ["Sec-WebSocket-Key": nil]), 400, mentioning: ["Sec-WebSocket-Key"])
        try assertWorkerStillServes(hive, worker: short.worker)
    }

    func testHandshake_withAnotherVersion_is426WithVersion13() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let result = try handshake(hive, ["Sec-WebSocket-Version": "8"])
        assertRefused(result, 426, mentioning: ["version 13"])
        XCTAssertEqual(result.0.header("Sec-WebSocket-Version"), "13", "\(result.0)")
    }

    func testHandshake_overPOSTOrHTTP10OrWithoutConnectionUpgrade_is400() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        assertRefused(try handshake(hive, requestLine: "POST /echo HTTP/1.1", ["Content-Length": "0"]), 400,
                      mentioning: ["GET", "POST"])
        assertRefused(try handshake(hive, requestLine: "GET /echo HTTP/1.0"), 400, mentioning: ["HTTP/1.1", "HTTP/1.0"])
        assertRefused(try handshake(hive, ["Connection": nil]), 400, mentioning: ["Connection: Upgrade"])
        assertRefused(try handshake(hive, ["Connection": "keep-alive"]), 400, mentioning: ["Connection: Upgrade"])
        assertRefused(try handshake(hive, ["Host": nil]), 400, mentioning: ["Host"])
    }

    /// The controls: a request without Upgrade stays plain HTTP, and a valid handshake to a path the application
    /// does not upgrade is answered by the application as a plain request (the demo's 404), not refused.
    func testHandshake_plainRequestsAndPathsTheApplicationRefuses_stayPlainHTTP() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        let plain = try client.request(path: "/echo")
        XCTAssertEqual(plain.status, 404, "\(plain)")
        XCTAssertNotNil(plain.header("X-Hive-Worker"), "answered by the application: \(plain)")
        let (response, _, _) = try handshake(hive, requestLine: "GET /not-a-websocket HTTP/1.1")
        XCTAssertEqual(response.status, 404, "\(response)")
        XCTAssertNotNil(response.header("X-Hive-Worker"), "answered by the application: \(response)")
    }

    func testHandshake_withAnAbsoluteTarget_upgradesByItsPath() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (response, _, _) = try handshake(hive, requestLine: "GET http://127.0.0.1:\(hive.port)/echo HTTP/1.1")
        XCTAssertEqual(response.status, 101, "\(response)")
    }
}
