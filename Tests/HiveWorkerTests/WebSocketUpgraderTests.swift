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
}
