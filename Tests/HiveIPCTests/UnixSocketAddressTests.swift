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

    func testNotifyAddress_abstractName_startsWithNUL_andItsLengthCountsOnlyTheName() throws {
        let (bytes, length) = try UnixSocketAddress.withNotifyAddress("@hive/notify") { address, length in
            address.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { un in
                (withUnsafeBytes(of: un.pointee.sun_path) { Array($0.prefix(13)) }, length)
            }
        }
        XCTAssertEqual(bytes, [0] + Array("hive/notify".utf8) + [0])
        XCTAssertEqual(Int(length), MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + 12)
    }

    func testNotifyAddress_path_isPassedWithItsNUL() throws {
        let (text, length) = try UnixSocketAddress.withNotifyAddress("/run/systemd/notify") { address, length in
            address.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { un in
                (withUnsafeBytes(of: un.pointee.sun_path) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }, length)
            }
        }
        XCTAssertEqual(text, "/run/systemd/notify")
        XCTAssertEqual(Int(length), MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + 20)
    }

    func testNotifyAddress_relativeOrEmptyOrOtherFamilies_areRefusedWithTheValue() {
        for value in ["", "@", "notify.sock", "vsock:2:1234"] {
            XCTAssertThrowsError(try UnixSocketAddress.withNotifyAddress(value) { _, _ in 0 }, value) {
                XCTAssertTrue("\($0)".contains("NOTIFY_SOCKET=\"\(value)\": it is neither an absolute path"), "\($0)")
            }
        }
    }
}
