import Foundation
import HiveIPC
import XCTest

/// An operator's walk through the CLI against a real master: start, status, connections, push, a crash, reload,
/// stop — plus the error cases of each.
final class OperationsIntegrationTests: HiveTestCase {
    private func runDir(_ hive: HiveProcess) -> String { hive.directory.appendingPathComponent("run").path }

    private func status(_ hive: HiveProcess) throws -> [String: Any] {
        try XCTUnwrap(try HiveCLI.json(["status", "--json", "--run-dir", runDir(hive)]) as? [String: Any])
    }

    private func workers(_ status: [String: Any]) throws -> [[String: Any]] {
        try XCTUnwrap(status["workers"] as? [[String: Any]])
    }

    func testWalk_startStatusConnectionsPushKillReloadStop() throws {
        let (hive, port) = try startHive(workers: 2, ["--dispatch", "round-robin"])
        let dir = runDir(hive)

        // Clients: one keep-alive HTTP (the favicon of the story) and two WebSockets, one per worker.
        let favicon = try HTTPTestClient(port: port)
        XCTAssertEqual(try favicon.request(path: "/favicon.ico").status, 200)
        let a = try WebSocketTestClient(port: port)
        let b = try WebSocketTestClient(port: port)
        let aID = try connectionID(of: a)
        let bID = try connectionID(of: b)

        // status: every worker listed, counts match the clients.
        var current = try status(hive)
        let master = try XCTUnwrap(current["master"] as? [String: Any])
        XCTAssertEqual(master["pid"] as? Int, Int(hive.pid!))
        XCTAssertEqual(master["listen"] as? String, "127.0.0.1:\(port)")
        XCTAssertEqual(master["dispatch"] as? String, "round-robin")
        XCTAssertTrue(current["redis"] is NSNull)
        let connections = try XCTUnwrap(current["connections"] as? [String: Any])
        XCTAssertEqual(connections["http"] as? Int, 1)
        XCTAssertEqual(connections["websocket"] as? Int, 2)
        var rows = try workers(current)
        XCTAssertEqual(rows.map { $0["id"] as? Int }, [0, 1])
        XCTAssertEqual(Set(rows.compactMap { $0["pid"] as? Int }), Set(hive.workerPIDs().map(Int.init)))
        XCTAssertTrue(rows.allSatisfy { $0["state"] as? String == "running" && ($0["rssBytes"] as? Int ?? 0) > 0 })
        let human = try HiveCLI.run(["status", "--run-dir", dir])
        XCTAssertEqual(human.status, 0)
        XCTAssertTrue(human.stdout.contains("HIVE STATUS") && human.stdout.contains("connections: 3 (http 1, websocket 2)"), human.stdout)

        // connections: the right protocol per connection.
        let listed = try XCTUnwrap(try HiveCLI.json(["connections", "--json", "--run-dir", dir]) as? [[String: Any]])
        let byID = Dictionary(uniqueKeysWithValues: listed.map { ($0["id"] as! UInt64, $0["protocol"] as! String) })
        XCTAssertEqual(byID[aID], "websocket")
        XCTAssertEqual(byID[bID], "websocket")
        XCTAssertEqual(byID.values.filter { $0 == "http" }.count, 1)
        let httpID = try XCTUnwrap(byID.first { $0.value == "http" }?.key)
        let onlyHTTP = try XCTUnwrap(try HiveCLI.json(["connections", "--json", "--protocol", "http", "--run-dir", dir]) as? [[String: Any]])
        XCTAssertEqual(onlyHTTP.map { $0["id"] as? UInt64 }, [httpID])

        // push: to a WebSocket it arrives; to the HTTP keep-alive it is the library's typed error.
        let pushed = try HiveCLI.run(["push", String(aID), "from the shell", "--run-dir", dir])
        XCTAssertEqual(pushed.status, 0, pushed.stderr)
        XCTAssertEqual(try a.receiveMessage(), .text("from the shell"))
        let refused = try HiveCLI.run(["push", String(httpID), "x", "--run-dir", dir])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(
            refused.stderr,
            "hive: connection \(httpID) is a plain HTTP connection (protocol http), not a WebSocket; only WebSocket "
                + "connections can receive pushes\n"
        )
        XCTAssertFalse(favicon.receivedAnything(within: 0.2))
        let unknown = try HiveCLI.run(["push", "999", "x", "--run-dir", dir])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertEqual(
            unknown.stderr,
            "hive: connection 999 does not exist (never opened, or already closed); `hive connections` lists the open ones\n"
        )

        // kill -9 one worker: it comes back with a new pid and restarts = 1; its client sees the close; the other
        // worker's client keeps receiving broadcasts.
        let victimWorker = ConnectionID(rawValue: aID).worker
        let victim = try XCTUnwrap(hive.currentWorkerPIDs()[victimWorker])
        kill(victim, SIGKILL)
        XCTAssertTrue(a.isClosedByPeer(within: 3))
        try hive.waitForLog(containing: "worker \(victimWorker) pid", count: 2)
        try waitFor("worker \(victimWorker) running again") {
            let row = try self.workers(try self.status(hive))[victimWorker]
            return row["state"] as? String == "running" && row["restarts"] as? Int == 1
        }
        current = try status(hive)
        rows = try workers(current)
        XCTAssertNotEqual(rows[victimWorker]["pid"] as? Int, Int(victim))
        XCTAssertEqual(rows[victimWorker]["lastExit"] as? String, "signal 9")
        let c = try WebSocketTestClient(port: port)
        _ = try connectionID(of: c)
        try c.sendText(action("broadcast", ["content": "after the crash"]))
        XCTAssertEqual(try b.receiveMessage(), .text("after the crash"))

        // reload --drop: every worker pid changes, the port answers throughout, new clients reach the new workers,
        // the old workers' clients are told to reconnect (without --drop they are handed over: HandOverIntegrationTests).
        let before = Set(hive.currentWorkerPIDs().values)
        let probe = ProbeLoop(port: port)
        let reloaded = try HiveCLI.run(["reload", "--drop", "--run-dir", dir])
        let probes = probe.stop()
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        let after = Set(try workers(try status(hive)).compactMap { $0["pid"] as? Int }.map(Int32.init))
        XCTAssertTrue(after.isDisjoint(with: before), "before \(before), after \(after)")
        XCTAssertGreaterThan(probes.ok, 0)
        XCTAssertEqual(probes.failed, 0, "requests failed during the reload")
        if case .close(let code, _) = try b.receiveMessage(timeout: 5) {
            XCTAssertEqual(code, 1012, "clients of a replaced worker are told to reconnect")
        } else {
            XCTFail("the old worker's client got no close frame")
        }
        var served: Set<Int> = []
        for _ in 0..<4 {
            let client = try WebSocketTestClient(port: port)
            let id = ConnectionID(rawValue: try connectionID(of: client))
            served.insert(id.worker)
            XCTAssertEqual(try XCTUnwrap(try workers(try status(hive))[id.worker]["pid"] as? Int).description,
                           String(try XCTUnwrap(hive.currentWorkerPIDs()[id.worker])))
        }
        XCTAssertEqual(served, [0, 1])

        // stop: exit 0, nothing left.
        let workerPIDs = Array(hive.currentWorkerPIDs().values)
        let stopped = try HiveCLI.run(["stop", "--run-dir", dir])
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertEqual(hive.exitStatus ?? (try? hive.stop()), 0)
        XCTAssertEqual(HiveProcess.waitUntilGone(workerPIDs, timeout: 5), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/hive.pid"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/hive.sock"))
    }

    func testDisconnect_closesAWebSocketWithTheCode_andAnHTTPConnection() throws {
        let (hive, port) = try startHive(workers: 2, ["--dispatch", "round-robin"])
        let dir = runDir(hive)
        let socket = try WebSocketTestClient(port: port)
        let socketID = try connectionID(of: socket)
        let http = try HTTPTestClient(port: port)
        let httpID = try XCTUnwrap(try http.request(path: "/hello").header("X-Hive-Connection"))

        // Codes a server may not send are refused by the CLI, and by the master if something else asks it.
        for code in ["1005", "999", "1006", "1004", "1015", "2000", "5000", "70000"] {
            let refused = try HiveCLI.run(["disconnect", String(socketID), "--code", code, "--run-dir", dir])
            XCTAssertEqual(refused.status, 1, "--code \(code): \(refused.stdout)")
            XCTAssertTrue(refused.stderr.hasPrefix("hive: error: --code: close code \(code) "), refused.stderr)
            let raw = try rawControl(dir, "disconnect \(socketID) \(code)\n")
            XCTAssertTrue(raw.hasPrefix("error close code \(code) "), "\(code): \(raw)")
            XCTAssertTrue(raw.contains("(RFC 6455 7.4); use 1000 (normal)"), raw)
        }
        XCTAssertFalse(socket.receivedAnything(within: 0.2), "a refused disconnect must not close the connection")
        let closed = try HiveCLI.run(["disconnect", String(socketID), "--code", "4000", "--run-dir", dir])
        XCTAssertEqual(closed.status, 0, closed.stderr)
        XCTAssertEqual(try socket.receiveMessage(), .close(code: 4000, reason: "disconnected by an operator"))
        XCTAssertEqual(try HiveCLI.run(["disconnect", httpID, "--run-dir", dir]).status, 0)
        XCTAssertTrue(http.isClosedByPeer(within: 2))
        let unknown = try HiveCLI.run(["disconnect", "77", "--run-dir", dir])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("connection 77 does not exist"), unknown.stderr)
    }

    /// Between the server's close frame and the client's answer a WebSocket is `closing`: a push says so.
    func testPush_toAClosingWebSocket_saysItIsClosing() throws {
        let (hive, port) = try startHive(workers: 1)
        let dir = runDir(hive)
        let socket = try WebSocketTestClient(port: port)
        let id = try connectionID(of: socket)
        XCTAssertEqual(try HiveCLI.run(["disconnect", String(id), "--code", "1001", "--run-dir", dir]).status, 0)
        XCTAssertEqual(try socket.receiveMessage(), .close(code: 1001, reason: "disconnected by an operator"))
        // The test client does not answer the close: the server waits 2 s for it, with the connection closing.
        let pushed = try HiveCLI.run(["push", String(id), "late", "--run-dir", dir])
        XCTAssertEqual(pushed.status, 1)
        XCTAssertEqual(
            pushed.stderr, "hive: connection \(id) is closing its WebSocket (protocol closing), so it takes no more pushes\n"
        )
    }

    /// Errors speak of `hive` commands, never of the library's API calls.
    func testOperatorErrors_nameNoLibraryCalls() throws {
        let (hive, port) = try startHive(workers: 1)
        let http = try HTTPTestClient(port: port)
        let httpID = try XCTUnwrap(try http.request(path: "/hello").header("X-Hive-Connection"))
        for command in [["push", httpID, "x"], ["push", "12345", "x"], ["disconnect", "12345"]] {
            let result = try HiveCLI.run(command + ["--run-dir", runDir(hive)])
            XCTAssertEqual(result.status, 1, "\(command)")
            for api in ["exists(", "isEstablished(", "HiveError", "unknownConnection"] {
                XCTAssertFalse(result.stderr.contains(api), "\(command): \(result.stderr)")
            }
        }
    }

    func testStatus_withNothingRunning_exits1WithOneClearLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hive-none-\(UUID().uuidString)").path
        for command in [["status"], ["connections"], ["stop"], ["reload"], ["push", "1", "x"]] {
            let result = try HiveCLI.run(command + ["--run-dir", dir])
            XCTAssertEqual(result.status, 1, "\(command)")
            XCTAssertEqual(result.stderr, "hive: no Hive master is running for run dir \(dir) (start one with `hive start`, "
                + "or pass --run-dir / --port of the one you mean)\n")
        }
    }

    func testStalePIDFile_isReplaced() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hive-stale-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // A pid that is gone, then a live pid that belongs to another program.
        for stale in ["999999", String(getpid())] {
            try stale.write(toFile: dir + "/hive.pid", atomically: true, encoding: .utf8)
            let hive = try HiveProcess(arguments: ["--port", "0", "--workers", "1", "--run-dir", dir])
            try hive.start()
            XCTAssertEqual(try String(contentsOfFile: dir + "/hive.pid", encoding: .utf8), "\(hive.pid!)\n")
            XCTAssertEqual(try hive.stop(), 0)
        }
    }

    func testControlSocket_isOwnerOnly() throws {
        let (hive, _) = try startHive(workers: 1)
        let attributes = try FileManager.default.attributesOfItem(atPath: runDir(hive) + "/hive.sock")
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertEqual((attributes[.ownerAccountID] as? NSNumber)?.uint32Value, geteuid())
    }

    func testControlSocket_answersGarbageWithAnErrorAndKeepsServing() throws {
        let (hive, port) = try startHive(workers: 1)
        let reply = try rawControl(runDir(hive), "make coffee\n")
        XCTAssertTrue(reply.hasPrefix("error unknown request \"make coffee\""), reply)
        let tooLarge = try rawControl(runDir(hive), String(repeating: "x", count: 70_000))
        XCTAssertTrue(tooLarge.hasPrefix("error request too large"), tooLarge)
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
        XCTAssertEqual(try HiveCLI.run(["status", "--run-dir", runDir(hive)]).status, 0)
    }

    /// Found by the fuzz-control target: a negative push length trapped in the master (`prefix` of a negative
    /// count), and the whole server went down with it.
    func testControlSocket_answersANegativePushLengthWithAnErrorAndKeepsServing() throws {
        let (hive, port) = try startHive(workers: 1)
        let reply = try rawControl(runDir(hive), "push 1 -1\n")
        XCTAssertTrue(reply.hasPrefix("error malformed push request"), reply)
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
        XCTAssertEqual(try HiveCLI.run(["status", "--run-dir", runDir(hive)]).status, 0)
    }

    func testDaemon_detachesAndIsFoundThroughTheRunDir() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hive-daemon-\(UUID().uuidString)").path
        let started = try HiveCLI.run(["start", "--daemon", "--port", "0", "--workers", "1", "--run-dir", dir])
        XCTAssertEqual(started.status, 0, started.stderr)
        let port = try XCTUnwrap(HiveProcess.readyPort(in: started.stdout), started.stdout)
        XCTAssertTrue(started.stdout.contains("ready on http://127.0.0.1:\(port) "), started.stdout)
        let pid = try XCTUnwrap(Int32(try String(contentsOfFile: dir + "/hive.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(pid, SIGKILL) }
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
        XCTAssertEqual(try HiveCLI.run(["status", "--run-dir", dir]).status, 0)
        let again = try HiveCLI.run(["start", "--daemon", "--port", "0", "--run-dir", dir])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("already belongs to a running Hive master (pid \(pid))"), again.stderr)
        XCTAssertEqual(try HiveCLI.run(["stop", "--run-dir", dir]).status, 0)
        XCTAssertFalse(HiveProcess.isAlive(pid: pid))
        XCTAssertTrue(try String(contentsOfFile: dir + "/hive.log", encoding: .utf8).contains("master stopped"))
    }

    // MARK: helpers

    private func waitFor(_ what: String, timeout: TimeInterval = 5, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while try !condition() {
            if Date() > deadline { throw TestClientError.misuse("timed out waiting for \(what)") }
            usleep(20_000)
        }
    }

    private func rawControl(_ runDir: String, _ request: String) throws -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array((runDir + "/hive.sock").utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(rc, 0)
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            reply += chunk[0..<n]
        }
        return String(decoding: reply, as: UTF8.self)
    }
}

/// Sends `GET /hello` on fresh connections in a background thread until stopped; counts answers and failures.
final class ProbeLoop: @unchecked Sendable {
    // @unchecked: `running`, `ok` and `failed` are guarded by `lock`.
    private let lock = NSLock()
    private var running = true
    private var ok = 0
    private var failed = 0
    private let done = DispatchSemaphore(value: 0)

    init(port: Int) {
        Thread {
            while self.lock.withLock({ self.running }) {
                let success = (try? HTTPTestClient(port: port, timeout: 2).request(path: "/hello").status) == 200
                self.lock.withLock { if success { self.ok += 1 } else { self.failed += 1 } }
                usleep(5_000)
            }
            self.done.signal()
        }.start()
    }

    func stop() -> (ok: Int, failed: Int) {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { (ok, failed) }
    }
}
