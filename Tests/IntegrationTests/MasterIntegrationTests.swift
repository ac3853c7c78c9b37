import Foundation
import HiveIPC
import XCTest

/// The master under stress: out of file descriptors, and a worker that dies.
final class MasterIntegrationTests: HiveTestCase {
    /// With its descriptor limit at what it already holds, the master's accept fails with EMFILE: it must back
    /// off (counted, logged, no busy loop) and serve the waiting client once descriptors are available again.
    func testAcceptEMFILE_backsOffWithoutSpinning_andRecovers() throws {
        let (hive, port) = try startHive(workers: 1)
        let master = hive.pid!
        let registry = try RegistryProbe.attach(masterPID: master)
        // The limit applies to descriptor numbers: at the lowest free number, the next accept gets EMFILE.
        let open = Set(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(master)/fd").compactMap(Int.init))
        let lowestFree = (0...).first { !open.contains($0) }!
        try prlimit(pid: master, openFiles: lowestFree)
        defer { try? prlimit(pid: master, openFiles: 1024) }

        let client = try HTTPTestClient(port: port, timeout: 5)  // completes in the kernel's backlog
        try client.send(raw: "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        try RegistryProbe.wait(registry, "an accept error") { $0.header(.acceptErrors).load(ordering: .relaxed) > 0 }
        let cpuBefore = try cpuTicks(of: master)
        usleep(1_000_000)
        let cpuAfter = try cpuTicks(of: master)
        // Spinning on a pending connection would burn ~100 ticks per second; backing off 100 ms costs ~0.
        XCTAssertLessThan(cpuAfter - cpuBefore, 20, "the master spun while out of descriptors")
        let errors = registry.header(.acceptErrors).load(ordering: .relaxed)
        XCTAssertLessThan(errors, 30, "accept was retried \(errors) times in about a second")
        try hive.waitForLog(containing: "out of file descriptors; pausing accept for 100 ms")

        try prlimit(pid: master, openFiles: 1024)
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "hello")
    }

    /// A worker at its open-file limit cannot receive a socket: the connection is lost, but its slot is given back
    /// (no phantom connection for dispatch, no leak) and the worker serves again once descriptors free up.
    func testWorkerOutOfDescriptors_losesTheConnectionButNotTheSlot() throws {
        let (hive, port) = try startHive(workers: 1)
        let registry = try RegistryProbe.attach(masterPID: hive.pid!)
        let worker = try XCTUnwrap(hive.currentWorkerPIDs()[0])
        let open = Set(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(worker)/fd").compactMap(Int.init))
        try prlimit(pid: worker, openFiles: (0...).first { !open.contains($0) }!)

        let client = try HTTPTestClient(port: port, timeout: 3)
        try client.send(raw: "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(client.isClosedByPeer(within: 3), "the lost connection was not closed")
        try hive.waitForLog(containing: "a connection was lost on its way to this worker")
        XCTAssertEqual(Array(registry.connections).count, 0)
        XCTAssertEqual(registry.openConnections(ofWorker: 0), 0)

        try prlimit(pid: worker, openFiles: 1024)
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
    }

    /// A worker killed with SIGKILL is restarted with the same id; its connections are freed in the registry and
    /// the other worker's clients are untouched.
    func testWorkerKilled_isRestartedWithTheSameID_andOthersKeepTheirClients() throws {
        let (hive, port) = try startHive(workers: 2, ["--dispatch", "round-robin"])
        let registry = try RegistryProbe.attach(masterPID: hive.pid!)
        let a = try WebSocketTestClient(port: port)
        let b = try WebSocketTestClient(port: port)
        let aID = ConnectionID(rawValue: try connectionID(of: a))
        let bID = ConnectionID(rawValue: try connectionID(of: b))
        XCTAssertNotEqual(aID.worker, bID.worker)
        let victim = try XCTUnwrap(hive.currentWorkerPIDs()[aID.worker])

        kill(victim, SIGKILL)
        XCTAssertTrue(a.isClosedByPeer(within: 3), "the dead worker's client was not disconnected")
        try hive.waitForLog(containing: "worker \(aID.worker) pid", count: 2)
        let replacement = try XCTUnwrap(hive.currentWorkerPIDs()[aID.worker])
        XCTAssertNotEqual(replacement, victim)
        try RegistryProbe.wait(registry, "the replacement running") {
            $0.worker(aID.worker, .state).load(ordering: .relaxed) == WorkerState.running.rawValue
        }
        XCTAssertEqual(registry.worker(aID.worker, .restarts).load(ordering: .relaxed), 1)
        XCTAssertNil(registry.lookup(aID))
        XCTAssertEqual(registry.protocolState(of: bID), .websocket)

        try b.sendText(action("hello"))
        XCTAssertEqual(try b.receiveMessage(), .text("hello"))
        var reached: Set<Int> = []
        for _ in 0..<4 { reached.insert(try worker(of: try WebSocketTestClient(port: port))) }
        XCTAssertEqual(reached, [0, 1], "the replacement takes new clients")
    }

    /// A worker that keeps dying young is restarted with a growing delay (100 ms doubling), so a crash loop
    /// never spins the master; the first restart is immediate.
    func testCrashLoop_isRestartedWithGrowingBackOff() throws {
        let (hive, _) = try startHive(workers: 1)
        for round in 1...4 {
            let pid = try XCTUnwrap(hive.currentWorkerPIDs()[0])
            kill(pid, SIGKILL)
            try hive.waitForLog(containing: "worker 0 pid", count: round + 1, timeout: 5)
        }
        let delays = hive.log().split(separator: "\n").filter { $0.contains("worker exited unexpectedly") }.compactMap {
            line -> Int? in
            guard let range = line.range(of: "restart.delayMs=") else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
        XCTAssertEqual(delays, [0, 100, 200, 400])
    }

    private func prlimit(pid: Int32, openFiles: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        process.arguments = ["--pid", String(pid), "--nofile=\(openFiles):"]  // the soft limit: lowering the hard one is not allowed here
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "prlimit failed")
    }

    /// utime + stime of a process, in clock ticks (/proc/<pid>/stat fields 14 and 15).
    private func cpuTicks(of pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.range(of: ")")!.upperBound...].split(separator: " ")
        return Int(fields[11])! + Int(fields[12])!
    }
}
