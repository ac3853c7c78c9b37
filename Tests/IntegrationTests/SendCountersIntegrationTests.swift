import Foundation
import HiveIPC
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A WebSocket's `bytesOut` and `framesOut` are counted by its session and published to the registry slot by the
/// worker's sweep (at most a second later) and before the slot is freed: the slot shows the exact figures within
/// the sweep's period, and the worker's closed totals get every byte of a connection that ends between two sweeps.
final class SendCountersIntegrationTests: HiveTestCase {
    func testSendCounters_reachTheSlot_andTheClosedTotals_exactly() throws {
        try checkSendCounters([])
    }

    /// Without pings the sweep still runs once a second for the counters.
    func testSendCounters_arePublished_withKeepAliveOff() throws {
        try checkSendCounters(["--ping-interval", "0"])
    }

    private func checkSendCounters(_ extra: [String]) throws {
        let (hive, port) = try startHive(workers: 1, extra)
        let registry = try RegistryProbe.attach(masterPID: hive.pid!)
        let sender = try WebSocketTestClient(port: port)
        let watched = try WebSocketTestClient(port: port)  // stays open: its slot's counters
        let closing = try WebSocketTestClient(port: port)  // closes right after the messages: the closed totals
        let watchedID = ConnectionID(rawValue: try connectionID(of: watched))
        let closingID = ConnectionID(rawValue: try connectionID(of: closing))
        // After the reply to `who` (1 message), once published: what each was sent so far, handshake included.
        try RegistryProbe.wait(registry, "the replies to who counted") {
            $0.lookup(watchedID)?.framesOut == 1 && $0.lookup(closingID)?.framesOut == 1
        }
        let watchedBefore = try XCTUnwrap(registry.lookup(watchedID)).bytesOut
        let closingBefore = try XCTUnwrap(registry.lookup(closingID)).bytesOut
        XCTAssertGreaterThan(watchedBefore, 0)

        // Frames of 2 + n bytes (n ≤ 125) and of 4 + n (126 ≤ n < 65,536).
        let contents = ["a", String(repeating: "b", count: 125), String(repeating: "c", count: 126), String(repeating: "d", count: 3000)]
        let frameBytes = UInt64(contents.reduce(0) { $0 + ($1.utf8.count <= 125 ? 2 : 4) + $1.utf8.count })
        for content in contents {
            try sender.sendText(action("broadcast", ["content": content]))
        }
        for client in [watched, closing] {
            for content in contents { XCTAssertEqual(try client.receiveMessage(), .text(content)) }
        }

        // Closed before the sweep's next pass: its last counts go to the slot before it is freed.
        let closedBefore = registry.worker(0, .closedBytesOut).load(ordering: .relaxed)
        try closing.sendClose(code: 1000)
        guard case .close(let code, let reason) = try closing.receiveMessage() else { return XCTFail("no close frame") }
        let closeFrameBytes = UInt64(2 + (code == nil ? 0 : 2) + reason.utf8.count)
        try RegistryProbe.wait(registry, "the closed connection freed") { $0.lookup(closingID) == nil }
        XCTAssertEqual(
            registry.worker(0, .closedBytesOut).load(ordering: .relaxed) - closedBefore,
            closingBefore + frameBytes + closeFrameBytes, "every byte sent to the closed connection, counted once"
        )

        // The open one: exact once published.
        try RegistryProbe.wait(registry, "the broadcasts counted") { $0.lookup(watchedID)?.framesOut == 1 + UInt64(contents.count) }
        XCTAssertEqual(try XCTUnwrap(registry.lookup(watchedID)).bytesOut, watchedBefore + frameBytes)
        _ = sender
    }
}
