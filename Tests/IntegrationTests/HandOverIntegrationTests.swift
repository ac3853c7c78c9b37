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

    /// A connection bound to a user is handed over with its user: `push --user` reaches it after the reload. One
    /// with envelopes is handed over too (it used to get 1012): channel messages still reach it, in envelopes.
    func testReload_keepsAConnectionsUser_andAnEnvelopedOneStaysConnected() throws {
        let (hive, port) = try startHive(workers: 1)
        let bound = try WebSocketTestClient(port: port)
        try bound.sendText(action("bind", ["user": "alice"]))
        XCTAssertEqual(try bound.receiveMessage(), .text("bound to alice"))
        let enveloped = try WebSocketTestClient(port: port, path: "/?channels=news&envelope=json")
        let id = try connectionID(of: enveloped)

        let reloaded = try reload(hive)
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        XCTAssertFalse(enveloped.receivedAnything(within: 0.05), "the enveloped connection got something unasked (a close?)")
        XCTAssertEqual(try connectionID(of: enveloped), id)
        try bound.sendText(action("publish", ["channel": "news", "content": "after the reload"]))
        XCTAssertEqual(try bound.receiveMessage(), .text("published to news"))
        XCTAssertEqual(try enveloped.receiveMessage(), .text(#"{"channel":"news","data":"after the reload"}"#))
        XCTAssertFalse(bound.receivedAnything(within: 0.05), "the bound connection got something unasked")
        let pushed = try HiveCLI.run(["push", "--user", "alice", "after the reload", "--run-dir", runDir(hive)])
        XCTAssertEqual(pushed.status, 0, pushed.stderr)
        XCTAssertEqual(try bound.receiveMessage(), .text("after the reload"))
        let rows = try XCTUnwrap(try HiveCLI.json(["connections", "--json", "--run-dir", runDir(hive)]) as? [[String: Any]])
        XCTAssertEqual(rows.compactMap { $0["user"] as? String }, ["alice"], "\(rows)")
    }

    /// A hook in the retired process broadcasts while the hand-over runs: the broadcast goes to the replacement,
    /// which delivers it to the connections it already adopted and logs it for those still on their way, so every
    /// connection gets it exactly once, wherever it is at that moment.
    func testABroadcastByAHookInTheRetiredProcessMidHandOver_reachesEveryConnectionOnce() throws {
        let (hive, port) = try startHive(workers: 1)
        let clients = try connect(4, port: port)
        let (speaker, _) = clients[0]
        // Its hooks run one at a time: the broadcast runs when the sleep ends, in the retired process, which holds
        // the speaker until then while it hands the idle clients over.
        try speaker.sendText(action("sleep", ["content": "1500"]))
        try speaker.sendText(action("broadcast", ["content": "mid hand-over"]))
        let reloaded = try reload(hive)
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        XCTAssertTrue(hive.log().contains("handing connections over"), "the hand-over ran")

        XCTAssertEqual(try speaker.receiveMessage(timeout: 5), .text("slept 1500 ms"))
        var heard: [[WebSocketTestMessage]] = []
        for (index, (client, _)) in clients.enumerated() {
            var messages: [WebSocketTestMessage] = []
            while client.receivedAnything(within: 1) { messages.append(try client.receiveMessage(timeout: 1)) }
            heard.append(messages)
            let broadcasts = messages.filter { $0 == .text("mid hand-over") }.count
            XCTAssertEqual(broadcasts, 1, "client \(index) got the broadcast \(broadcasts) times: \(messages)")
        }
        XCTAssertTrue(heard[0].contains(.text("broadcast sent to every WebSocket client")), "\(heard[0])")
        XCTAssertEqual(heard.flatMap { $0 }.filter { if case .close = $0 { true } else { false } }.count, 0, "no close")
    }

    /// Only a process that replaces a retired one keeps a hand-over log (the master says so at its start): the
    /// first start and a restart after a crash have nobody to take connections over from.
    func testOnlyAReplacementKeepsAHandOverLog_notTheFirstStartNorACrashRestart() throws {
        let (hive, _) = try startHive(workers: 2)
        let marker = "replacing a retired worker: keeping a hand-over log"
        XCTAssertFalse(hive.log().contains(marker), "the first start keeps none")
        let crashed = try XCTUnwrap(hive.currentWorkerPIDs()[1])
        kill(crashed, SIGKILL)
        try RegistryProbe.wait(try RegistryProbe.attach(masterPID: try XCTUnwrap(hive.pid)), "worker 1 restarted") { registry in
            let pid = Int32(truncatingIfNeeded: registry.worker(1, .pid).load(ordering: .relaxed))
            return pid > 0 && pid != crashed && registry.worker(1, .state).load(ordering: .relaxed) == WorkerState.running.rawValue
        }
        XCTAssertFalse(hive.log().contains(marker), "a restart after a crash keeps none")
        let reloaded = try reload(hive)
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        XCTAssertEqual(hive.log().components(separatedBy: marker).count - 1, 2, "each replacement keeps one")
    }

    /// Waits until the registry shows a connection that has read at least `bytes` (the server holds them).
    private func waitUntilRead(_ registry: SharedRegistry, atLeast bytes: UInt64, _ what: String) throws {
        try RegistryProbe.wait(registry, what) { registry in
            registry.connections.contains { $0.bytesIn >= bytes }
        }
    }

    /// A client halfway through a fragmented message, one halfway through a frame larger than one IPC record (the
    /// state travels in chunks), and one with both: each gets its message echoed whole after the reload.
    func testReload_continuesAFragmentedMessageAndAFrameCutInTheMiddle() throws {
        let (hive, port) = try startHive(workers: 1)
        let registry = try RegistryProbe.attach(masterPID: try XCTUnwrap(hive.pid))
        let fragmented = try WebSocketTestClient(port: port, path: "/echo")
        let large = try WebSocketTestClient(port: port, path: "/echo")
        let both = try WebSocketTestClient(port: port, path: "/echo")

        try fragmented.sendFrame(opcode: WebSocketOpcode.text, payload: Array("first part, ".utf8), fin: false)
        try fragmented.sendPing(Array("read?".utf8))  // answered: the server read the fragment
        XCTAssertEqual(try fragmented.receiveMessage(), .pong)

        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        let bigFrame = WebSocketTestClient.encodeFrame(opcode: WebSocketOpcode.binary, payload: big, fin: true, masked: true, rsv: 0)
        try large.send(bytes: Array(bigFrame.prefix(200_000)))
        try waitUntilRead(registry, atLeast: 200_000, "the first 200,000 bytes of the large frame read")

        let head = Array("é".utf8)  // a character cut between the fragments
        try both.sendFrame(opcode: WebSocketOpcode.text, payload: Array("ab".utf8) + [head[0]], fin: false)
        let tail = (0..<100_000).map { _ in UInt8(ascii: "z") }
        let continuation = WebSocketTestClient.encodeFrame(
            opcode: WebSocketOpcode.continuation, payload: [head[1]] + tail, fin: true, masked: true, rsv: 0)
        try both.send(bytes: Array(continuation.prefix(70_000)))
        try waitUntilRead(registry, atLeast: 70_000, "the first 70,000 bytes of the continuation read")
        let before = hive.currentWorkerPIDs()

        let reloaded = try reload(hive)
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        XCTAssertNotEqual(hive.currentWorkerPIDs()[0], before[0])

        try fragmented.sendFrame(opcode: WebSocketOpcode.continuation, payload: Array("second part".utf8), fin: true)
        XCTAssertEqual(try fragmented.receiveMessage(timeout: 5), .text("first part, second part"))
        try large.send(bytes: Array(bigFrame.dropFirst(200_000)))
        let echoedBig = try large.receiveMessage(timeout: 5)
        XCTAssertTrue(echoedBig == .binary(big), "the large frame came back other than sent: \(String(describing: echoedBig).prefix(80))")
        try both.send(bytes: Array(continuation.dropFirst(70_000)))
        let echoedBoth = try both.receiveMessage(timeout: 5)
        XCTAssertTrue(echoedBoth == .text("abé" + String(decoding: tail, as: UTF8.self)),
                      "the fragmented message came back other than sent: \(String(describing: echoedBoth).prefix(80))")
    }

    private func assertClosedWith1012(_ clients: [(client: WebSocketTestClient, id: ConnectionID)]) throws {
        for (client, id) in clients {
            guard case .close(let code, _) = try client.receiveMessage(timeout: 5) else {
                return XCTFail("connection \(id) got no close frame")
            }
            XCTAssertEqual(code, 1012, "connection \(id) is told to reconnect")
        }
    }

    func testReloadDrop_closesTheOldWorkersClientsWith1012() throws {
        let (hive, port) = try startHive(workers: 2)
        let clients = try connect(4, port: port)
        let reloaded = try reload(hive, ["--drop"])
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        try assertClosedWith1012(clients)
        XCTAssertFalse(hive.log().contains("handing connections over"))
    }

    /// The new binary reads another hand-over version: the connections stay with the old process, which closes
    /// them with 1012 as a reload without hand-over does; the replacement says so once, not per connection.
    func testReload_toABinaryWithAnotherHandOverVersion_fallsBackTo1012AndLogsItOnce() throws {
        let (hive, port) = try startHive(workers: 1, environment: ["HIVE_TEST_HANDOVER_VERSION": "999"])
        let clients = try connect(3, port: port)
        let reloaded = try reload(hive)
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        try assertClosedWith1012(clients)
        let log = hive.log()
        let warnings = log.components(separatedBy: "hands connections over in another format").count - 1
        XCTAssertEqual(warnings, 1, "logged once")
        XCTAssertTrue(log.contains("handOver.version=999"), "the log names the version")
        // New clients are served by the new process as usual.
        let fresh = try WebSocketTestClient(port: port)
        try fresh.sendText(action("hello"))
        XCTAssertEqual(try fresh.receiveMessage(), .text("hello"))
    }

    /// kill -9 of the replacement in the middle of the hand-over: what it had adopted dies with it; what the old
    /// process had not passed yet (clients whose hook is still running are not passed before it ends) stays there,
    /// still served, and goes to the next replacement; the master recovers and `hive reload` reports the death (exit 1).
    func testReload_whenTheReplacementIsKilledMidHandOver_theOldProcessKeepsAndLaterPassesWhatItHeld() throws {
        let (hive, port) = try startHive(workers: 1)
        let registry = try RegistryProbe.attach(masterPID: try XCTUnwrap(hive.pid))
        let clients = try connect(8, port: port)
        let old = try XCTUnwrap(hive.currentWorkerPIDs()[0])
        // Half of them are inside a hook (sleeping 1.5 s) when the reload comes: those are not passed before it ends.
        let sleepers = Array(clients.prefix(4))
        for (client, _) in sleepers { try client.sendText(action("sleep", ["content": "1500"])) }

        let cli = ResultBox()
        let done = DispatchSemaphore(value: 0)
        let dir = runDir(hive)
        Thread.detachNewThread {
            cli.result = try? HiveCLI.run(["reload", "--run-dir", dir], timeout: 40)
            done.signal()
        }
        try hive.waitForLog(containing: "handing connections over")
        let first = Int32(truncatingIfNeeded: registry.worker(0, .pid).load(ordering: .relaxed))
        XCTAssertNotEqual(first, old)
        usleep(100_000)  // the idle ones ahead of the sleepers are passed meanwhile
        let owners = clients.map { Int32(truncatingIfNeeded: registry.slot($0.id.slot, .ownerPID).load(ordering: .relaxed)) }
        kill(first, SIGKILL)

        XCTAssertEqual(done.wait(timeout: .now() + 45), .success)
        let result = try XCTUnwrap(cli.result)
        XCTAssertEqual(result.status, 1, "the reload reports the replacement's death: \(result.stdout)")
        XCTAssertTrue(result.stderr.contains("worker 0 (exit signal 9)"), result.stderr)
        let second = try XCTUnwrap(hive.currentWorkerPIDs()[0])
        XCTAssertFalse([old, first].contains(second), "the master started another replacement")
        XCTAssertEqual(HiveProcess.waitUntilGone([old], timeout: 5), [], "the old process left after its hand-over")

        var survived = 0
        for (index, (client, id)) in clients.enumerated() {
            if owners[index] == first {
                XCTAssertTrue(client.isClosedByPeer(within: 2), "connection \(id) died with the replacement that held it")
                continue
            }
            if index < sleepers.count {
                XCTAssertEqual(try client.receiveMessage(timeout: 5), .text("slept 1500 ms"), "connection \(id)")
            }
            XCTAssertEqual(try connectionID(of: client), id.rawValue, "connection \(id) is served on")
            let owner = Int32(truncatingIfNeeded: registry.slot(id.slot, .ownerPID).load(ordering: .relaxed))
            XCTAssertEqual(owner, second, "connection \(id) went to the next replacement")
            survived += 1
        }
        XCTAssertGreaterThanOrEqual(survived, sleepers.count, "at least the sleepers were not passed before the kill")
    }
}

/// The `hive reload` run on another thread; read after its semaphore.
private final class ResultBox: @unchecked Sendable {
    var result: HiveCLI.Result?
}
