#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HiveIPC
import XCTest

/// The per-connection limits of `hive start`, against the real binary: what a client that breaks a limit gets
/// (status or close code, then the close), and that the worker that served it keeps serving everyone else, as
/// the same process (no crash, no restart).
///
/// Every hive here runs with short limits so a test takes a second or two; timing assertions have wide margins
/// (a 1 s timeout must fire between 0.5 s and 3 s) so a loaded machine does not make them flaky. Waits are the
/// clients' own deadlines and registry polling, never a fixed sleep; the only sleeps are a client deliberately
/// pausing between two writes, which is the behaviour under test.
class LimitsTestCase: XCTestCase {
    /// Started by this test case; stopped (and their log printed on failure) in tearDown, in case a test's own
    /// `defer` did not run.
    var launched: [HiveProcess] = []

    override func tearDown() {
        for hive in launched {
            _ = try? hive.stop()
            // Not `hasSucceeded`: it is false until the run has stopped, which is after tearDown.
            if (testRun?.totalFailureCount ?? 0) > 0 {
                let line = "----- hive log (\(hive.logURL.path)) -----\n\(hive.log())\n"
                FileHandle.standardError.write(Data(line.utf8))
            }
        }
        launched = []
        super.tearDown()
    }

    // MARK: Helpers

    /// A started hive, its port and its master's registry.
    struct Launched {
        let process: HiveProcess
        let port: Int
        let registry: SharedRegistry
    }

    /// `hive start --port 0 --workers <n> --run-dir <temp> <extra>`, ready, with its port and registry.
    func launch(_ extra: [String] = [], workers: Int = 2) throws -> Launched {
        let runDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hive-limits-\(UUID().uuidString.prefix(8))", isDirectory: true)
        let process = try HiveProcess(
            arguments: ["--port", "0", "--workers", String(workers), "--run-dir", runDirectory.path,
                        "--dispatch", "round-robin", "--redis", "none"] + extra)
        launched.append(process)
        let port = try process.startAndReadPort()
        let registry = try RegistryProbe.attach(masterPID: try XCTUnwrap(process.pid))
        return Launched(process: process, port: port, registry: registry)
    }

    func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
    }

    /// Waits until the registry lists a connection that `before` did not have, in one of `states`.
    func newConnection(
        _ hive: Launched, before: Set<ConnectionID>, states: Set<ProtocolState>
    ) throws -> ConnectionSnapshot {
        var found: ConnectionSnapshot?
        try RegistryProbe.wait(hive.registry, "a new connection in \(states)") { registry in
            found = registry.connections.first { !before.contains($0.id) && states.contains($0.protocolState) }
            return found != nil
        }
        return found!
    }

    func connectionIDs(_ hive: Launched) -> Set<ConnectionID> {
        Set(hive.registry.connections.map(\.id))
    }

    /// A new HTTP connection and the worker that adopted it (read from the registry before anything is sent, so
    /// it is known even when the server answers with an error and closes at once).
    func openHTTP(_ hive: Launched) throws -> (HTTPTestClient, worker: Int) {
        let before = connectionIDs(hive)
        let client = try HTTPTestClient(port: hive.port, timeout: 3)
        let snapshot = try newConnection(hive, before: before, states: [.http])
        return (client, snapshot.worker)
    }

    /// A new WebSocket on `path` and its worker; with `onWorker`, connects (closing the others) until one lands on
    /// that worker, which takes at most `workers` tries with round-robin dispatch.
    func openWebSocket(
        _ hive: Launched, path: String = "/echo", onWorker wanted: Int? = nil
    ) throws -> (WebSocketTestClient, worker: Int) {
        for _ in 0..<8 {
            let before = connectionIDs(hive)
            let client = try WebSocketTestClient(port: hive.port, path: path, timeout: 3)
            let snapshot = try newConnection(hive, before: before, states: [.websocket])
            if wanted == nil || snapshot.worker == wanted {
                return (client, snapshot.worker)
            }
            client.close()
        }
        throw TestClientError.misuse("8 WebSocket connections and none on worker \(wanted ?? -1)")
    }

    /// One echo client on each worker, connected before any offence.
    func openBystanders(_ hive: Launched) throws -> [Int: WebSocketTestClient] {
        var bystanders: [Int: WebSocketTestClient] = [:]
        for _ in 0..<8 where bystanders.count < 2 {
            let (client, worker) = try openWebSocket(hive)
            if bystanders[worker] == nil { bystanders[worker] = client }
        }
        XCTAssertEqual(bystanders.count, 2, "no echo client on some worker")
        return bystanders
    }

    /// The next message is a close frame with `code`, then the server closes the TCP connection.
    func expectCloseFrame(
        _ client: WebSocketTestClient, code: UInt16, _ what: String = "", file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        let message = try client.receiveMessage(timeout: 3)
        guard case .close(let received, _) = message else {
            return XCTFail("\(what): expected a close frame with \(code), got \(message)", file: file, line: line)
        }
        XCTAssertEqual(received, code, "\(what): close code", file: file, line: line)
        XCTAssertTrue(client.isClosedByPeer(within: 3), "\(what): TCP still open after the close frame", file: file,
                      line: line)
    }

    /// The bystanders echo text and binary exactly, a newcomer on `worker` does too, and no worker was replaced.
    func assertEveryoneStillEchoes(
        _ hive: Launched, bystanders: [Int: WebSocketTestClient], worker: Int, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        for (id, client) in bystanders.sorted(by: { $0.key < $1.key }) {
            let text = "still echoing on worker \(id): κόσμε"
            try client.sendText(text)
            XCTAssertEqual(try client.receiveMessage(), .text(text), "bystander on worker \(id)", file: file, line: line)
            let bytes: [UInt8] = [0, 1, 2, 0xFF, 0xFE]
            try client.sendBinary(bytes)
            XCTAssertEqual(try client.receiveMessage(), .binary(bytes), "bystander on worker \(id)", file: file,
                           line: line)
        }
        let (newcomer, _) = try openWebSocket(hive, onWorker: worker)
        try newcomer.sendText("newcomer")
        XCTAssertEqual(try newcomer.receiveMessage(), .text("newcomer"), "new client on worker \(worker)", file: file,
                       line: line)
        assertWorkersUnchanged(hive, file: file, line: line)
    }

    /// A new connection adopted by `worker` gets 200 "hello", from the same worker process as at start.
    func assertWorkerStillServes(
        _ hive: Launched, worker: Int, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        var served = false
        for _ in 0..<8 {
            let (client, adopted) = try openHTTP(hive)
            guard adopted == worker else { continue }
            let response = try client.request(path: "/hello")
            XCTAssertEqual(response.status, 200, "worker \(worker): \(response)", file: file, line: line)
            XCTAssertEqual(response.text, "hello", file: file, line: line)
            XCTAssertEqual(response.header("X-Hive-Worker"), String(worker), file: file, line: line)
            served = true
            break
        }
        XCTAssertTrue(served, "no new connection reached worker \(worker) in 8 tries", file: file, line: line)
        assertWorkersUnchanged(hive, file: file, line: line)
    }

    /// Each worker is still its first process: none crashed and was restarted by the master.
    func assertWorkersUnchanged(_ hive: Launched, file: StaticString = #filePath, line: UInt = #line) {
        let pids = hive.process.currentWorkerPIDs()
        XCTAssertEqual(Set(pids.values), Set(hive.process.workerPIDs()), "a worker was replaced", file: file, line: line)
        for (id, pid) in pids {
            XCTAssertTrue(HiveProcess.isAlive(pid: pid), "worker \(id) (pid \(pid)) is gone", file: file, line: line)
            XCTAssertEqual(
                hive.registry.worker(id, .restarts).load(ordering: .relaxed), 0, "worker \(id) restarted", file: file,
                line: line)
        }
    }

    func waitForCounter(
        _ hive: Launched, worker: Int, _ field: SharedRegistry.WorkerField, atLeast value: UInt64,
        timeout: TimeInterval = 3
    ) throws {
        try RegistryProbe.wait(hive.registry, timeout: timeout, "worker \(worker) \(field) >= \(value)") {
            $0.worker(worker, field).load(ordering: .relaxed) >= value
        }
    }

    /// Sends a request the server is expected to refuse part-way: it may answer and close before it has read
    /// everything, so a failed send (EPIPE, ECONNRESET) is not an error; the response read next is what counts.
    func sendIgnoringEarlyClose(_ client: HTTPTestClient, _ raw: String) {
        do {
            try client.send(raw: raw)
        } catch {
            HiveProcess.note("send stopped early (the server may have closed first): \(error)")
        }
    }

    func sendIgnoringEarlyClose(_ client: WebSocketTestClient, opcode: UInt8, _ payload: [UInt8]) throws {
        do {
            try client.sendFrame(opcode: opcode, payload: payload)
        } catch {
            HiveProcess.note("send stopped early (the server may have closed first): \(error)")
        }
    }
}
