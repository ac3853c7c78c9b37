import Foundation
import HiveIPC
import XCTest

/// Request smuggling (RFC 9112 sections 6.1, 6.3, 7.1, 5.2, 2.2): a request whose framing two parsers could read
/// differently is refused with 400 and the connection closed, so whatever a front proxy took for a second request
/// is never served. And the 1 KB POST echo of `make bench` (http_post_echo), byte for byte.
final class HTTPSmugglingIntegrationTests: LimitsTestCase {
    /// A request that smuggles `GET /hello` after a body only one reading of the framing sees.
    private static let smuggled = "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"

    /// Sends `raw` on a new connection and reads until the server closes: exactly one response, a 400, and the
    /// connection closed without serving anything that followed.
    private func assertRefused(
        _ hive: Launched, _ raw: String, _ what: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let (client, worker) = try openHTTP(hive)
        sendIgnoringEarlyClose(client, raw)
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 400, "\(what): \(response)", file: file, line: line)
        XCTAssertTrue(client.isClosedByPeer(within: 3), "\(what): the connection stays open after the 400",
                      file: file, line: line)
        let rest = (try? client.socket.readToEnd(deadline: TestDeadline(seconds: 1), waitingFor: "the close")) ?? []
        XCTAssertFalse(String(decoding: rest, as: UTF8.self).contains("HTTP/1."),
                       "\(what): a second response followed the 400", file: file, line: line)
        try assertWorkerStillServes(hive, worker: worker, file: file, line: line)
    }

    func testContentLengthAndTransferEncodingTogether_isRefused() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        try assertRefused(
            hive, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "0\r\n\r\n" + Self.smuggled, "Content-Length with Transfer-Encoding")
        try assertRefused(
            hive, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
                + "0\r\n\r\n" + Self.smuggled, "Transfer-Encoding with Content-Length")
    }

    func testDuplicateContentLength_withDifferentValues_isRefused() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        try assertRefused(
            hive, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 33\r\n\r\n" + Self.smuggled,
            "two Content-Length headers")
        try assertRefused(
            hive, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 33\r\n\r\n" + Self.smuggled,
            "a Content-Length list")
    }

    func testBadChunkSizes_areRefused() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let head = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        for (size, what) in [
            ("zz", "a chunk size that is not hex"), ("-1", "a negative chunk size"),
            ("1FFFFFFFFFFFFFFFFF", "a chunk size over 64 bits"), (" 5", "a chunk size after a space"),
        ] {
            try assertRefused(hive, head + "\(size)\r\nhello\r\n0\r\n\r\n" + Self.smuggled, what)
        }
    }

    /// RFC 9112 section 5.2: a server must refuse obs-fold with 400 or unfold it; refusing leaves no room for a
    /// proxy that unfolds differently.
    func testObsoleteLineFolding_isRefused() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        try assertRefused(
            hive, "POST /echo HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n Content-Length: 33\r\n\r\n" + Self.smuggled,
            "a folded header line")
        try assertRefused(
            hive, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\t33\r\n\r\n" + Self.smuggled,
            "a folded Content-Length")
    }

    /// A bare LF where CRLF belongs: some proxies end a line there and some do not.
    func testBareLineFeed_isRefused() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        try assertRefused(hive, "GET /hello HTTP/1.1\nHost: a\r\n\r\n", "a bare LF after the request line")
        try assertRefused(
            hive, "POST /echo HTTP/1.1\r\nHost: a\r\nX-A: b\nContent-Length: 33\r\n\r\n" + Self.smuggled,
            "a bare LF inside the headers")
        try assertRefused(
            hive, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"
                + Self.smuggled, "a bare LF after a chunk size")
    }

    /// The control for the refusals above: the same requests framed once are served, and the connection goes on.
    func testPostEcho_of1KB_comesBackWhole_onAKeepAliveConnection() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        let body = (0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        for round in 0..<3 {
            let response = try client.request(method: "POST", path: "/echo", body: body)
            XCTAssertEqual(response.status, 200, "round \(round): \(response)")
            XCTAssertEqual(response.header("Content-Type"), "application/octet-stream")
            XCTAssertEqual(response.header("Content-Length"), "1024")
            XCTAssertEqual(response.body, body, "round \(round): the body did not come back whole")
        }
        // Chunked, then a pipelined GET in the same send.
        try client.send(raw: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
            + "2;x=y\r\nde\r\n0\r\n\r\n" + Self.smuggled)
        let chunked = try client.readResponse(timeout: 3)
        XCTAssertEqual(chunked.status, 200, "\(chunked)")
        XCTAssertEqual(chunked.text, "abcde")
        let next = try client.readResponse(timeout: 3)
        XCTAssertEqual(next.status, 200, "\(next)")
        XCTAssertEqual(next.text, "hello")
    }
}
