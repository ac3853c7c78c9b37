import XCTest

@testable import HiveIPC

final class ConnectionIDTests: XCTestCase {
    func testFields_whenEncoded_roundTrip() {
        let id = ConnectionID(generation: 0xDEAD_BEEF, worker: 200, slot: 0xAB_CDEF)
        XCTAssertEqual(id.generation, 0xDEAD_BEEF)
        XCTAssertEqual(id.worker, 200)
        XCTAssertEqual(id.slot, 0xAB_CDEF)
        XCTAssertEqual(ConnectionID(rawValue: id.rawValue), id)
    }

    func testDescription_isTheDecimalRawValue() {
        let id = ConnectionID(generation: 1, worker: 0, slot: 7)
        XCTAssertEqual(id.description, String((1 as UInt64) << 32 | 7))
    }

    func testIDs_forDifferentWorkersOrSlots_differ() {
        let a = ConnectionID(generation: 1, worker: 0, slot: 1)
        let b = ConnectionID(generation: 1, worker: 1, slot: 1)
        let c = ConnectionID(generation: 1, worker: 0, slot: 2)
        XCTAssertEqual(Set([a, b, c]).count, 3)
    }
}
