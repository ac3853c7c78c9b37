import Foundation
import HTTPTypes
import HiveIPC
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import HiveWorker

/// The request an application's hook sees and the bytes its response becomes, through the worker's whole pipeline
/// on an embedded channel.
final class HTTPRequestHandlerTests: XCTestCase {
    /// Answers with what it saw of the request, one fact a line, and the header fields the test asks for.
    struct DescribingApplication: HiveApplication {
        func request(_ request: HiveRequest, hive: HiveServer) throws -> HiveResponse {
            var lines = [
                "method \(request.method)", "uri \(request.uri)", "path \(request.path)",
                "authority \(request.head.authority ?? "-")", "scheme \(request.head.scheme ?? "-")",
                "query \(request.query)", "parameters \(request.parameters)",
                "body \(String(decoding: request.body, as: UTF8.self))",
            ]
            lines += request.headerFields.map { "field \($0.name.rawName): \($0.value)" }
            var response = HiveResponse.text(lines.joined(separator: "\n") + "\n")
            if request.path == "/custom" {
                response.status = HTTPResponse.Status(code: 299, reasonPhrase: "Fine Enough")
                response.headerFields[.contentLength] = "1"  // the server's to set: replaced
                response.headerFields.append(HTTPField(name: HTTPField.Name("X-Twice")!, value: "a"))
                response.headerFields.append(HTTPField(name: HTTPField.Name("X-Twice")!, value: "b"))
            }
            return response
        }
    }

    private let loop = EmbeddedEventLoop()

    private func exchange(_ requests: String) throws -> String {
        let hive = HiveServer(
            workerID: 0, eventLoop: loop, registry: .heap(capacity: 1, workerCount: 1), limits: ConnectionLimits(),
            application: DescribingApplication(),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let (channel, _) = try hive.adoptTestConnection(on: loop)
        _ = try? channel.writeInbound(ByteBuffer(string: requests))
        loop.run()
        var written = ""
        while let out = try channel.readOutbound(as: ByteBuffer.self) { written += String(buffer: out) }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        loop.run()
        return written
    }

    func testRequest_reachesTheHookAsHTTPTypes_withItsQueryParsed() throws {
        let written = try exchange(
            "POST /a%20b/c?q=two+words&tag=x&tag=y%21 HTTP/1.1\r\nHost: example.com:8080\r\nX-One: 1\r\n"
                + "x-two: 2\r\nX-One: 3\r\nContent-Length: 2\r\n\r\nhi")
        XCTAssertTrue(written.hasPrefix("HTTP/1.1 200 OK\r\n"), written)
        for line in [
            "method POST", "uri /a%20b/c?q=two+words&tag=x&tag=y%21", "path /a%20b/c", "authority example.com:8080",
            "scheme http", "query [q: two words, tag: x, tag: y!]", "parameters []", "body hi",
            "field X-One: 1\nfield x-two: 2\nfield X-One: 3\nfield Content-Length: 2\n",
        ] {
            XCTAssertTrue(written.contains(line), "missing \"\(line)\" in \(written)")
        }
        XCTAssertFalse(written.contains("field Host"), "Host is the authority, not a field: \(written)")
    }

    func testBodies_inOneChunkOrSeveral_reachTheHookWhole_andTheNextRequestStartsEmpty() throws {
        let written = try exchange(
            "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n6\r\n there\r\n0\r\n\r\n"
                + "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                + "GET /c HTTP/1.1\r\nHost: h\r\n\r\n")
        let bodies = written.split(separator: "\n").filter { $0.hasPrefix("body") }
        XCTAssertEqual(bodies, ["body hi there", "body abc", "body "], written)
    }

    func testResponse_keepsTheApplicationsFieldsAndCustomStatus_andTheServerSetsTheFraming() throws {
        let written = try exchange("GET /custom HTTP/1.1\r\nHost: a\r\n\r\n")
        let head = String(written[..<(written.range(of: "\r\n\r\n")?.lowerBound ?? written.endIndex)])
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 299 Fine Enough\r\n"), head)
        XCTAssertTrue(head.contains("X-Twice: a\r\nX-Twice: b"), head)
        XCTAssertTrue(head.contains("Content-Type: text/plain; charset=utf-8"), head)
        let body = written[(written.range(of: "\r\n\r\n")?.upperBound ?? written.endIndex)...]
        XCTAssertEqual(head.components(separatedBy: "\r\n").filter { $0.lowercased().hasPrefix("content-length:") },
                       ["Content-Length: \(body.utf8.count)"])
        XCTAssertTrue(head.contains("Connection: keep-alive"), head)
    }

    /// RFC 9110 section 9.3.2: the answer to HEAD is the head a GET gets, with no body (a body there is read by a
    /// keep-alive client as the start of its next response). NIO's server pipeline leaves it out; HiveRouter's HEAD
    /// answered by a GET route relies on that.
    func testHeadRequest_getsTheHeadWithItsContentLength_butNoBody() throws {
        let written = try exchange("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n")
        let responses = written.components(separatedBy: "HTTP/1.1 200 OK\r\n").dropFirst()
        XCTAssertEqual(responses.count, 2, written)
        let head = try XCTUnwrap(responses.first)
        XCTAssertTrue(head.hasSuffix("\r\n\r\n"), "the HEAD response has a body: \(head)")
        XCTAssertTrue(head.contains("Content-Length: "), head)
        XCTAssertFalse(head.contains("Content-Length: 0"), head)
        XCTAssertTrue(responses.last?.contains("path /y") == true, written)
    }

    /// NIO's parser hands on methods HTTPTypes refuses only if they are not tokens; its own `RAW` case can hold one.
    func testConversion_refusesAMethodOrHeaderNameThatIsNotAToken() throws {
        var head = HTTPRequestHead(version: .http1_1, method: .RAW(value: "GE T"), uri: "/")
        XCTAssertThrowsError(try HTTPRequest(head)) { XCTAssertTrue("\($0)".contains("GE T"), "\($0)") }
        head.method = .GET
        head.headers.add(name: "Bad Name", value: "x")
        XCTAssertThrowsError(try HTTPRequest(head)) { XCTAssertTrue("\($0)".contains("Bad Name"), "\($0)") }
        head.headers = ["Host": "h", "Accept": "*/*"]
        let request = try HTTPRequest(head)
        XCTAssertEqual(request.method, .get)
        XCTAssertEqual(request.authority, "h")
        XCTAssertEqual(request.path, "/")
        XCTAssertEqual(request.headerFields, [.accept: "*/*"])
    }

    func testStatusConversion_knownCodesTakeNIOsCase_othersKeepTheirPhrase() {
        XCTAssertEqual(HTTPResponseStatus(HTTPResponse.Status.notFound), .notFound)
        XCTAssertEqual(HTTPResponseStatus(HTTPResponse.Status(code: 404, reasonPhrase: "Gone Fishing")), .notFound)
        XCTAssertEqual(HTTPResponseStatus(HTTPResponse.Status(code: 299, reasonPhrase: "Fine")).reasonPhrase, "Fine")
        XCTAssertEqual(HTTPResponse.Status(HTTPResponseStatus.payloadTooLarge), .contentTooLarge)
        XCTAssertEqual(HTTPResponse.Status(HTTPResponseStatus.payloadTooLarge).code, 413)
    }

    func testJSONResponse_encodesTheValueWithItsContentType() throws {
        struct User: Encodable { var id: Int; var name: String }
        let response = try HiveResponse.json(User(id: 7, name: "Ada"), status: .created)
        XCTAssertEqual(response.status, .created)
        XCTAssertEqual(response.headerFields[.contentType], "application/json")
        let decoded = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        XCTAssertEqual(decoded?["id"] as? Int, 7)
        XCTAssertEqual(decoded?["name"] as? String, "Ada")
    }
}
