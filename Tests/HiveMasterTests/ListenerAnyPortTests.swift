import CHiveShims
import Glibc
import HiveIPC
import XCTest

@testable import HiveMaster

/// `--port 0`: the listener bound before the run dir is named, and the port read back from the kernel.
final class ListenerAnyPortTests: XCTestCase {
    /// A blocking TCP connection to 127.0.0.1:`port`; true if it was accepted into the backlog.
    private func connects(to port: Int) -> Bool {
        let fd = socket(AF_INET, CHiveShims_SOCK_STREAM, 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    func testBindAnyPort_returnsAListeningSocketOnTheKernelsPort_anotherEachTime() throws {
        let first = try MasterConfiguration.bindAnyPort(host: "127.0.0.1")
        defer { close(first.descriptor) }
        let second = try MasterConfiguration.bindAnyPort(host: "127.0.0.1")
        defer { close(second.descriptor) }
        XCTAssertTrue((1...65_535).contains(first.port))
        XCTAssertNotEqual(first.port, second.port)
        XCTAssertTrue(connects(to: first.port))
        let listener = Listener(adopting: first.descriptor)
        XCTAssertEqual(try listener.boundPort(), first.port)
        guard case .connection(let accepted, _) = listener.accept() else { return XCTFail("nothing to accept") }
        close(accepted)
    }

    /// sin6_port is read as well as sin_port (the same offset in both).
    func testBindAnyPort_onIPv6Loopback_returnsTheKernelsPort() throws {
        let probe = try? Listener(host: "::1", port: 0)
        try XCTSkipIf(probe == nil, "no IPv6 loopback on this machine")
        probe?.close()
        let bound = try MasterConfiguration.bindAnyPort(host: "::1")
        defer { close(bound.descriptor) }
        XCTAssertTrue((1...65_535).contains(bound.port))
        var address = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(bound.descriptor, $0, &length) }
        }
        XCTAssertEqual(Int(UInt16(bigEndian: address.sin6_port)), bound.port)
    }

    func testBindAnyPort_onAnAddressOfNoInterface_isCannotListenNamingPortZero() {
        // 192.0.2.0/24 is TEST-NET-1: never an address of this machine.
        XCTAssertThrowsError(try MasterConfiguration.bindAnyPort(host: "192.0.2.1")) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot listen on 192.0.2.1:0: bind() failed while listening on "
                + "192.0.2.1:0: "), "\(error)")
        }
    }
}
