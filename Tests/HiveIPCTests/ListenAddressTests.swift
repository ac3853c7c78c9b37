import XCTest

@testable import HiveIPC

final class ListenAddressTests: XCTestCase {
    func testParse_acceptsIPv4AndBracketedIPv6() throws {
        XCTAssertEqual(try ListenAddress.parse("127.0.0.1:9502", option: "--x").get(), ListenAddress(host: "127.0.0.1", port: 9502))
        XCTAssertEqual(try ListenAddress.parse("[::1]:9502", option: "--x").get(), ListenAddress(host: "::1", port: 9502))
        XCTAssertEqual(ListenAddress(host: "::1", port: 9502).description, "[::1]:9502")
    }

    func testParse_refusesWithASentenceNamingTheOptionAndValue() {
        for text in ["127.0.0.1", "::1:9502", "[::1]9502", "[::1", "localhost:9502", "127.0.0.1:0", "127.0.0.1:70000",
                     "127.0.0.1:x", "[127.0.0.1]:9502", ":9502"] {
            guard case .failure(let error) = ListenAddress.parse(text, option: "--metrics-listen") else {
                XCTFail("\(text) was accepted")
                continue
            }
            XCTAssertTrue(error.message.hasPrefix("--metrics-listen \"\(text)\": "), error.message)
            XCTAssertTrue(error.message.contains("127.0.0.1:9502"), "says what to write: \(error.message)")
        }
    }
}
