import XCTest

@testable import HiveIPC

final class CloseCodeTests: XCTestCase {
    func testCodesAServerMaySend_areAccepted() {
        for code in [1000, 1001, 1002, 1003, 1007, 1008, 1011, 1012, 1014, 3000, 4000, 4999] {
            XCTAssertNil(CloseCode.refusal(code), "\(code)")
            XCTAssertTrue(CloseCode.serverMaySend(UInt16(code)), "\(code)")
        }
    }

    func testReservedAndLocalOnlyCodes_areRefusedSayingWhy() {
        XCTAssertEqual(
            CloseCode.refusal(1005),
            "close code 1005 only reports a close locally and must never be sent (RFC 6455 7.4); use 1000 (normal), "
                + "1001 (going away), 1008 (policy), another of 1000-1003 and 1007-1014, or an application code 3000-4999"
        )
        XCTAssertTrue(CloseCode.refusal(1006)?.hasPrefix("close code 1006 only reports a close locally") == true)
        XCTAssertTrue(CloseCode.refusal(1015)?.hasPrefix("close code 1015 only reports a close locally") == true)
        XCTAssertTrue(CloseCode.refusal(1004)?.hasPrefix("close code 1004 is reserved") == true)
        for code in [-1, 0, 999, 1016, 2999, 5000, 65535, 70000] {
            XCTAssertEqual(
                CloseCode.refusal(code)?.hasPrefix("close code \(code) is not a close code a server may send"), true,
                "\(code)"
            )
        }
    }
}
