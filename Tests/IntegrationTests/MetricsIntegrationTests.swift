import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `--metrics-listen`: the master's Prometheus page, checked against `hive status --json` and `hive connections
/// --json` on the same quiet server, and parsed by a strict parser (Prometheus's own `promtool` when installed).
final class MetricsIntegrationTests: HiveTestCase {
    private func runDir(_ hive: HiveProcess) -> String { hive.directory.appendingPathComponent("run").path }

    private func startWithMetrics(workers: Int = 2, _ extra: [String] = []) throws -> (HiveProcess, port: Int, metrics: Int) {
        let metricsPort = HiveProcess.freePort()
        let (hive, port) = try startHive(workers: workers, ["--metrics-listen", "127.0.0.1:\(metricsPort)"] + extra)
        return (hive, port, metricsPort)
    }

    private func scrape(_ port: Int, timeout: TimeInterval = 5) throws -> String {
        let response = try HTTPTestClient(port: port, timeout: timeout).request(path: "/metrics")
        XCTAssertEqual(response.status, 200, "\(response)")
        XCTAssertEqual(response.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        return response.text
    }

    /// `name{labels}` (as written) -> value.
    private func samples(_ text: String) -> [String: Double] {
        var values: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            values[String(line[..<space])] = Double(line[line.index(after: space)...])
        }
        return values
    }

    func testMetrics_matchStatusAndConnections_andPassAStrictParser() throws {
        let (hive, port, metricsPort) = try startWithMetrics(workers: 2, ["--dispatch", "round-robin"])
        let http = try HTTPTestClient(port: port)
        XCTAssertEqual(try http.request(path: "/hello").status, 200)
        let sockets = try (0..<3).map { _ in try WebSocketTestClient(port: port) }
        for socket in sockets { _ = try worker(of: socket) }  // a message in, a reply out, each
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/nothing-here").status, 404)  // opened and closed

        // Quiet now (every reply read), so the page and the CLI see the same numbers. The closed connection is
        // released a moment after its response: wait until status shows it gone.
        var status: [String: Any] = [:]
        let deadline = Date().addingTimeInterval(5)
        repeat {
            status = try XCTUnwrap(try HiveCLI.json(["status", "--json", "--run-dir", runDir(hive)]) as? [String: Any])
            if (status["connections"] as? [String: Any])?["total"] as? Int == 4 { break }
            usleep(20_000)
        } while Date() < deadline
        let text = try scrape(metricsPort)
        let page = samples(text)
        let master = try XCTUnwrap(status["master"] as? [String: Any])
        XCTAssertEqual(page["hive_connections_accepted_total"], (master["accepted"] as? Double), text)
        XCTAssertEqual(page["hive_connections_accepted_total"], 5)
        XCTAssertEqual(page["hive_connections_refused_total{reason=\"full\"}"], master["refusedFull"] as? Double)
        XCTAssertEqual(page["hive_connections_refused_total{reason=\"busy\"}"], master["refusedBusy"] as? Double)
        XCTAssertEqual(page["hive_accept_errors_total"], master["acceptErrors"] as? Double)
        XCTAssertEqual(page["hive_build_info{version=\"\(master["version"] as? String ?? "?")\"}"], 1)

        let rows = try XCTUnwrap(status["workers"] as? [[String: Any]])
        XCTAssertEqual(rows.count, 2)
        let connections = try XCTUnwrap(try HiveCLI.json(["connections", "--json", "--run-dir", runDir(hive)]) as? [[String: Any]])
        for row in rows {
            let id = try XCTUnwrap(row["id"] as? Int)
            let worker = "worker=\"\(id)\""
            let open = try XCTUnwrap(row["connections"] as? [String: Any])
            XCTAssertEqual(page["hive_connections{\(worker),protocol=\"http\"}"], open["http"] as? Double, "worker \(id)")
            XCTAssertEqual(page["hive_connections{\(worker),protocol=\"websocket\"}"], open["websocket"] as? Double)
            for (series, field) in [
                ("hive_http_requests_total", "requests"), ("hive_websocket_messages_received_total", "messagesIn"),
                ("hive_websocket_messages_sent_total", "messagesOut"), ("hive_pushes_failed_total", "pushesFailed"),
                ("hive_slow_consumers_closed_total", "slowConsumers"), ("hive_protocol_errors_total", "protocolErrors"),
                ("hive_worker_restarts_total", "restarts"),
            ] {
                XCTAssertEqual(page["\(series){\(worker)}"], row[field] as? Double, "\(series) of worker \(id)")
            }
            XCTAssertEqual(page["hive_worker_state{\(worker),state=\"\(row["state"] as? String ?? "?")\"}"], 1)
            XCTAssertEqual(page["hive_worker_state{\(worker),state=\"exited\"}"], 0)
            // Bytes: the live connections (as `hive connections` lists them) plus the one that closed.
            let live = connections.filter { $0["worker"] as? Int == id }
            let liveIn = live.reduce(0.0) { $0 + ($1["bytesIn"] as? Double ?? 0) }
            let liveOut = live.reduce(0.0) { $0 + ($1["bytesOut"] as? Double ?? 0) }
            let bytesIn = try XCTUnwrap(page["hive_received_bytes_total{\(worker)}"])
            let bytesOut = try XCTUnwrap(page["hive_sent_bytes_total{\(worker)}"])
            XCTAssertGreaterThanOrEqual(bytesIn, liveIn, "worker \(id)")
            XCTAssertGreaterThanOrEqual(bytesOut, liveOut, "worker \(id)")
        }
        // Totals over both workers: the closed connection's request and response are counted once.
        let sumIn = (0..<2).reduce(0.0) { $0 + (page["hive_received_bytes_total{worker=\"\($1)\"}"] ?? 0) }
        let liveIn = connections.reduce(0.0) { $0 + ($1["bytesIn"] as? Double ?? 0) }
        let closedRequest = Double(HTTPTestClient.encodeRequest(method: "GET", path: "/nothing-here", port: port,
                                                                headers: [:], body: nil).count)
        XCTAssertEqual(sumIn, liveIn + closedRequest, text)
        XCTAssertNil(page["hive_redis_messages_received_total"], "no Redis series with --redis none")

        try assertParsesStrictly(text)

        // A connection that closes keeps its bytes in the counters.
        sockets[0].close()
        http.close()
        try waitFor("the closed connections to leave the registry") {
            let now = samples(try scrape(metricsPort))
            return (0..<2).reduce(0.0) { $0 + (now["hive_connections{worker=\"\($1)\",protocol=\"http\"}"] ?? 1) } == 0
                && (0..<2).reduce(0.0) { $0 + (now["hive_connections{worker=\"\($1)\",protocol=\"websocket\"}"] ?? 0) } == 2
        }
        let after = samples(try scrape(metricsPort))
        XCTAssertEqual((0..<2).reduce(0.0) { $0 + (after["hive_received_bytes_total{worker=\"\($1)\"}"] ?? 0) }, sumIn)
    }

    func testBroadcasts_areCountedAndTimedPerWorker() throws {
        let (_, port, metricsPort) = try startWithMetrics(workers: 2, ["--dispatch", "round-robin"])
        let sockets = try (0..<2).map { _ in try WebSocketTestClient(port: port) }
        XCTAssertEqual(Set(try sockets.map { try worker(of: $0) }), [0, 1])
        for round in 0..<3 {
            try sockets[0].sendText(action("broadcast", ["content": "round \(round)"]))
            for socket in sockets {
                // The sender gets the broadcast and the hook's reply, in either order.
                var seen: [String] = []
                while !seen.contains("round \(round)") {
                    guard case .text(let text) = try socket.receiveMessage() else { continue }
                    seen.append(text)
                }
            }
        }
        // The histogram is written once the worker's flush pass ends, just after the frames left: wait for it.
        var page: [String: Double] = [:]
        try waitFor("three timed broadcasts on each worker") {
            page = samples(try scrape(metricsPort))
            return (0..<2).allSatisfy { page["hive_broadcast_write_seconds_count{worker=\"\($0)\"}"] == 3 }
        }
        for id in 0..<2 {
            let worker = "worker=\"\(id)\""
            XCTAssertEqual(page["hive_broadcasts_total{\(worker)}"], 3, "worker \(id)")
            XCTAssertEqual(page["hive_broadcast_write_seconds_bucket{\(worker),le=\"+Inf\"}"], 3)
            let sum = try XCTUnwrap(page["hive_broadcast_write_seconds_sum{\(worker)}"])
            XCTAssertGreaterThan(sum, 0)
            XCTAssertLessThan(sum, 3, "three loopback broadcasts took seconds on worker \(id)")
            XCTAssertEqual(page["hive_broadcast_write_seconds_bucket{\(worker),le=\"1\"}"], 3)
        }
        try assertParsesStrictly(try scrape(metricsPort))
    }

    func testMetrics_withRedis_showTheSubscriptionWithoutThePassword() throws {
        let redis = try startRedis(password: "s3cret-pass")
        let metricsPort = HiveProcess.freePort()
        let (hive, _) = try startHive(workers: 1, [
            "--metrics-listen", "127.0.0.1:\(metricsPort)", "--redis", "redis://127.0.0.1:\(redis.port)",
            "--channel", "news", "--pattern", "news.*",
        ], environment: ["HIVE_REDIS_PASSWORD": "s3cret-pass"])
        try waitFor("the subscription") { samples(try scrape(metricsPort))["hive_redis_state{state=\"subscribed\"}"] == 1 }
        let text = try scrape(metricsPort)
        let page = samples(text)
        let status = try XCTUnwrap(try HiveCLI.json(["status", "--json", "--run-dir", runDir(hive)]) as? [String: Any])
        let row = try XCTUnwrap(status["redis"] as? [String: Any])
        XCTAssertEqual(page["hive_redis_info{address=\"\(row["address"] as? String ?? "?")\"}"], 1, text)
        XCTAssertEqual(page["hive_redis_messages_received_total"], row["messages"] as? Double)
        XCTAssertEqual(page["hive_redis_reconnects_total"], row["reconnects"] as? Double)
        XCTAssertEqual(page["hive_redis_messages_oversized_total"], row["oversized"] as? Double)
        XCTAssertEqual(page["hive_redis_subscriptions{kind=\"channel\"}"], 1)
        XCTAssertEqual(page["hive_redis_subscriptions{kind=\"pattern\"}"], 1)
        XCTAssertFalse(text.contains("s3cret-pass"))
        try assertParsesStrictly(text)
    }

    func testMetricsPort_answersOnlyGetMetrics_withASentence() throws {
        let (_, port, metricsPort) = try startWithMetrics(workers: 1)
        let client = { try HTTPTestClient(port: metricsPort) }
        let missing = try client().request(path: "/")
        XCTAssertEqual(missing.status, 404)
        XCTAssertTrue(missing.text.contains("/metrics"), missing.text)
        let post = try client().request(method: "POST", path: "/metrics", body: "x")
        XCTAssertEqual(post.status, 405)
        XCTAssertEqual(post.header("Allow"), "GET, HEAD")
        let garbage = try client()
        try garbage.send(raw: "hello there\r\n\r\n")
        XCTAssertEqual(try garbage.readResponse().status, 400)
        let huge = try client()
        try huge.send(raw: "GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000))
        XCTAssertEqual(try huge.readResponse().status, 431)
        let head = try client().request(method: "HEAD", path: "/metrics?x=1")
        XCTAssertEqual(head.status, 200)
        XCTAssertTrue(head.body.isEmpty)
        // Never on the client port: there /metrics is the application's (the demo has none).
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/metrics").status, 404)
    }

    func testScrapes_doNotWaitForAStoppedWorker_norForIdleScrapers() throws {
        // A long --worker-timeout: this test is about the scrape, not about the health check that would (rightly)
        // call the stopped worker unresponsive after the default 5 s.
        let (hive, port, metricsPort) = try startWithMetrics(workers: 2, ["--worker-timeout", "60"])
        // Scrapers that connect and send nothing: they fill every place and are dropped after 2 s.
        let idle = try (0..<8).map { _ in try TestSocket(port: metricsPort, timeout: 5) }
        let pids = hive.workerPIDs()
        XCTAssertEqual(pids.count, 2)
        kill(pids[0], SIGSTOP)
        defer { kill(pids[0], SIGCONT) }
        let started = Date()
        let page = samples(try scrape(metricsPort, timeout: 5))
        let waited = Date().timeIntervalSince(started)
        XCTAssertEqual(page["hive_worker_state{worker=\"0\",state=\"running\"}"], 1)
        XCTAssertLessThan(waited, 4, "an idle scraper is dropped after 2 s")
        XCTAssertGreaterThan(waited, 1, "all 8 places were taken: the scrape waited for the idle ones' deadline")
        kill(pids[0], SIGCONT)
        for socket in idle { socket.close() }
        XCTAssertEqual(try HTTPTestClient(port: port).request(path: "/hello").status, 200)
    }

    func testAScraperThatDoesNotRead_getsTheRestLater_andOthersAreServedMeanwhile() throws {
        // Loopback buffers take a whole page of a few workers at once: the partial sends themselves are covered by
        // MetricsServerTests (a socketpair with a small buffer). Here, the real loop with a late reader.
        let (_, _, metricsPort) = try startWithMetrics(workers: 4)
        let slow = try TestSocket(port: metricsPort, timeout: 5)
        slow.setReceiveBuffer(bytes: 2048)
        try slow.send(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        usleep(300_000)
        let started = Date()
        let page = try scrape(metricsPort)
        XCTAssertLessThan(Date().timeIntervalSince(started), 1, "a scrape waited for a scraper that does not read")
        XCTAssertTrue(page.hasPrefix("# HELP hive_build_info"))
        let head = try slow.read(until: Array("\r\n\r\n".utf8), deadline: TestDeadline(seconds: 2), waitingFor: "the head")
        let length = try XCTUnwrap(String(decoding: head, as: UTF8.self).split(separator: "\r\n")
            .first { $0.hasPrefix("Content-Length: ") }.flatMap { Int($0.dropFirst("Content-Length: ".count)) })
        let body = try slow.readToEnd(deadline: TestDeadline(seconds: 2), waitingFor: "the rest of the page")
        XCTAssertEqual(body.count, length)
        XCTAssertTrue(String(decoding: body, as: UTF8.self).hasSuffix("\n"))
    }

    func testMetricsListen_inUse_isAStartErrorNamingTheAddress() throws {
        let holder = try TestListener()
        let result = try HiveCLI.run([
            "start", "--port", "0", "--workers", "1", "--redis", "none",
            "--run-dir", FileManager.default.temporaryDirectory.appendingPathComponent("hive-mt-\(getpid())").path,
            "--metrics-listen", "127.0.0.1:\(holder.port)",
        ], timeout: 15)
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("cannot serve metrics on 127.0.0.1:\(holder.port) (--metrics-listen): "
            + "the address is already in use"), result.stderr)
        let invalid = try HiveCLI.run(["start", "--metrics-listen", "localhost:9502", "--redis", "none"])
        XCTAssertNotEqual(invalid.status, 0)
        XCTAssertTrue(invalid.stderr.contains("--metrics-listen \"localhost:9502\""), invalid.stderr)
        let samePort = try HiveCLI.run(["start", "--port", "9601", "--metrics-listen", "127.0.0.1:9601", "--redis", "none"])
        XCTAssertNotEqual(samePort.status, 0)
        XCTAssertTrue(samePort.stderr.contains("the client port"), samePort.stderr)
    }

    // MARK: - Helpers

    /// scripts/check-metrics.py (prometheus_client's parser, from Debian's python3-prometheus-client that `make deps`
    /// installs, plus a strict line check) must pass, and so must `promtool check metrics`: `make test` puts it at
    /// .build/tools/promtool (scripts/ensure-promtool.sh) and names it in $PROMTOOL; a bare `swift test` uses one
    /// on the PATH's usual places if there is one.
    private func assertParsesStrictly(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
        let script = URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/check-metrics.py").path
        let parsed = try runTool(python, [script], input: text)
        XCTAssertEqual(parsed.status, 0, "scripts/check-metrics.py rejected the page (no prometheus_client? "
            + "`make deps`): \(parsed.stderr)", file: file, line: line)
        let named = ProcessInfo.processInfo.environment["PROMTOOL"] ?? ""
        if !named.isEmpty && !FileManager.default.isExecutableFile(atPath: named) {
            XCTFail("$PROMTOOL is \(named), which is not an executable file (scripts/ensure-promtool.sh)", file: file, line: line)
        }
        let promtool = [named, "/usr/bin/promtool", "/usr/local/bin/promtool"]
            .first { !$0.isEmpty && FileManager.default.isExecutableFile(atPath: $0) }
        if let promtool {
            let checked = try runTool(promtool, ["check", "metrics"], input: text)
            XCTAssertEqual(checked.status, 0, "promtool: \(checked.stdout) \(checked.stderr)", file: file, line: line)
            XCTAssertEqual(checked.stdout + checked.stderr, "", "promtool lint", file: file, line: line)
        }
    }

    private func runTool(_ path: String, _ arguments: [String], input: String) throws -> HiveCLI.Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        if !path.hasPrefix("/") {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [path] + arguments
        } else {
            process.arguments = arguments
        }
        let stdin = Pipe()
        let out = Pipe()
        let err = Pipe()
        process.standardInput = stdin
        process.standardOutput = out
        process.standardError = err
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return HiveCLI.Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                              stderr: String(decoding: stderr, as: UTF8.self))
    }

    private func waitFor(_ what: String, timeout: TimeInterval = 10, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            usleep(20_000)
        }
        XCTFail("timed out after \(timeout) s waiting for \(what)")
    }
}

/// A TCP listener on 127.0.0.1 at a free port, held open to make that port busy.
private final class TestListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = TestSocket.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 4) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else {
            close(fd)
            throw TestClientError.misuse("cannot hold a port: \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }
}
