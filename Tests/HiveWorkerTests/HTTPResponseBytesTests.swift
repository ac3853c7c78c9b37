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

    func testNumericFields_areWrittenAsDigitsAfterTheHeaderFields_inTheOrderAppended() {
        var response = HiveResponse.text("hello")
        response.appendField(HTTPField.Name("X-Worker")!, 3)
        response.appendField(HTTPField.Name("X-Id")!, UInt64.max)
        response.appendField(HTTPField.Name("X-Three")!, -42)
        response.appendField(HTTPField.Name("X-Four")!, 0)
        response.headerFields.append(HTTPField(name: HTTPField.Name("X-Late")!, value: "v"))
        XCTAssertEqual(
            encode(response),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-Late: v\r\nX-Worker: 3\r\n"
                + "X-Id: 18446744073709551615\r\nX-Three: -42\r\nX-Four: 0\r\nContent-Length: 5\r\n"
                + "Connection: keep-alive\r\n\r\nhello")
    }

    func testNumericFields_readAsHTTPFields_andFramingNamesAreTheServers() {
        var response = HiveResponse()
        response.appendField(.contentLength, 99)
        response.appendField(.connection, UInt64(1))
        XCTAssertTrue(response.numericFields.isEmpty)
        response.appendField(HTTPField.Name("X-A")!, Int.min)
        response.appendField(HTTPField.Name("X-B")!, 7)
        response.appendField(HTTPField.Name("X-C")!, UInt64(12))
        XCTAssertEqual(
            Array(response.numericFields),
            [HTTPField(name: HTTPField.Name("X-A")!, value: "-9223372036854775808"),
             HTTPField(name: HTTPField.Name("X-B")!, value: "7"), HTTPField(name: HTTPField.Name("X-C")!, value: "12")])
        XCTAssertTrue(encode(response, keepAlive: false).hasSuffix(
            "X-A: -9223372036854775808\r\nX-B: 7\r\nX-C: 12\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
    }

    /// A status line other than 200 with numeric fields: the room for both is counted.
    func testNumericFields_withAnotherStatusAndVersion() {
        var response = HiveResponse.notFound
        response.appendField(HTTPField.Name("X-Hive-Connection")!, UInt64(4_294_967_296))
        XCTAssertEqual(
            encode(response, version: .http1_0, keepAlive: false),
            "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Hive-Connection: 4294967296\r\n"
                + "Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n")
    }

    func testContinue() {
        XCTAssertEqual(
            String(buffer: HTTPResponseBytes.continueResponse(version: .http1_1, allocator: ByteBufferAllocator())),
            "HTTP/1.1 100 Continue\r\n\r\n")
    }
}
