import HiveIPC
import XCTest

@testable import HiveWorker

final class UserIndexTests: XCTestCase {
    private let a = ConnectionID(generation: 1, worker: 0, slot: 1)
    private let b = ConnectionID(generation: 1, worker: 0, slot: 2)
    private let c = ConnectionID(generation: 1, worker: 0, slot: 3)

    func testBindIndexesBothWays_rebindMoves_unbindForgets() {
        let index = UserIndex()
        XCTAssertTrue(index.bind(a, to: "alice"))
        XCTAssertTrue(index.bind(b, to: "alice"))
        XCTAssertTrue(index.bind(c, to: "bob"))
        XCTAssertFalse(index.bind(a, to: "alice"), "the same user again changes nothing")
        XCTAssertEqual(index.connections(of: "alice"), [a, b])
        XCTAssertEqual(index.connections(of: "bob"), [c])
        XCTAssertEqual(index.connections(of: "carol"), [])
        XCTAssertEqual(index.user(of: a), "alice")
        XCTAssertEqual(index.userCount, 2)

        XCTAssertTrue(index.bind(a, to: "bob"))
        XCTAssertEqual(index.connections(of: "alice"), [b], "a rebind leaves the old user")
        XCTAssertEqual(index.connections(of: "bob"), [c, a])

        XCTAssertTrue(index.bind(b, to: nil))
        XCTAssertNil(index.user(of: b))
        XCTAssertNil(index.connectionsOf["alice"], "a user with no connection left is forgotten")
        XCTAssertFalse(index.bind(b, to: nil), "unbinding twice changes nothing")
        XCTAssertEqual(index.userCount, 1)
        for id in [a, c] { index.bind(id, to: nil) }
        XCTAssertTrue(index.connectionsOf.isEmpty && index.userOf.isEmpty)
    }
}
