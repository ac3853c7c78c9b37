import NIOHTTP1
import XCTest

@testable import HiveWorker

final class RequestHeadFactsTests: XCTestCase {
    private func head(_ headers: [(String, String)], version: HTTPVersion = .http1_1) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: .POST, uri: "/x", headers: HTTPHeaders(headers))
    }

    func testFacts_findHeadersInAnyCase_andMeasureTheHead() {
        let facts = RequestHeadFacts(head([
            ("HOST", "a"), ("content-LENGTH", "12"), ("Expect", "100-continue"), ("Transfer-Encoding", "chunked"),
            ("X-Hostile", "no"), ("Hosts", "no"),
        ]))
        XCTAssertEqual(facts.hostCount, 1)
        XCTAssertEqual(facts.host, "a")
        XCTAssertEqual(facts.contentLength, "12")
        XCTAssertEqual(facts.expect, "100-continue")
        XCTAssertTrue(facts.hasTransferEncoding)
        XCTAssertTrue(facts.expectsBody)
        // "POST" + "/x" + 12, then name + value + 4 per header.
        let headerBytes: [Int] = [4 + 1, 14 + 2, 6 + 12, 17 + 7, 9 + 2, 5 + 2]
        XCTAssertEqual(facts.size, 4 + 2 + 12 + headerBytes.reduce(0) { $0 + $1 + 4 })
    }

    func testFacts_bodyIsExpectedOnlyWithANonZeroLengthOrATransferEncoding() {
        XCTAssertFalse(RequestHeadFacts(head([("Host", "a")])).expectsBody)
        XCTAssertFalse(RequestHeadFacts(head([("Host", "a"), ("Content-Length", "0")])).expectsBody)
        XCTAssertTrue(RequestHeadFacts(head([("Host", "a"), ("Content-Length", "1")])).expectsBody)
    }

    func testHostProblem_whenHTTP11LacksHostOrAnyRequestHasTwo() {
        XCTAssertNotNil(RequestHeadFacts(head([])).hostProblem(version: .http1_1))
        XCTAssertNil(RequestHeadFacts(head([], version: .http1_0)).hostProblem(version: .http1_0))
        XCTAssertNil(RequestHeadFacts(head([("host", "a")])).hostProblem(version: .http1_1))
        let twice = RequestHeadFacts(head([("Host", "a"), ("Host", "b")], version: .http1_0))
        XCTAssertNotNil(twice.hostProblem(version: .http1_0))
    }

    func testAbsoluteForm_isServedByItsPathAndQuery() {
        XCTAssertEqual(RequestTarget.absoluteForm("http://127.0.0.1:9501/hello?x=1")?.originForm, "/hello?x=1")
        XCTAssertEqual(RequestTarget.absoluteForm("http://127.0.0.1:9501/hello?x=1")?.authority, "127.0.0.1:9501")
        XCTAssertEqual(RequestTarget.absoluteForm("HTTPS://example.com")?.originForm, "/")
        XCTAssertEqual(RequestTarget.absoluteForm("http://example.com?q")?.originForm, "/?q")
        XCTAssertEqual(RequestTarget.absoluteForm("http://example.com/a#frag")?.originForm, "/a")
        XCTAssertNil(RequestTarget.absoluteForm("/hello"))
        XCTAssertNil(RequestTarget.absoluteForm("*"))
        XCTAssertNil(RequestTarget.absoluteForm("ftp://example.com/a"))
    }
}
