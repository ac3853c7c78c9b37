import HiveIPC
import XCTest

final class HiveErrorTests: XCTestCase {
    private let id = ConnectionID(generation: 3, worker: 1, slot: 7)

    /// Callers switch over `code`; the error carries the connection, its state and the worker it was about.
    func testCodes_matchTheirFactories_andCarryTheConnection() {
        let unknown = HiveError.unknownConnection(id)
        XCTAssertEqual(unknown.code, .unknownConnection)
        XCTAssertEqual(unknown.connection, id)

        let plain = HiveError.notWebSocket(id, .http)
        XCTAssertEqual(plain.code, .notWebSocket)
        XCTAssertEqual(plain.state, .http)
        XCTAssertTrue(plain.description.contains("plain HTTP connection"), plain.description)
        XCTAssertTrue(plain.description.contains("isEstablished"), "says what to do: \(plain.description)")

        let busy = HiveError.workerBusy(id, worker: 1)
        XCTAssertEqual(busy.code, .workerBusy)
        XCTAssertEqual(busy.worker, 1)
        XCTAssertNotEqual(busy.code, unknown.code)
    }

    /// The pattern an application writes: a catch on the code, with a default for codes added later.
    func testCatchingByCode() {
        func push() throws { throw HiveError.notWebSocket(id, .http) }
        var caught: HiveError.Code?
        do {
            try push()
        } catch let error as HiveError where error.code == .notWebSocket {
            caught = error.code
        } catch {
            XCTFail("unexpected \(error)")
        }
        XCTAssertEqual(caught, .notWebSocket)
        XCTAssertEqual("\(HiveError.Code.workerBusy)", "workerBusy")
    }
}
