import HTTPTypes
import NIOCore
import NIOHTTP1
import XCTest

@testable import HiveWorker

/// The bytes of a response as `HTTPResponseBytes` writes them: the framing NIO's encoder gave, in one buffer.
final class HTTPResponseBytesTests: XCTestCase {
    private func encode(
        _ response: HiveResponse, method: HTTPMethod? = .GET, version: HTTPVersion = .http1_1, keepAlive: Bool = true
    ) -> String {
        String(buffer: HTTPResponseBytes.encode(
            response, method: method, version: version, keepAlive: keepAlive, allocator: ByteBufferAllocator()))
    }

    func testOK_hasTheFieldsInOrder_thenTheServersFraming_thenTheBody() {
        var response = HiveResponse.text("hello")
        response.headerFields.append(HTTPField(name: HTTPField.Name("X-Two")!, value: "a b"))
        XCTAssertEqual(
            encode(response),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-Two: a b\r\nContent-Length: 5\r\n"
                + "Connection: keep-alive\r\n\r\nhello")
    }

    func testTheApplicationsContentLengthAndConnection_areReplaced() {
        var response = HiveResponse.text("abc")
        response.headerFields[.contentLength] = "99"
        response.headerFields[.connection] = "upgrade"
        let written = encode(response, keepAlive: false)
        XCTAssertEqual(
            written,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
    }

    func testHead_keepsTheContentLengthOfTheBody_butNotTheBody() {
        let written = encode(.text("hello"), method: .HEAD)
        XCTAssertTrue(written.hasSuffix("Content-Length: 5\r\nConnection: keep-alive\r\n\r\n"), written)
    }

    /// 1xx, 204 and 304 have no body and no Content-Length (RFC 9110 sections 8.6 and 15); neither has CONNECT's.
    func testStatusesWithoutBody_andConnect_getNoContentLengthAndNoBody() {
        for (status, method) in [(HTTPResponse.Status.noContent, HTTPMethod.GET), (.notModified, .GET), (.ok, .CONNECT)] {
            let written = encode(HiveResponse(status: status, body: Array("x".utf8)), method: method)
            XCTAssertFalse(written.lowercased().contains("content-length"), written)
            XCTAssertTrue(written.hasSuffix("Connection: keep-alive\r\n\r\n"), written)
        }
    }

    func testStatusLine_ofOtherVersionsAndCodes() {
        XCTAssertTrue(encode(.notFound, version: .http1_0).hasPrefix("HTTP/1.0 404 Not Found\r\n"))
        XCTAssertTrue(encode(HiveResponse(status: HTTPResponse.Status(code: 299, reasonPhrase: "Fine Enough")))
            .hasPrefix("HTTP/1.1 299 Fine Enough\r\n"))
        // A code NIO knows keeps its standard phrase, as NIO's encoder wrote it.
        XCTAssertTrue(encode(HiveResponse(status: HTTPResponse.Status(code: 404, reasonPhrase: "Gone Fishing")))
            .hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        let large = HiveResponse(body: [UInt8](repeating: 0x61, count: 1_234_567))
        XCTAssertTrue(encode(large).contains("\r\nContent-Length: 1234567\r\n"))
        XCTAssertTrue(encode(HiveResponse()).contains("\r\nContent-Length: 0\r\n"))
    }

    func testContinue() {
        XCTAssertEqual(
            String(buffer: HTTPResponseBytes.continueResponse(version: .http1_1, allocator: ByteBufferAllocator())),
            "HTTP/1.1 100 Continue\r\n\r\n")
    }
}
