#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HiveIPC
import XCTest

/// HTTP limits and bad input against the real binary (see LimitsTestCase).
final class HTTPLimitsIntegrationTests: LimitsTestCase {
    // MARK: HTTP: request head size (--max-header-size)

    func testHeaders_whenOverLimit_areAnswered431AndClosed() throws {
        let hive = try launch()   // default --max-header-size: 8 KiB
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        var head = "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for index in 0..<20 {
            head += "X-Filler-\(index): \(String(repeating: "a", count: 1024))\r\n"
        }
        sendIgnoringEarlyClose(client, head + "\r\n")

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 431, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 431")
        try waitForCounter(hive, worker: worker, .protocolErrors, atLeast: 1)
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// The control for the test above: a head of about 7 KiB is under the default limit and is served.
    func testHeaders_justUnderLimit_areServed() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        var headers: [String: String] = [:]
        for index in 0..<7 {
            headers["X-Filler-\(index)"] = String(repeating: "a", count: 1000)
        }
        let response = try client.request(path: "/hello", headers: headers)
        XCTAssertEqual(response.status, 200, "\(response)")
        XCTAssertEqual(response.text, "hello")
    }

    /// --max-header-size is honoured, not just NIO's default: 3 KiB of headers pass under the default (see the
    /// test above) but not under 2 KiB.
    func testHeaders_overConfiguredLimit_areAnswered431() throws {
        let hive = try launch(["--max-header-size", "2048"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        var head = "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for index in 0..<3 {
            head += "X-Filler-\(index): \(String(repeating: "a", count: 1000))\r\n"
        }
        sendIgnoringEarlyClose(client, head + "\r\n")
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 431, "\(response)")
        XCTAssertTrue(client.isClosedByPeer(within: 2))
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// A request target alone over the limit. The server counts the request line into --max-header-size (its help
    /// text says "request line plus headers ... more is answered 431"), so 431, not 414 URI Too Long.
    func testURI_whenOverHeaderLimit_isAnswered431AndClosed() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        let uri = "/" + String(repeating: "u", count: 9000)
        sendIgnoringEarlyClose(client, "GET \(uri) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 431, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 431")
        try assertWorkerStillServes(hive, worker: worker)
    }

    // MARK: HTTP: body size (--max-body-size)

    func testBody_whenContentLengthOverLimit_isAnswered413AndClosed() throws {
        let hive = try launch(["--max-body-size", "1024"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        sendIgnoringEarlyClose(
            client,
            "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000\r\n\r\n"
                + String(repeating: "b", count: 2000))

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 413, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 413")
        try waitForCounter(hive, worker: worker, .protocolErrors, atLeast: 1)
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// The control: a body of exactly --max-body-size reaches the application (which answers POST /hello with
    /// 404), and the connection stays usable.
    func testBody_atLimit_isAccepted() throws {
        let hive = try launch(["--max-body-size", "1024"])
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        let response = try client.request(
            method: "POST", path: "/hello", body: [UInt8](repeating: 0x62, count: 1024))
        XCTAssertEqual(response.status, 404, "the application's answer, not a limit's: \(response)")
        let again = try client.request(path: "/hello")
        XCTAssertEqual(again.status, 200)
        XCTAssertEqual(again.text, "hello")
    }

    /// No Content-Length to check up front: the limit must catch the chunk that crosses it, and not before.
    func testBody_whenChunkedGrowsPastLimit_isAnswered413AndClosed() throws {
        let hive = try launch(["--max-body-size", "1024"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        let chunk = "200\r\n" + String(repeating: "c", count: 512) + "\r\n"
        try client.send(raw: "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        try client.send(raw: chunk + chunk)   // 1024 bytes: still within the limit
        XCTAssertFalse(client.receivedAnything(within: 0.3), "answered before the body went over the limit")
        sendIgnoringEarlyClose(client, chunk)  // 1536 bytes

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 413, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 413")
        try assertWorkerStillServes(hive, worker: worker)
    }

    // MARK: HTTP: malformed requests

    func testRequestLine_whenMalformed_isAnswered400AndClosed() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        sendIgnoringEarlyClose(client, "GARBAGE\r\n\r\n")

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 400, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 400")
        try waitForCounter(hive, worker: worker, .protocolErrors, atLeast: 1)
        try assertWorkerStillServes(hive, worker: worker)
    }

    func testHeaderLine_whenMalformed_isAnswered400AndClosed() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        sendIgnoringEarlyClose(client, "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nthis line has no colon\r\n\r\n")

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 400, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 400")
        try assertWorkerStillServes(hive, worker: worker)
    }

    // MARK: HTTP: timeouts

    /// Slowloris: half a request head, then silence. --http-idle-timeout is long, so only --handshake-timeout
    /// can close it.
    func testHandshake_whenHeadIncomplete_isClosedAfterHandshakeTimeout() throws {
        let hive = try launch(["--handshake-timeout", "1", "--http-idle-timeout", "60"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        let start = ContinuousClock.now
        try client.send(raw: "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        XCTAssertTrue(client.isClosedByPeer(within: 3), "a half-sent head kept the connection open for 3 s")
        let elapsed = seconds(since: start)
        XCTAssertGreaterThan(elapsed, 0.5, "closed long before --handshake-timeout 1")
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// The other side of the same timeout: a slow client that completes its head in time is served.
    func testHandshake_whenHeadCompletesInTime_isServed() throws {
        let hive = try launch(["--handshake-timeout", "1", "--http-idle-timeout", "60"])
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        try client.send(raw: "GET /hello HTTP/1.1\r\n")
        usleep(400_000)   // slow, but within the 1 s budget
        try client.send(raw: "Host: 127.0.0.1\r\n\r\n")
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 200, "\(response)")
        XCTAssertEqual(response.text, "hello")
    }

    /// A head followed by a body that stalls is closed too: every body chunk must come within
    /// --handshake-timeout of the previous one, so nobody holds a connection by promising a body never sent.
    func testBody_whenStalledAfterHead_isClosedByATimeout() throws {
        let hive = try launch(["--handshake-timeout", "1", "--http-idle-timeout", "60"])
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        try client.send(raw: "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nabc")
        XCTAssertTrue(client.isClosedByPeer(within: 3), "a stalled body kept the connection open for 3 s")
    }

    /// --http-idle-timeout: after a response, an idle keep-alive connection is closed. The handshake timeout is
    /// long here, so only the idle timer can close it.
    func testKeepAlive_whenIdleAfterResponse_isClosedAfterIdleTimeout() throws {
        let hive = try launch(["--http-idle-timeout", "1", "--handshake-timeout", "30"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        let response = try client.request(path: "/hello")
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("Connection")?.lowercased(), "keep-alive")
        let start = ContinuousClock.now

        XCTAssertTrue(client.isClosedByPeer(within: 3), "an idle keep-alive connection stayed open for 3 s")
        XCTAssertGreaterThan(seconds(since: start), 0.5, "closed long before --http-idle-timeout 1")
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// The idle timer restarts with every request: three requests 0.6 s apart (1.8 s in all) on one connection
    /// with a 1 s idle timeout all succeed.
    func testKeepAlive_whenActiveWithinIdleTimeout_staysOpen() throws {
        let hive = try launch(["--http-idle-timeout", "1", "--handshake-timeout", "30"])
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        var connections: Set<String> = []
        for round in 0..<3 {
            if round > 0 { usleep(600_000) }
            let response = try client.request(path: "/hello")
            XCTAssertEqual(response.status, 200, "request \(round + 1)")
            connections.insert(response.header("X-Hive-Connection") ?? "?")
        }
        XCTAssertEqual(connections.count, 1, "every request went over the same connection")
    }
}
