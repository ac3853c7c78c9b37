import HTTPTypes
import NIOHTTP1
import XCTest

@testable import HiveWorker

/// NIO's request head as the application sees it: the common names and methods take a shortcut, and must come out
/// exactly as the general path makes them (names as sent, `Host` as the authority).
final class HTTPTypesConversionTests: XCTestCase {
    private func convert(_ method: HTTPMethod, _ headers: [(String, String)]) throws -> HTTPRequest {
        try HTTPRequest(HTTPRequestHead(version: .http1_1, method: method, uri: "/p?q", headers: HTTPHeaders(headers)))
    }

    func testCommonNames_keepTheSpellingSent_andFindTheirFieldsByName() throws {
        let names = ["Content-Length", "content-length", "Content-Type", "CONTENT-TYPE", "User-Agent", "Accept",
                     "Accept-Encoding", "accept-language", "Connection", "X-Other"]
        let request = try convert(.POST, [("Host", "h")] + names.enumerated().map { ($1, "v\($0)") })
        XCTAssertEqual(request.headerFields.map(\.name.rawName), names)
        XCTAssertEqual(request.headerFields.map(\.name), names.map { HTTPField.Name($0)! })
        XCTAssertEqual(request.headerFields[values: .contentLength], ["v0", "v1"])
        XCTAssertEqual(request.headerFields[values: .contentType], ["v2", "v3"])
        XCTAssertEqual(request.headerFields[.userAgent], "v4")
        XCTAssertEqual(request.headerFields[.acceptLanguage], "v7")
        XCTAssertEqual(request.authority, "h")
        XCTAssertEqual(request.path, "/p?q")
    }

    func testMethods_theCommonOnesAndAnyOtherToken() throws {
        let methods: [(HTTPMethod, HTTPRequest.Method)] = [
            (.GET, .get), (.POST, .post), (.HEAD, .head), (.PUT, .put), (.DELETE, .delete), (.OPTIONS, .options),
            (.PATCH, .patch), (.RAW(value: "PURGE"), HTTPRequest.Method("PURGE")!),
        ]
        for (nio, expected) in methods {
            XCTAssertEqual(try convert(nio, [("Host", "h")]).method, expected)
        }
        XCTAssertThrowsError(try convert(.RAW(value: "BAD METHOD"), [("Host", "h")]))
    }
}
