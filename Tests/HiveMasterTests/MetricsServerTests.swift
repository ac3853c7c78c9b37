import CHiveShims
import Glibc
import HiveIPC
import XCTest

@testable import HiveMaster

/// The metrics server without a master: a socketpair stands for a scraper, so the test controls how much the
/// "network" takes at a time.
final class MetricsServerTests: XCTestCase {
    private func server() throws -> MetricsServer {
        try MetricsServer(address: ListenAddress(host: "127.0.0.1", port: 0))
    }

    /// (server end, scraper end); the server end takes at most about `sendBuffer` bytes at a time.
    private func pair(sendBuffer: Int32 = 4096) -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        precondition(socketpair(AF_UNIX, CHiveShims_SOCK_STREAM, 0, &fds) == 0)
        var size = sendBuffer
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        return (fds[0], fds[1])
    }

    private func write(_ fd: Int32, _ text: String) {
        XCTAssertEqual(Array(text.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }, text.utf8.count)
    }

    /// Everything available now, without waiting; nil once the peer closed and nothing is left.
    private func drain(_ fd: Int32) -> [UInt8]? {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            if n > 0 { out += chunk[0..<n]; continue }
            return n == 0 && out.isEmpty ? nil : out
        }
    }

    func testALargePage_isSentAsTheSocketTakesIt_withoutBlocking_andCompletely() throws {
        let server = try server()
        defer { server.close() }
        let (served, scraper) = pair()
        defer { Glibc.close(scraper) }
        server.adopt(served, now: 0)
        write(scraper, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let page = String(repeating: "hive_x_total 1\n", count: 20_000)  // 300 KB, far over the socket buffer
        var renders = 0
        server.serve(served) { renders += 1; return page }
        XCTAssertEqual(server.events(of: served), Int16(POLLOUT), "the rest waits for POLLOUT")
        var received: [UInt8] = []
        var rounds = 0
        while let bytes = drain(scraper) {
            received += bytes
            rounds += 1
            XCTAssertLessThan(rounds, 10_000, "the server stopped sending")
            if rounds >= 10_000 { break }
            server.serve(served) { renders += 1; return page }  // as on POLLOUT
        }
        XCTAssertEqual(renders, 1, "rendered once per request")
        XCTAssertGreaterThan(rounds, 2, "the page went out in several sends")
        let text = String(decoding: received, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 200 OK\r\n"), String(text.prefix(100)))
        XCTAssertTrue(text.contains("Content-Length: \(page.utf8.count)\r\n"))
        XCTAssertTrue(text.hasSuffix("\r\n\r\n" + page), "the whole page arrived, in order")
        XCTAssertTrue(server.clients.isEmpty, "closed once sent")
    }

    func testARequestInPieces_isAnsweredOnceComplete() throws {
        let server = try server()
        defer { server.close() }
        let (served, scraper) = pair()
        defer { Glibc.close(scraper) }
        server.adopt(served, now: 0)
        write(scraper, "GET /metr")
        server.serve(served) { "x 1\n" }
        XCTAssertEqual(server.events(of: served), Int16(POLLIN), "still reading the request")
        write(scraper, "ics HTTP/1.1\r\n\r\n")
        server.serve(served) { "x 1\n" }
        XCTAssertTrue(String(decoding: drain(scraper) ?? [], as: UTF8.self).hasSuffix("\r\n\r\nx 1\n"))
    }

    func testAClientPastItsDeadline_isDropped() throws {
        let server = try server()
        defer { server.close() }
        let (served, scraper) = pair()
        defer { Glibc.close(scraper) }
        server.adopt(served, now: 1_000)
        server.expire(now: 1_000 + MetricsServer.clientDeadline - 1)
        XCTAssertEqual(server.clients.count, 1)
        server.expire(now: 1_000 + MetricsServer.clientDeadline)
        XCTAssertTrue(server.clients.isEmpty)
        XCTAssertNil(drain(scraper), "closed")
    }

    func testRespond_statusPerRequest() {
        func status(_ head: String) -> String {
            let response = MetricsServer.respond(to: Array(head.utf8)) { "page\n" }
            return String(decoding: response.prefix { $0 != 0x0D }, as: UTF8.self)
        }
        XCTAssertEqual(status("GET /metrics HTTP/1.1\r\nHost: x"), "HTTP/1.1 200 OK")
        XCTAssertEqual(status("GET /metrics?name[]=x HTTP/1.0"), "HTTP/1.1 200 OK")
        XCTAssertEqual(status("HEAD /metrics HTTP/1.1"), "HTTP/1.1 200 OK")
        XCTAssertEqual(status("GET / HTTP/1.1"), "HTTP/1.1 404 Not Found")
        XCTAssertEqual(status("GET /metrics/ HTTP/1.1"), "HTTP/1.1 404 Not Found")
        XCTAssertEqual(status("DELETE /metrics HTTP/1.1"), "HTTP/1.1 405 Method Not Allowed")
        XCTAssertEqual(status("GET /metrics"), "HTTP/1.1 400 Bad Request")
        XCTAssertEqual(status("GET metrics HTTP/1.1"), "HTTP/1.1 400 Bad Request")
        XCTAssertEqual(status(""), "HTTP/1.1 400 Bad Request")
        XCTAssertEqual(status("GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000)),
                       "HTTP/1.1 431 Request Header Fields Too Large")
        let head = String(decoding: MetricsServer.respond(to: Array("HEAD /metrics HTTP/1.1".utf8)) { "page\n" }, as: UTF8.self)
        XCTAssertTrue(head.hasSuffix("Content-Length: 5\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"), head)
    }
}
