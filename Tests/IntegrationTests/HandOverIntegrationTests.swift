import Foundation
import HiveIPC
import XCTest

/// `hive reload` hands every WebSocket connection to the new worker processes (issue 12): the client keeps its TCP
/// connection and its connection id, sees no close frame, and the registry shows the new owner.
final class HandOverIntegrationTests: HiveTestCase {
    private func runDir(_ hive: HiveProcess) -> String { hive.directory.appendingPathComponent("run").path }

    /// Connects `count` demo clients and returns them with their connection ids.
    private func connect(_ count: Int, port: Int, path: String = "/") throws -> [(client: WebSocketTestClient, id: ConnectionID)] {
        try (0..<count).map { _ in
            let client = try WebSocketTestClient(port: port, path: path)
            return (client, ConnectionID(rawValue: path == "/" ? try connectionID(of: client) : 0))
        }
    }

    private func reload(_ hive: HiveProcess, _ extra: [String] = []) throws -> HiveCLI.Result {
        try HiveCLI.run(["reload", "--run-dir", runDir(hive)] + extra, timeout: 40)
    }

    func testReload_handsEveryWebSocketOverOnTheSameTCPConnection_sameIDNewPIDCountersGoOn() throws {
        let (hive, port) = try startHive(workers: 2)
        let clients = try connect(6, port: port)
        XCTAssertEqual(Set(clients.map(\.id.worker)), [0, 1], "both workers hold clients")
        for (client, _) in clients {
            try client.sendText(action("hello"))
            XCTAssertEqual(try client.receiveMessage(), .text("hello"))
        }
        let registry = try RegistryProbe.attach(masterPID: try XCTUnwrap(hive.pid))
        let framesBefore = clients.map { registry.slot($0.id.slot, .framesIn).load(ordering: .relaxed) }
        let before = hive.currentWorkerPIDs()

        let reloaded = try reload(hive)
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        let after = hive.currentWorkerPIDs()
        XCTAssertTrue(Set(after.values).isDisjoint(with: Set(before.values)), "before \(before), after \(after)")
        XCTAssertEqual(HiveProcess.waitUntilGone(Array(before.values), timeout: 1), [], "the old processes left")

        for (index, (client, id)) in clients.enumerated() {
            XCTAssertFalse(client.receivedAnything(within: 0.02), "client \(id) got something unasked (a close frame?)")
            // The same socket: the reply names the same connection id, now served by the new process.
            XCTAssertEqual(try connectionID(of: client), id.rawValue)
            try client.sendText(action("hello"))
            XCTAssertEqual(try client.receiveMessage(), .text("hello"))
            let owner = Int32(truncatingIfNeeded: registry.slot(id.slot, .ownerPID).load(ordering: .relaxed))
            XCTAssertEqual(owner, after[id.worker], "connection \(id) is under its worker's new pid")
            XCTAssertEqual(registry.protocolState(of: id), .websocket)
            XCTAssertEqual(registry.slot(id.slot, .framesIn).load(ordering: .relaxed), framesBefore[index] + 2,
                           "counters go on from where they were")
        }
        let rows = try XCTUnwrap(try HiveCLI.json(["connections", "--json", "--run-dir", runDir(hive)]) as? [[String: Any]])
        for (_, id) in clients {
            let row = try XCTUnwrap(rows.first { ($0["id"] as? UInt64) == id.rawValue }, "connections lists \(id)")
            XCTAssertEqual((row["pid"] as? Int).map(Int32.init), after[id.worker])
        }
        let status = try XCTUnwrap(try HiveCLI.json(["status", "--json", "--run-dir", runDir(hive)]) as? [String: Any])
        let workers = try XCTUnwrap(status["workers"] as? [[String: Any]])
        for worker in workers {
            let id = try XCTUnwrap(worker["id"] as? Int)
            XCTAssertEqual((worker["pid"] as? Int).map(Int32.init), after[id])
        }
        // The worker counters still count each connection once.
        let open = (0..<2).map { registry.worker($0, .webSocketConnections).load(ordering: .relaxed) }
        XCTAssertEqual(open.reduce(0, +), 6, "open WebSockets per worker: \(open)")
    }
}
