import HTTPTypes
import HiveIPC
import NIOHTTP1
import XCTest

@testable import HiveWorker

/// `HTTPFastParser`: what it reads itself, and everything it must leave to NIO's decoder (hand-over).
final class HTTPFastParserTests: XCTestCase {
    private func outcome(_ text: String, maxHeaderSize: Int = 8192, maxBodySize: Int = 1024) -> HTTPFastParser.Outcome {
        Array(text.utf8).withUnsafeBytes {
            HTTPFastParser.parse($0, maxHeaderSize: maxHeaderSize, maxBodySize: maxBodySize)
        }
    }

    private func parse(
        _ text: String, maxHeaderSize: Int = 8192, maxBodySize: Int = 1024
    ) -> (request: ParsedHTTPRequest, consumed: Int)? {
        guard case .request(let request, let consumed) = outcome(
            text, maxHeaderSize: maxHeaderSize, maxBodySize: maxBodySize)
        else { return nil }
        return (request, consumed)
    }

    private func assertHandedOver(_ text: String, maxHeaderSize: Int = 8192, maxBodySize: Int = 1024,
                                  file: StaticString = #filePath, line: UInt = #line) {
        guard case .handOver = outcome(text, maxHeaderSize: maxHeaderSize, maxBodySize: maxBodySize) else {
            return XCTFail("not handed over: \(text.debugDescription)", file: file, line: line)
        }
    }

    func testGet_isReadWhole_withHostAsTheAuthority_andFieldsAsSent() throws {
        let text = "GET /hello?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\nx-one:  1\r\nX-Empty:\r\n\r\n"
        let (request, consumed) = try XCTUnwrap(parse(text + "GET /next"))
        XCTAssertEqual(consumed, text.utf8.count)
        XCTAssertEqual(request.method, .GET)
        XCTAssertEqual(request.head.method, .get)
        XCTAssertEqual(request.version, .http1_1)
        XCTAssertTrue(request.keepAlive)
        XCTAssertEqual(request.head.path, "/hello?x=1")
        XCTAssertEqual(request.head.scheme, "http")
        XCTAssertEqual(request.head.authority, "example.com:8080")
        XCTAssertEqual(request.head.headerFields.map(\.name.rawName), ["User-Agent", "x-one", "X-Empty"])
        XCTAssertEqual(request.head.headerFields.map(\.value), ["t", "1", ""])
        XCTAssertEqual(request.body, [])
    }

    /// `HiveRequest.path` drops the query of short (inline) and long targets alike, by bytes.
    func testHiveRequestPath_dropsTheQuery() throws {
        for (target, path) in [("/hello", "/hello"), ("/a?b=c", "/a"), ("/?", "/"), ("/caf%C3%A9?x", "/caf%C3%A9"),
                               ("/" + String(repeating: "long/", count: 10) + "?q=1", "/" + String(repeating: "long/", count: 10))] {
            let request = try XCTUnwrap(parse("GET \(target) HTTP/1.1\r\nHost: h\r\n\r\n")).request
            XCTAssertEqual(HiveRequest(head: request.head, connection: ConnectionID(rawValue: 1)).path, path)
        }
    }

    func testPost_withContentLength_takesItsBody_andStopsThere() throws {
        let text = "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
        let (request, consumed) = try XCTUnwrap(parse(text + "GET / HTTP/1.1\r\n"))
        XCTAssertEqual(consumed, text.utf8.count)
        XCTAssertEqual(request.method, .POST)
        XCTAssertEqual(request.body, Array("hello".utf8))
        XCTAssertEqual(request.head.headerFields[.contentLength], "5")
    }

    func testWrksPostEcho_isReadWhole() throws {
        let head = "POST /echo HTTP/1.1\r\nContent-Length: 1024\r\nContent-Type: application/octet-stream\r\n"
            + "Host: 127.0.0.1:19620\r\n\r\n"
        let (request, consumed) = try XCTUnwrap(parse(head + String(repeating: "x", count: 1024), maxBodySize: 1 << 20))
        XCTAssertEqual(consumed, head.utf8.count + 1024)
        XCTAssertEqual(request.body.count, 1024)
        XCTAssertEqual(request.head.headerFields.map(\.name), [.contentLength, .contentType])
    }

    func testEveryCommonMethod_isRead_andOthersAreHandedOver() throws {
        let methods: [(String, HTTPMethod, HTTPRequest.Method)] = [
            ("GET", .GET, .get), ("HEAD", .HEAD, .head), ("POST", .POST, .post), ("PUT", .PUT, .put),
            ("DELETE", .DELETE, .delete), ("PATCH", .PATCH, .patch), ("OPTIONS", .OPTIONS, .options),
        ]
        for (name, nio, types) in methods {
            let request = try XCTUnwrap(parse("\(name) / HTTP/1.1\r\nHost: h\r\n\r\n"), name).request
            XCTAssertEqual(request.method, nio)
            XCTAssertEqual(request.head.method, types)
        }
        for other in ["get", "GETS", "CONNECT", "TRACE", "PURGE", "DELET", "OPTION", "PATC"] {
            assertHandedOver("\(other) / HTTP/1.1\r\nHost: h\r\n\r\n")
        }
    }

    func testKeepAlive_followsTheVersionAndTheConnectionHeader() throws {
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n")?.request.keepAlive, true)
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")?.request.keepAlive, false)
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n")?.request.keepAlive, false)
        XCTAssertEqual(parse("GET / HTTP/1.0\r\n\r\n")?.request.keepAlive, false)
        XCTAssertEqual(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")?.request.keepAlive, true)
        XCTAssertEqual(parse("GET / HTTP/1.0\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\n")?.request.keepAlive, true)
        XCTAssertEqual(parse("GET / HTTP/1.0\r\n\r\n")?.request.version, .http1_0)
        // A list, another token or a second header: NIO's rules decide.
        assertHandedOver("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n")
        assertHandedOver("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\r\n")
        assertHandedOver("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nConnection: close\r\n\r\n")
    }

    func testSmugglingShapes_areHandedOver() {
        // CL+TE both orders, chunked alone, duplicate and listed CL, signs and spaces in CL.
        assertHandedOver("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assertHandedOver("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n")
        assertHandedOver("POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        assertHandedOver("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
        assertHandedOver("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc")
        assertHandedOver("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc")
        assertHandedOver("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3 \r\n\r\nabc")
        assertHandedOver("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1234567890123456789\r\n\r\n")
        // obs-fold, bare LF, bare CR, whitespace before the colon, a control byte, a non-ASCII byte.
        assertHandedOver("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  2\r\n\r\n")
        assertHandedOver("GET / HTTP/1.1\nHost: h\n\n")
        assertHandedOver("GET / HTTP/1.1\r\nHost: h\nX-A: 1\r\n\r\n")
        assertHandedOver("GET / HTTP/1.1\r\nHost: h\r\n\n")
        assertHandedOver("GET / HTTP/1.1\r\nHost: h\rX-A: 1\r\n\r\n")
        assertHandedOver("GET / HTTP/1.1\r\nHost : h\r\n\r\n")
        assertHandedOver("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{1}b\r\n\r\n")
        assertHandedOver("GET / HTTP/1.1\r\nHost: h\r\nX-A: caf\u{E9}\r\n\r\n")
        assertHandedOver("GET / HTTP/1.1\r\nHost: h\r\nX-A: a \r\n\r\n")
        assertHandedOver("GET / HTTP/1.1\r\nHost: h\r\n: empty name\r\n\r\n")
    }

    func testHostRules_ofRFC9112_areLeftToTheHandler() {
        assertHandedOver("GET / HTTP/1.1\r\n\r\n")  // 1.1 without Host: a 400 there
        assertHandedOver("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        assertHandedOver("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n")
    }

    func testUpgradesExpectationsAndOtherTargets_areHandedOver() {
        assertHandedOver("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        assertHandedOver("GET /ws HTTP/1.1\r\nHost: h\r\nupgrade: h2c\r\n\r\n")
        assertHandedOver("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")
        assertHandedOver("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assertHandedOver("GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n")
        assertHandedOver("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
        assertHandedOver("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n")
        assertHandedOver("GET /a<b> HTTP/1.1\r\nHost: h\r\n\r\n")
        assertHandedOver("GET /a\u{7F} HTTP/1.1\r\nHost: h\r\n\r\n")
        assertHandedOver("GET  / HTTP/1.1\r\nHost: h\r\n\r\n")
        assertHandedOver("GET / HTTP/1.2\r\nHost: h\r\n\r\n")
        assertHandedOver("GET / HTTP/2.0\r\nHost: h\r\n\r\n")
        assertHandedOver("GET / http/1.1\r\nHost: h\r\n\r\n")
        assertHandedOver("GET /\r\n\r\n")
        assertHandedOver("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assertHandedOver("\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}\u{0}\u{1}\u{fc}\u{3}\u{3}")  // a TLS hello
    }

    func testEveryPrefixOfARequest_waitsForMore_theHeadThenTheBody() {
        for whole in [
            "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
            "OPTIONS /a?b=c HTTP/1.0\r\nX-A:\r\nX-B: \t1\r\n\r\n", "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ] {
            let bytes = Array(whole.utf8)
            let headEnd = whole.utf8.count - (whole.hasSuffix("hello") ? 5 : 0)
            XCTAssertNotNil(parse(whole), whole)
            for end in 1..<bytes.count {
                let prefix = String(decoding: bytes[..<end], as: UTF8.self)
                switch outcome(prefix) {
                case .needMore: XCTAssertLessThan(end, headEnd, prefix.debugDescription)
                case .needBody(let total, let path):
                    XCTAssertGreaterThanOrEqual(end, headEnd, prefix.debugDescription)
                    XCTAssertEqual(total, bytes.count)
                    XCTAssertEqual(path, "/echo")
                case .request, .handOver: XCTFail("\(prefix.debugDescription) is not waited for")
                }
            }
        }
        // A start that cannot become a request it takes is NIO's at once.
        for start in ["G\r", "GET\t", "GET /\u{1}", "GET / H", "GET / HTTP/1.1\n", "GET / HTTP/1.1\r\nHost\n",
                      "GET / HTTP/1.1\r\nHost: h\n", "GET / HTTP/1.1\r\nHost: h\r\r", "GET / HTTP/1.1\r\n\r\r"] {
            if start == "GET / H" { continue }  // a prefix of "HTTP/1.1"
            assertHandedOver(start)
        }
        // A head still incomplete past --max-header-size is NIO's (a 431 there).
        assertHandedOver("GET /\(String(repeating: "a", count: 100))", maxHeaderSize: 64)
        guard case .needMore = outcome("GET /\(String(repeating: "a", count: 100))", maxHeaderSize: 200) else {
            return XCTFail("a head within the limit is waited for")
        }
    }

    func testLimits_areLeftToNIOAndTheHandler() throws {
        let head = "GET /\(String(repeating: "a", count: 60)) HTTP/1.1\r\nHost: h\r\nX-Long: \(String(repeating: "b", count: 100))\r\n\r\n"
        let size = head.utf8.count
        XCTAssertNotNil(parse(head, maxHeaderSize: size))
        assertHandedOver(head, maxHeaderSize: size - 3)
        let post = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789"
        XCTAssertEqual(try XCTUnwrap(parse(post, maxBodySize: 10)).request.body.count, 10)
        assertHandedOver(post, maxBodySize: 9)
    }

    func testPipelinedRequests_areReadOneAtATime() throws {
        let first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
        let second = "GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        let bytes = first + second
        let (one, consumed) = try XCTUnwrap(parse(bytes))
        XCTAssertEqual(one.head.path, "/a")
        let (two, rest) = try XCTUnwrap(parse(String(decoding: Array(bytes.utf8).dropFirst(consumed), as: UTF8.self)))
        XCTAssertEqual(two.head.path, "/b")
        XCTAssertEqual(rest, second.utf8.count)
        XCTAssertFalse(two.keepAlive)
    }
}
