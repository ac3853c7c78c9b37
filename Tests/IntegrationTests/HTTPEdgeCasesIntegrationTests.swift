#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HiveIPC
import XCTest

/// HTTP/1.1 details a server must get right (RFC 9110, RFC 9112) and the body deadline (--body-timeout), against
/// the real binary (see LimitsTestCase).
final class HTTPEdgeCasesIntegrationTests: LimitsTestCase {
    // MARK: Host (RFC 9112 section 3.2)

    func testHost_whenMissingFromHTTP11_isAnswered400() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        sendIgnoringEarlyClose(client, "GET /hello HTTP/1.1\r\n\r\n")
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 400, "\(response)")
        XCTAssertTrue(response.text.contains("Host"), "\(response)")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 400")
        try waitForCounter(hive, worker: worker, .protocolErrors, atLeast: 1)

        let (twice, _) = try openHTTP(hive)
        sendIgnoringEarlyClose(twice, "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        XCTAssertEqual(try twice.readResponse(timeout: 3).status, 400)
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// The control: HTTP/1.0 has no Host requirement.
    func testHost_whenMissingFromHTTP10_isServed() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        try client.send(raw: "GET /hello HTTP/1.0\r\n\r\n")
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 200, "\(response)")
        XCTAssertEqual(response.text, "hello")
    }

    // MARK: Absolute-form request target (RFC 9112 section 3.2.2)

    func testAbsoluteURI_isServedByItsPath() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        let authority = "127.0.0.1:\(hive.port)"
        try client.send(raw: "GET http://\(authority)/hello?x=1 HTTP/1.1\r\nHost: \(authority)\r\n\r\n")
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 200, "\(response)")
        XCTAssertEqual(response.text, "hello")
        let again = try client.request(path: "/hello")
        XCTAssertEqual(again.status, 200, "the connection stays usable")
    }

    // MARK: Expect (RFC 9110 section 10.1.1)

    /// The client waits for 100 Continue before it sends the body, as curl does for large uploads.
    func testExpect100Continue_getsContinueBeforeTheBody_thenTheResponse() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        try client.send(
            raw: "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        let interim = try client.readResponse(timeout: 3)
        XCTAssertEqual(interim.status, 100, "\(interim)")
        try client.send(raw: "hello")
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 404, "the application's answer to POST /hello: \(response)")
        XCTAssertNotNil(response.header("X-Hive-Worker"), "\(response)")
        XCTAssertEqual(try client.request(path: "/hello").status, 200, "the connection stays usable")
    }

    func testExpect100Continue_whenBodyIsTooLarge_isAnswered417WithoutContinue() throws {
        let hive = try launch(["--max-body-size", "1024"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        sendIgnoringEarlyClose(
            client, "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n")
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 417, "\(response)")
        XCTAssertTrue(response.text.contains("2000") && response.text.contains("1024"), "\(response)")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 417")
        try waitForCounter(hive, worker: worker, .protocolErrors, atLeast: 1)
    }

    func testExpect_whenUnknown_isAnswered417() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        sendIgnoringEarlyClose(client, "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: teapot\r\n\r\n")
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 417, "\(response)")
        XCTAssertTrue(response.text.contains("teapot"), "\(response)")
    }

    // MARK: Body deadline (--body-timeout)

    /// A body trickling one byte every 0.2 s never trips the per-chunk --handshake-timeout (10 s here), so only
    /// --body-timeout can end it: 408, then the close.
    func testBody_whenTricklingPastBodyTimeout_isAnswered408AndClosed() throws {
        let hive = try launch(["--body-timeout", "1", "--handshake-timeout", "10"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        let start = ContinuousClock.now
        try client.send(raw: "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n")
        // The pause between bytes is the wait for an answer.
        while !client.receivedAnything(within: 0.2), seconds(since: start) < 5 {
            sendIgnoringEarlyClose(client, "b")
        }
        let response = try client.readResponse(timeout: 3)
        let elapsed = seconds(since: start)
        XCTAssertEqual(response.status, 408, "\(response)")
        XCTAssertTrue(response.text.contains("--body-timeout"), "\(response)")
        XCTAssertTrue(client.isClosedByPeer(within: 3), "the connection stays open after the 408")
        XCTAssertGreaterThan(elapsed, 0.8, "answered long before --body-timeout 1")
        XCTAssertLessThan(elapsed, 4, "answered long after --body-timeout 1")
        try waitForCounter(hive, worker: worker, .protocolErrors, atLeast: 1)
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// A body that stops for --handshake-timeout gets the same 408, before --body-timeout, saying which limit.
    func testBody_whenStalledForHandshakeTimeout_isAnswered408NamingIt() throws {
        let hive = try launch(["--body-timeout", "30", "--handshake-timeout", "1"])
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        try client.send(raw: "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nabc")
        let response = try client.readResponse(timeout: 4)
        XCTAssertEqual(response.status, 408, "\(response)")
        XCTAssertTrue(response.text.contains("--handshake-timeout"), "\(response)")
        XCTAssertTrue(client.isClosedByPeer(within: 3), "the connection stays open after the 408")
    }

    /// The control: a slow body that is complete within --body-timeout reaches the application.
    func testBody_whenSlowButWithinBodyTimeout_isServed() throws {
        let hive = try launch(["--body-timeout", "3", "--handshake-timeout", "10"])
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        try client.send(raw: "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n")
        for byte in "hello" {
            XCTAssertFalse(client.receivedAnything(within: 0.2), "answered before the body was complete")
            try client.send(raw: String(byte))
        }
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 404, "the application's answer to POST /hello: \(response)")
        XCTAssertNotNil(response.header("X-Hive-Worker"), "\(response)")
    }
}
