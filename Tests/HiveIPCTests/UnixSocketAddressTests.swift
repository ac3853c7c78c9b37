import Glibc
import XCTest

@testable import HiveIPC

final class UnixSocketAddressTests: XCTestCase {
    func testPathTooLong_isAnErrorThatNamesThePath_neverACutPath() {
        let path = "/tmp/" + String(repeating: "x", count: 200) + "/hive.sock"
        XCTAssertThrowsError(try UnixSocketAddress.with(path: path, for: "connect", while: "testing") { _, _ in 0 }) {
            let text = "\($0)"
            XCTAssertTrue(text.hasPrefix("connect() failed while testing: path \(path) is too long"), text)
            XCTAssertTrue(text.contains("use a shorter --run-dir"), text)
        }
    }

    func testShortPath_isPassedWhole() throws {
        let length = try UnixSocketAddress.with(path: "/tmp/hive.sock", for: "bind", while: "testing") { address, _ in
            address.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { un in
                withUnsafeBytes(of: un.pointee.sun_path) { $0.prefix { $0 != 0 }.count }
            }
        }
        XCTAssertEqual(length, "/tmp/hive.sock".utf8.count)
    }
}
