import Glibc
import XCTest

@testable import HiveIPC

/// The master drops its own mappings of the per-connection records (`dropMappedRecordPages`): its RSS gives the
/// pages back, and every word keeps its value.
final class SharedRegistryPagesTests: XCTestCase {
    let remote = RemoteAddress(family: .ipv4, bytes: (0x0100_007F, 0), port: 5555)

    func testDropMappedRecordPages_ofAMemfdRegistry_givesThePagesBackAndKeepsTheSlots() throws {
        let capacity = 32_768  // 4 MiB of slots
        let registry = try SharedRegistry.create(capacity: capacity, workerCount: 2)
        defer { close(registry.fd) }
        let ids = try (0..<capacity).map { index in
            try XCTUnwrap(registry.reserve(worker: index % 2, remote: remote, now: UInt64(index + 1)))
        }
        let touched = try Self.residentSharedBytes()
        XCTAssertTrue(registry.dropMappedRecordPages())
        let dropped = try Self.residentSharedBytes()
        XCTAssertGreaterThan(touched - dropped, 3 << 20, "the master's RSS still holds the slot pages")
        for (index, id) in ids.enumerated() where index % 997 == 0 {
            XCTAssertTrue(registry.activate(id), "slot \(index) lost its reservation")
            let found = try XCTUnwrap(registry.lookup(id, withUser: false))
            XCTAssertEqual(found.remote, remote)
            XCTAssertEqual(found.connectedAt, UInt64(index + 1))
        }
        // Another process's view (a worker's mapping) is the same memfd: untouched.
        let worker = try SharedRegistry.attach(fd: registry.fd)
        XCTAssertEqual(worker.protocolState(of: ids[997]), .http)
    }

    func testDropMappedRecordPages_ofAHeapRegistry_keepsItsMemory() throws {
        let registry = SharedRegistry.heap(capacity: 4096, workerCount: 1)
        let id = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        XCTAssertTrue(registry.dropMappedRecordPages())
        XCTAssertTrue(registry.activate(id), "a heap registry was zeroed")
    }

    /// RssShmem of this process (shared memory pages mapped here), from /proc/self/status.
    static func residentSharedBytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("RssShmem:") })
        let kilobytes = try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        return kilobytes * 1024
    }
}
