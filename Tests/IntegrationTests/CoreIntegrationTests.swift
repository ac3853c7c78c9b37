import Foundation
import HiveIPC
import XCTest

/// The core promises, against the real binary: a master hands connections to every worker, HTTP and WebSocket
/// share one port, the registry knows each connection's protocol, and pushes reach only WebSocket clients.
final class CoreIntegrationTests: HiveTestCase {
    func testStart_printsEveryWorkerThenReady_andWorkersAreAlive() throws {
        let (hive, _) = try startHive(workers: 3)
        let pids = hive.workerPIDs()
        XCTAssertEqual(pids.count, 3)
        XCTAssertTrue(pids.allSatisfy(HiveProcess.isAlive(pid:)))
        XCTAssertTrue(hive.log().contains("ready on http://127.0.0.1:"))
    }

    func testConnections_areSpreadOverEveryWorker() throws {
        let (_, port) = try startHive(workers: 3, ["--dispatch", "round-robin"])
        var workers: Set<Int> = []
        var clients: [WebSocketTestClient] = []
        for _ in 0..<6 {
            let client = try WebSocketTestClient(port: port)
            clients.append(client)
            workers.insert(try worker(of: client))
        }
        XCTAssertEqual(workers, [0, 1, 2])
        var httpWorkers: Set<String> = []
        for _ in 0..<6 {
            let http = try HTTPTestClient(port: port)
            httpWorkers.insert(try http.request(path: "/hello").header("X-Hive-Worker") ?? "?")
        }
        XCTAssertEqual(httpWorkers, ["0", "1", "2"])
    }

    func testKeepAlive_andPipelining_serveInOrderOnOneConnection() throws {
        let (_, port) = try startHive()
        let http = try HTTPTestClient(port: port)
        let first = try http.request(path: "/hello")
        XCTAssertEqual(first.status, 200)
        XCTAssertEqual(first.text, "hello")
        let responses = try http.pipeline(["/favicon.ico", "/hello", "/missing", "/"])
        XCTAssertEqual(responses.map(\.status), [200, 200, 404, 200])
        XCTAssertEqual(responses[0].header("Content-Type"), "image/x-icon")
        XCTAssertEqual(Array(responses[0].body.prefix(4)), [0, 0, 1, 0], "an ICO file")
        XCTAssertEqual(responses[1].text, "hello")
        XCTAssertTrue(responses[3].text.contains("<html"))
        let ids = Set(([first] + responses).compactMap { $0.header("X-Hive-Connection") })
        XCTAssertEqual(ids.count, 1, "every response came over the same keep-alive connection")
    }

    func testPipelining_afterARequestWithConnectionClose_answersItAloneAndCloses() throws {
        let (hive, port) = try startHive(workers: 1)
        let registry = try RegistryProbe.attach(masterPID: hive.pid!)
        let http = try HTTPTestClient(port: port)
        var bytes = HTTPTestClient.encodeRequest(
            method: "GET", path: "/hello", port: port, headers: ["Connection": "close"], body: nil)
        bytes += HTTPTestClient.encodeRequest(method: "GET", path: "/favicon.ico", port: port, headers: [:], body: nil)
        try http.send(bytes: bytes)
        let response = try http.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "hello")
        XCTAssertEqual(response.header("Connection"), "close")
        XCTAssertTrue(http.isClosedByPeer(within: 2), "the connection closes after the response that said so")
        XCTAssertThrowsError(try http.readResponse(timeout: 0.2), "the request after it is not answered")
        XCTAssertEqual(
            registry.worker(0, .requests).load(ordering: .relaxed), 1,
            "the request after it never reached the application"
        )
    }

    func testWebSocket_openMessageClose_onEveryWorker() throws {
        let (hive, port) = try startHive(workers: 2, ["--dispatch", "round-robin"])
        let registry = try RegistryProbe.attach(masterPID: hive.pid!)
        var seen: Set<Int> = []
        for _ in 0..<4 {
            let client = try WebSocketTestClient(port: port)
            let id = ConnectionID(rawValue: try connectionID(of: client))
            seen.insert(id.worker)
            try client.sendText(action("hello"))
            XCTAssertEqual(try client.receiveMessage(), .text("hello"))
            XCTAssertEqual(registry.protocolState(of: id), .websocket)
            try client.sendClose(code: 1000, reason: "bye")
            XCTAssertEqual(try client.receiveMessage(), .close(code: 1000, reason: ""))
            XCTAssertTrue(client.isClosedByPeer(within: 2))
            try RegistryProbe.wait(registry, "connection \(id) gone") { $0.lookup(id) == nil }
        }
        XCTAssertEqual(seen, [0, 1])
    }

    /// A browser's upgrade request is several hundred bytes, more than a connection's first read takes (256):
    /// the request arrives in several reads and the connection still upgrades and echoes.
    func testWebSocket_browserSizedUpgradeRequest_upgrades() throws {
        let (_, port) = try startHive(workers: 1)
        let headers = [
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
            "Origin": "http://127.0.0.1:\(port)",
            "Accept-Encoding": "gzip, deflate, br, zstd",
            "Accept-Language": "en-US,en;q=0.9,fr;q=0.8,de;q=0.7",
            "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
            "Cookie": "session=" + String(repeating: "c", count: 1_500),
        ]
        let client = try WebSocketTestClient(port: port, headers: headers)
        try client.sendText(action("hello"))
        XCTAssertEqual(try client.receiveMessage(), .text("hello"))
        try client.sendClose(code: 1000, reason: "")
        XCTAssertEqual(try client.receiveMessage(), .close(code: 1000, reason: ""))
    }

    /// The story's bug, made impossible: a push to the favicon's keep-alive connection is a typed error.
    func testPush_toAPlainHTTPConnection_isATypedError() throws {
        let (_, port) = try startHive()
        let favicon = try HTTPTestClient(port: port)
        let httpID = try XCTUnwrap(try favicon.request(path: "/favicon.ico").header("X-Hive-Connection"))
        let client = try WebSocketTestClient(port: port)
        try client.sendText(action("push", ["to": httpID, "content": "x"]))
        XCTAssertEqual(
            try client.receiveMessage(),
            .text(
                "error: connection \(httpID) is a plain HTTP connection, not a WebSocket client; only established "
                    + "WebSocket connections can receive a push (check `isEstablished(id)` first)"
            )
        )
        XCTAssertFalse(favicon.receivedAnything(within: 0.3))
        try client.sendText(action("push", ["to": "12345", "content": "x"]))
        guard case .text(let unknown) = try client.receiveMessage() else { return XCTFail("no reply") }
        XCTAssertTrue(unknown.hasPrefix("error: connection 12345 does not exist"), unknown)
    }

    func testPush_toAWebSocketOnAnotherWorker_isDelivered() throws {
        let (_, port) = try startHive(workers: 2, ["--dispatch", "round-robin"])
        let a = try WebSocketTestClient(port: port)
        let b = try WebSocketTestClient(port: port)
        let bID = ConnectionID(rawValue: try connectionID(of: b))
        XCTAssertNotEqual(try worker(of: a), bID.worker)
        try a.sendText(action("push", ["to": bID.description, "content": "across workers"]))
        XCTAssertEqual(try a.receiveMessage(), .text("pushed"))
        XCTAssertEqual(try b.receiveMessage(), .text("across workers"))
    }

    /// A broadcast from one worker reaches WebSocket clients on all workers and never a plain HTTP keep-alive
    /// connection (the favicon connection of the story), and logs nothing alarming.
    func testBroadcast_reachesEveryWebSocket_andNeverAPlainHTTPConnection() throws {
        let (hive, port) = try startHive(workers: 2, ["--dispatch", "round-robin"])
        let page = try HTTPTestClient(port: port)
        XCTAssertEqual(try page.request(path: "/").status, 200)
        let favicon = try HTTPTestClient(port: port)
        XCTAssertEqual(try favicon.request(path: "/favicon.ico").status, 200)
        let clients = try (0..<4).map { _ in try WebSocketTestClient(port: port) }
        XCTAssertEqual(Set(try clients.map { try worker(of: $0) }), [0, 1])

        try clients[0].sendText(action("broadcast", ["content": "hello-from-broadcast"]))
        for (index, client) in clients.enumerated() {
            var got: [WebSocketTestMessage] = [try client.receiveMessage()]
            if index == 0 { got.append(try client.receiveMessage()) }
            XCTAssertTrue(got.contains(.text("hello-from-broadcast")), "client \(index) got \(got)")
        }
        XCTAssertFalse(page.receivedAnything(within: 0.3))
        XCTAssertFalse(favicon.receivedAnything(within: 0.3))
        let log = hive.log()
        XCTAssertFalse(log.contains(" warning "), log)
        XCTAssertFalse(log.contains(" error "), log)
    }

    func testRegistry_showsTheProtocolOfEachConnection() throws {
        let (hive, port) = try startHive()
        let registry = try RegistryProbe.attach(masterPID: hive.pid!)
        let http = try HTTPTestClient(port: port)
        let httpID = ConnectionID(rawValue: UInt64(try XCTUnwrap(try http.request(path: "/hello").header("X-Hive-Connection")))!)
        let ws = try WebSocketTestClient(port: port)
        let wsID = ConnectionID(rawValue: try connectionID(of: ws))
        XCTAssertEqual(registry.protocolState(of: httpID), .http)
        XCTAssertEqual(registry.protocolState(of: wsID), .websocket)
        let snapshot = try XCTUnwrap(registry.lookup(httpID))
        XCTAssertEqual(snapshot.remote.host, "127.0.0.1")
        XCTAssertEqual(snapshot.requests, 1)
        XCTAssertGreaterThan(snapshot.bytesIn, 0)
        XCTAssertGreaterThan(snapshot.bytesOut, 0)
        let live = Dictionary(uniqueKeysWithValues: registry.connections.map { ($0.id, $0.protocolState) })
        XCTAssertEqual(live, [httpID: .http, wsID: .websocket])
        http.close()
        try RegistryProbe.wait(registry, "the HTTP connection gone") { $0.lookup(httpID) == nil }
    }

    /// IPv6: Hive listens on ::1 and the registry records the client's IPv6 address and port.
    func testIPv6_isServed_andTheRegistryRecordsTheAddress() throws {
        let (hive, port) = try startHive(workers: 1, ["--host", "::1"])
        XCTAssertTrue(hive.log().contains("ready on http://[::1]:\(port)"))
        let registry = try RegistryProbe.attach(masterPID: hive.pid!)
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = in_port_t(UInt16(port).bigEndian)
        address.sin6_addr = in6addr_loopback
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        XCTAssertEqual(connected, 0)
        let request = Array("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        XCTAssertEqual(send(fd, request, request.count, 0), request.count)
        var reply = [UInt8](repeating: 0, count: 1024)
        XCTAssertGreaterThan(recv(fd, &reply, reply.count, 0), 0)
        XCTAssertTrue(String(decoding: reply, as: UTF8.self).hasPrefix("HTTP/1.1 200 OK"))
        try RegistryProbe.wait(registry, "the IPv6 connection") { Array($0.connections).count == 1 }
        let remote = try XCTUnwrap(registry.connections.first { _ in true }?.remote)
        XCTAssertEqual(remote.family, .ipv6)
        XCTAssertEqual(remote.host, "::1")
        XCTAssertTrue(remote.description.hasPrefix("[::1]:"))
    }

    func testRegistryFull_answers503WithRetryAfter_andRecoversWhenASlotFrees() throws {
        let (hive, port) = try startHive(workers: 1, ["--max-connections", "2"])
        let registry = try RegistryProbe.attach(masterPID: hive.pid!)
        let first = try HTTPTestClient(port: port)
        let second = try HTTPTestClient(port: port)
        XCTAssertEqual(try first.request(path: "/hello").status, 200)
        XCTAssertEqual(try second.request(path: "/hello").status, 200)
        let third = try HTTPTestClient(port: port)
        let refused = try third.request(path: "/hello")
        XCTAssertEqual(refused.status, 503)
        XCTAssertEqual(refused.header("Retry-After"), "1")
        XCTAssertTrue(refused.text.contains("--max-connections 2"), refused.text)
        XCTAssertEqual(registry.header(.refusedFull).load(ordering: .relaxed), 1)
        first.close()
        try RegistryProbe.wait(registry, "a free slot") { Array($0.connections).count == 1 }
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
    }

    func testStop_exitsZero_killsNoClientUnannounced_andLeavesNothingBehind() throws {
        let (hive, port) = try startHive()
        let workers = hive.workerPIDs()
        let client = try WebSocketTestClient(port: port)
        XCTAssertEqual(try hive.stop(), 0)
        XCTAssertEqual(try client.receiveMessage(timeout: 2), .close(code: 1001, reason: "server stopping"))
        XCTAssertEqual(HiveProcess.waitUntilGone(workers, timeout: 5), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: hive.directory.appendingPathComponent("run/hive.pid").path))
    }

    func testWorkers_dieWithTheMaster_evenOnSIGKILL() throws {
        let (hive, _) = try startHive()
        let workers = hive.workerPIDs()
        hive.kill()
        XCTAssertEqual(HiveProcess.waitUntilGone(workers, timeout: 5), [])
    }

    func testPortInUse_exitsWithStatus1_namingTheAddress() throws {
        let (_, port) = try startHive(workers: 1)
        let second = try HiveProcess(arguments: ["--port", String(port), "--workers", "1", "--run-dir", "other"])
        XCTAssertThrowsError(try second.start(readyTimeout: 10))
        XCTAssertEqual(second.exitStatus, 1)
        XCTAssertTrue(second.log().contains("cannot listen on 127.0.0.1:\(port): the address is already in use"), second.log())
    }

    func testRunDirOfARunningMaster_isRefusedWithItsPID() throws {
        let (hive, _) = try startHive(workers: 1)
        let runDir = hive.directory.appendingPathComponent("run").path
        let second = try HiveProcess(arguments: ["--port", "0", "--workers", "1", "--run-dir", runDir])
        XCTAssertThrowsError(try second.start(readyTimeout: 10))
        XCTAssertEqual(second.exitStatus, 1)
        XCTAssertTrue(second.log().contains("already belongs to a running Hive master (pid \(hive.pid!))"), second.log())
    }

    func testInvalidOption_exitsWithStatus1_sayingWhatIsWrong() throws {
        let bad = try HiveProcess(arguments: ["--workers", "0"])
        XCTAssertThrowsError(try bad.start(readyTimeout: 10))
        XCTAssertEqual(bad.exitStatus, 1)
        XCTAssertTrue(bad.log().contains("--workers must be between 1 and 256, got 0"), bad.log())
        let mode = try HiveProcess(arguments: ["--dispatch", "random"])
        XCTAssertThrowsError(try mode.start(readyTimeout: 10))
        XCTAssertEqual(mode.exitStatus, 1)
        XCTAssertTrue(mode.log().contains("--dispatch must be one of least-connections, round-robin, ip-hash"), mode.log())
    }
}
