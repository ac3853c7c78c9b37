import XCTest

@testable import HiveIPC

final class DispatcherTests: XCTestCase {
    func testLeastConnections_picksTheLeastLoadedAvailableWorker() {
        var dispatcher = Dispatcher(mode: .leastConnections)
        XCTAssertEqual(dispatcher.choose(load: [5, 2, 9], available: [true, true, true], clientHash: 0), 1)
        XCTAssertEqual(dispatcher.choose(load: [5, 2, 9], available: [true, false, true], clientHash: 0), 0)
    }

    func testLeastConnections_spreadsTiesOverWorkers() {
        var dispatcher = Dispatcher(mode: .leastConnections)
        let picks = (0..<4).map { _ in dispatcher.choose(load: [0, 0], available: [true, true], clientHash: 0)! }
        XCTAssertEqual(Set(picks), [0, 1])
    }

    func testRoundRobin_cyclesAndSkipsUnavailable() {
        var dispatcher = Dispatcher(mode: .roundRobin)
        let picks = (0..<6).map { _ in dispatcher.choose(load: [0, 0, 0], available: [true, false, true], clientHash: 0)! }
        XCTAssertEqual(picks, [0, 2, 0, 2, 0, 2])
    }

    func testIPHash_isStablePerClientAndFallsBackWhenItsWorkerIsDown() {
        var dispatcher = Dispatcher(mode: .ipHash)
        let first = dispatcher.choose(load: [0, 0, 0], available: [true, true, true], clientHash: 12345)!
        XCTAssertEqual(dispatcher.choose(load: [9, 9, 9], available: [true, true, true], clientHash: 12345), first)
        var available = [true, true, true]
        available[first] = false
        let fallback = dispatcher.choose(load: [0, 0, 0], available: available, clientHash: 12345)
        XCTAssertNotNil(fallback)
        XCTAssertNotEqual(fallback, first)
    }

    func testNoWorkerAvailable_returnsNil() {
        for mode in DispatchMode.allCases {
            var dispatcher = Dispatcher(mode: mode)
            XCTAssertNil(dispatcher.choose(load: [0, 0], available: [false, false], clientHash: 1), "\(mode)")
        }
    }
}
