import NIOHTTP1
import XCTest

@testable import HiveWorker

final class WebSocketUpgraderTests: XCTestCase {
    func testAcceptValue_matchesRFC6455Example() {
        // RFC 6455 1.3.
        XCTAssertEqual(WebSocketUpgrader.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    func testSHA1_matchesFIPSVectors() {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        XCTAssertEqual(hex(SHA1.digest([])), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(hex(SHA1.digest(Array("abc".utf8))), "a9993e364706816aba3e25717850c26c9cd0d89d")
        let twoBlocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        XCTAssertEqual(hex(SHA1.digest(Array(twoBlocks.utf8))), "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
    }

    // MARK: The handshake check (RFC 6455 section 4.2.1)

    private static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    private func handshake(
        method: HTTPMethod = .GET, version: HTTPVersion = .http1_1, uri: String = "/echo",
        replacing changes: [String: String?] = [:]
    ) -> HTTPRequestHead {
        var fields: [(String, String)] = [
            ("Host", "127.0.0.1:9501"), ("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"),
            ("Sec-WebSocket-Key", Self.key), ("Sec-WebSocket-Version", "13"),
        ]
        for (name, value) in changes {
            fields.removeAll { $0.0 == name }
            if let value { fields.append((name, value)) }
        }
        return HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(fields))
    }

    private func refusal(_ head: HTTPRequestHead, origins: [String] = [], file: StaticString = #filePath,
                         line: UInt = #line) -> WebSocketHandshakeError? {
        switch WebSocketUpgrader.check(head, origins: OriginPolicy(allowed: origins)) {
        case .success: return nil
        case .failure(let error): return error
        }
    }

    func testCheck_whenHandshakeIsValid_returnsTheKey() throws {
        XCTAssertEqual(try WebSocketUpgrader.check(handshake(), origins: OriginPolicy(allowed: [])).get(), Self.key)
        let sameHost = handshake(replacing: ["Origin": "http://127.0.0.1:9501"])
        XCTAssertEqual(try WebSocketUpgrader.check(sameHost, origins: OriginPolicy(allowed: [])).get(), Self.key)
    }

    func testCheck_whenKeyIsMissingShortOrNotBase64_is400SayingWhatIsWrong() throws {
        let missing = try XCTUnwrap(refusal(handshake(replacing: ["Sec-WebSocket-Key": nil])))
        XCTAssertEqual(missing.status, .badRequest)
        XCTAssertTrue(missing.message.contains("Sec-WebSocket-Key"), missing.message)
        for bad in ["c2hvcnQ=", "!!!!!!!!!!!!!!!!!!!!!!!!", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZSEh"] {
            let error = try XCTUnwrap(refusal(handshake(replacing: ["Sec-WebSocket-Key": bad])), bad)
            XCTAssertEqual(error.status, .badRequest, bad)
            XCTAssertTrue(error.message.contains("16 bytes in base64"), error.message)
            XCTAssertTrue(error.message.contains(bad), "names the key it got: \(error.message)")
        }
    }

    func testCheck_whenVersionIsNot13_is426WithTheVersionThisServerSpeaks() throws {
        for version in ["8", "13, 8", "14"] {
            let error = try XCTUnwrap(refusal(handshake(replacing: ["Sec-WebSocket-Version": version])), version)
            XCTAssertEqual(error.status, .upgradeRequired, version)
            XCTAssertEqual(error.headers.first { $0.0 == "Sec-WebSocket-Version" }?.1, "13")
        }
        let missing = try XCTUnwrap(refusal(handshake(replacing: ["Sec-WebSocket-Version": nil])))
        XCTAssertEqual(missing.status, .badRequest)
    }

    func testCheck_whenNotAGetOverHTTP11WithConnectionUpgradeAndHost_is400() throws {
        XCTAssertEqual(refusal(handshake(method: .POST))?.status, .badRequest)
        XCTAssertEqual(refusal(handshake(version: .http1_0))?.status, .badRequest)
        XCTAssertEqual(refusal(handshake(replacing: ["Connection": nil]))?.status, .badRequest)
        XCTAssertEqual(refusal(handshake(replacing: ["Connection": "keep-alive"]))?.status, .badRequest)
        XCTAssertEqual(refusal(handshake(replacing: ["Host": nil]))?.status, .badRequest)
        let post = try XCTUnwrap(refusal(handshake(method: .POST)))
        XCTAssertTrue(post.message.contains("GET") && post.message.contains("POST"), post.message)
    }

    func testCheck_whenOriginIsAnotherSite_is403UnlessAllowed() throws {
        let evil = handshake(replacing: ["Origin": "https://evil.example"])
        let error = try XCTUnwrap(refusal(evil))
        XCTAssertEqual(error.status, .forbidden)
        XCTAssertTrue(error.message.contains("https://evil.example") && error.message.contains("--allowed-origin"))
        XCTAssertEqual(refusal(handshake(replacing: ["Origin": "null"]))?.status, .forbidden)
        XCTAssertNil(refusal(evil, origins: ["https://evil.example"]))
        XCTAssertNil(refusal(evil, origins: ["*"]))
        // An absolute-form target names the host itself (RFC 9112 section 3.2.2).
        let absolute = handshake(uri: "http://chat.example/echo", replacing: ["Origin": "http://chat.example"])
        XCTAssertNil(refusal(absolute), "the target's host, though Host says 127.0.0.1:9501")
        let absoluteOther = handshake(uri: "http://chat.example/echo", replacing: ["Origin": "http://127.0.0.1:9501"])
        XCTAssertEqual(refusal(absoluteOther)?.status, .forbidden)
    }
}
