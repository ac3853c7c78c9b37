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
final class LimitsIntegrationTests: XCTestCase {
    /// Started by this test case; stopped (and their log printed on failure) in tearDown, in case a test's own
    /// `defer` did not run.
    private var launched: [HiveProcess] = []

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

    // MARK: HTTP: request head size (--max-header-size)

    func testHeaders_whenOverLimit_areAnswered431AndClosed() throws {
        let hive = try launch()   // default --max-header-size: 8 KiB
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        var head = "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for index in 0..<20 {
            head += "X-Filler-\(index): \(String(repeating: "a", count: 1024))\r\n"
        }
        sendIgnoringEarlyClose(client, head + "\r\n")

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 431, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 431")
        try waitForCounter(hive, worker: worker, .protocolErrors, atLeast: 1)
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// The control for the test above: a head of about 7 KiB is under the default limit and is served.
    func testHeaders_justUnderLimit_areServed() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        var headers: [String: String] = [:]
        for index in 0..<7 {
            headers["X-Filler-\(index)"] = String(repeating: "a", count: 1000)
        }
        let response = try client.request(path: "/hello", headers: headers)
        XCTAssertEqual(response.status, 200, "\(response)")
        XCTAssertEqual(response.text, "hello")
    }

    /// --max-header-size is honoured, not just NIO's default: 3 KiB of headers pass under the default (see the
    /// test above) but not under 2 KiB.
    func testHeaders_overConfiguredLimit_areAnswered431() throws {
        let hive = try launch(["--max-header-size", "2048"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        var head = "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for index in 0..<3 {
            head += "X-Filler-\(index): \(String(repeating: "a", count: 1000))\r\n"
        }
        sendIgnoringEarlyClose(client, head + "\r\n")
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 431, "\(response)")
        XCTAssertTrue(client.isClosedByPeer(within: 2))
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// A request target alone over the limit. The server counts the request line into --max-header-size (its help
    /// text says "request line plus headers ... more is answered 431"), so 431, not 414 URI Too Long.
    func testURI_whenOverHeaderLimit_isAnswered431AndClosed() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        let uri = "/" + String(repeating: "u", count: 9000)
        sendIgnoringEarlyClose(client, "GET \(uri) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 431, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 431")
        try assertWorkerStillServes(hive, worker: worker)
    }

    // MARK: HTTP: body size (--max-body-size)

    func testBody_whenContentLengthOverLimit_isAnswered413AndClosed() throws {
        let hive = try launch(["--max-body-size", "1024"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        sendIgnoringEarlyClose(
            client,
            "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000\r\n\r\n"
                + String(repeating: "b", count: 2000))

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 413, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 413")
        try waitForCounter(hive, worker: worker, .protocolErrors, atLeast: 1)
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// The control: a body of exactly --max-body-size reaches the application (which answers POST /hello with
    /// 404), and the connection stays usable.
    func testBody_atLimit_isAccepted() throws {
        let hive = try launch(["--max-body-size", "1024"])
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        let response = try client.request(
            method: "POST", path: "/hello", body: [UInt8](repeating: 0x62, count: 1024))
        XCTAssertEqual(response.status, 404, "the application's answer, not a limit's: \(response)")
        let again = try client.request(path: "/hello")
        XCTAssertEqual(again.status, 200)
        XCTAssertEqual(again.text, "hello")
    }

    /// No Content-Length to check up front: the limit must catch the chunk that crosses it, and not before.
    func testBody_whenChunkedGrowsPastLimit_isAnswered413AndClosed() throws {
        let hive = try launch(["--max-body-size", "1024"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        let chunk = "200\r\n" + String(repeating: "c", count: 512) + "\r\n"
        try client.send(raw: "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        try client.send(raw: chunk + chunk)   // 1024 bytes: still within the limit
        XCTAssertFalse(client.receivedAnything(within: 0.3), "answered before the body went over the limit")
        sendIgnoringEarlyClose(client, chunk)  // 1536 bytes

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 413, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 413")
        try assertWorkerStillServes(hive, worker: worker)
    }

    // MARK: HTTP: malformed requests

    func testRequestLine_whenMalformed_isAnswered400AndClosed() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        sendIgnoringEarlyClose(client, "GARBAGE\r\n\r\n")

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 400, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 400")
        try waitForCounter(hive, worker: worker, .protocolErrors, atLeast: 1)
        try assertWorkerStillServes(hive, worker: worker)
    }

    func testHeaderLine_whenMalformed_isAnswered400AndClosed() throws {
        let hive = try launch()
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        sendIgnoringEarlyClose(client, "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nthis line has no colon\r\n\r\n")

        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 400, "\(response)")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "close")
        XCTAssertTrue(client.isClosedByPeer(within: 2), "the connection stays open after the 400")
        try assertWorkerStillServes(hive, worker: worker)
    }

    // MARK: HTTP: timeouts

    /// Slowloris: half a request head, then silence. --http-idle-timeout is long, so only --handshake-timeout
    /// can close it.
    func testHandshake_whenHeadIncomplete_isClosedAfterHandshakeTimeout() throws {
        let hive = try launch(["--handshake-timeout", "1", "--http-idle-timeout", "60"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        let start = ContinuousClock.now
        try client.send(raw: "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        XCTAssertTrue(client.isClosedByPeer(within: 3), "a half-sent head kept the connection open for 3 s")
        let elapsed = seconds(since: start)
        XCTAssertGreaterThan(elapsed, 0.5, "closed long before --handshake-timeout 1")
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// The other side of the same timeout: a slow client that completes its head in time is served.
    func testHandshake_whenHeadCompletesInTime_isServed() throws {
        let hive = try launch(["--handshake-timeout", "1", "--http-idle-timeout", "60"])
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        try client.send(raw: "GET /hello HTTP/1.1\r\n")
        usleep(400_000)   // slow, but within the 1 s budget
        try client.send(raw: "Host: 127.0.0.1\r\n\r\n")
        let response = try client.readResponse(timeout: 3)
        XCTAssertEqual(response.status, 200, "\(response)")
        XCTAssertEqual(response.text, "hello")
    }

    /// A head followed by a body that stalls is closed too: every body chunk must come within
    /// --handshake-timeout of the previous one, so nobody holds a connection by promising a body never sent.
    func testBody_whenStalledAfterHead_isClosedByATimeout() throws {
        let hive = try launch(["--handshake-timeout", "1", "--http-idle-timeout", "60"])
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        try client.send(raw: "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nabc")
        XCTAssertTrue(client.isClosedByPeer(within: 3), "a stalled body kept the connection open for 3 s")
    }

    /// --http-idle-timeout: after a response, an idle keep-alive connection is closed. The handshake timeout is
    /// long here, so only the idle timer can close it.
    func testKeepAlive_whenIdleAfterResponse_isClosedAfterIdleTimeout() throws {
        let hive = try launch(["--http-idle-timeout", "1", "--handshake-timeout", "30"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openHTTP(hive)
        let response = try client.request(path: "/hello")
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("Connection")?.lowercased(), "keep-alive")
        let start = ContinuousClock.now

        XCTAssertTrue(client.isClosedByPeer(within: 3), "an idle keep-alive connection stayed open for 3 s")
        XCTAssertGreaterThan(seconds(since: start), 0.5, "closed long before --http-idle-timeout 1")
        try assertWorkerStillServes(hive, worker: worker)
    }

    /// The idle timer restarts with every request: three requests 0.6 s apart (1.8 s in all) on one connection
    /// with a 1 s idle timeout all succeed.
    func testKeepAlive_whenActiveWithinIdleTimeout_staysOpen() throws {
        let hive = try launch(["--http-idle-timeout", "1", "--handshake-timeout", "30"])
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openHTTP(hive)
        var connections: Set<String> = []
        for round in 0..<3 {
            if round > 0 { usleep(600_000) }
            let response = try client.request(path: "/hello")
            XCTAssertEqual(response.status, 200, "request \(round + 1)")
            connections.insert(response.header("X-Hive-Connection") ?? "?")
        }
        XCTAssertEqual(connections.count, 1, "every request went over the same connection")
    }

    // MARK: WebSocket: protocol errors (close code, then the close; the worker keeps echoing for others)

    func testWebSocket_unmaskedFrame_isClosedWith1002() throws {
        let hive = try launch(["--dispatch", "round-robin"])
        defer { _ = try? hive.process.stop() }
        let bystanders = try openBystanders(hive)
        let (offender, worker) = try openWebSocket(hive)
        try offender.sendFrame(opcode: WebSocketOpcode.text, payload: Array("hello".utf8), masked: false)
        try expectCloseFrame(offender, code: 1002)
        try waitForCounter(hive, worker: worker, .protocolErrors, atLeast: 1)
        try assertEveryoneStillEchoes(hive, bystanders: bystanders, worker: worker)
    }

    func testWebSocket_reservedBitsSet_isClosedWith1002() throws {
        let hive = try launch(["--dispatch", "round-robin"])
        defer { _ = try? hive.process.stop() }
        let bystanders = try openBystanders(hive)
        var workers: Set<Int> = []
        for rsv: UInt8 in [4, 2, 1] {   // RSV1, RSV2, RSV3
            let (offender, worker) = try openWebSocket(hive)
            workers.insert(worker)
            try offender.sendFrame(opcode: WebSocketOpcode.text, payload: Array("hello".utf8), rsv: rsv)
            try expectCloseFrame(offender, code: 1002, "RSV \(rsv)")
        }
        for worker in workers {
            try assertEveryoneStillEchoes(hive, bystanders: bystanders, worker: worker)
        }
    }

    func testWebSocket_reservedOpcode_isClosedWith1002() throws {
        let hive = try launch(["--dispatch", "round-robin"])
        defer { _ = try? hive.process.stop() }
        let bystanders = try openBystanders(hive)
        var workers: Set<Int> = []
        for opcode: UInt8 in [0x3, 0xB] {   // a reserved data opcode and a reserved control opcode
            let (offender, worker) = try openWebSocket(hive)
            workers.insert(worker)
            try offender.sendFrame(opcode: opcode, payload: Array("hello".utf8))
            try expectCloseFrame(offender, code: 1002, "opcode 0x\(String(opcode, radix: 16))")
        }
        for worker in workers {
            try assertEveryoneStillEchoes(hive, bystanders: bystanders, worker: worker)
        }
    }

    func testWebSocket_invalidUTF8Text_isClosedWith1007() throws {
        let hive = try launch(["--dispatch", "round-robin"])
        defer { _ = try? hive.process.stop() }
        let bystanders = try openBystanders(hive)
        // "κόσμε" then ED A0 80, a UTF-16 surrogate (U+D800) that UTF-8 forbids (Autobahn 6.x).
        let invalid: [UInt8] = [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80]
        let (whole, worker) = try openWebSocket(hive)
        try whole.sendFrame(opcode: WebSocketOpcode.text, payload: invalid)
        try expectCloseFrame(whole, code: 1007, "one frame")

        // The same bytes split so that each fragment alone is a valid prefix until the surrogate.
        let (split, splitWorker) = try openWebSocket(hive)
        try split.sendFrame(opcode: WebSocketOpcode.text, payload: Array(invalid[0..<9]), fin: false)
        try split.sendFrame(opcode: WebSocketOpcode.continuation, payload: Array(invalid[9...]))
        try expectCloseFrame(split, code: 1007, "two fragments")

        try assertEveryoneStillEchoes(hive, bystanders: bystanders, worker: worker)
        try assertEveryoneStillEchoes(hive, bystanders: bystanders, worker: splitWorker)
    }

    func testWebSocket_messageOverMaxMessageSize_isClosedWith1009() throws {
        let hive = try launch(["--dispatch", "round-robin", "--max-message-size", "4096"])
        defer { _ = try? hive.process.stop() }
        let bystanders = try openBystanders(hive)

        // The control: exactly the limit is echoed whole.
        let atLimit = [UInt8](repeating: 0x61, count: 4096)
        let (fits, _) = try openWebSocket(hive)
        try fits.sendBinary(atLimit)
        XCTAssertEqual(try fits.receiveMessage(), .binary(atLimit), "a message of exactly --max-message-size")

        let (oneFrame, worker) = try openWebSocket(hive)
        try sendIgnoringEarlyClose(oneFrame, opcode: WebSocketOpcode.binary, [UInt8](repeating: 0x61, count: 5000))
        try expectCloseFrame(oneFrame, code: 1009, "one frame of 5000 bytes")

        // Every fragment is under the limit; the reassembled message is not.
        let (fragments, fragmentsWorker) = try openWebSocket(hive)
        let part = [UInt8](repeating: 0x61, count: 2000)
        try fragments.sendFrame(opcode: WebSocketOpcode.binary, payload: part, fin: false)
        try fragments.sendFrame(opcode: WebSocketOpcode.continuation, payload: part, fin: false)
        try sendIgnoringEarlyClose(fragments, opcode: WebSocketOpcode.continuation, part)
        try expectCloseFrame(fragments, code: 1009, "3 fragments of 2000 bytes")

        try assertEveryoneStillEchoes(hive, bystanders: bystanders, worker: worker)
        try assertEveryoneStillEchoes(hive, bystanders: bystanders, worker: fragmentsWorker)
    }

    /// Every violation above in turn on one worker, with clients of both workers connected throughout: each of
    /// them keeps echoing after every violation, and the worker counts each failed connection once.
    func testWebSocket_afterProtocolErrors_otherClientsOnTheSameWorkersStillEcho() throws {
        let hive = try launch(["--dispatch", "round-robin", "--max-message-size", "4096"])
        defer { _ = try? hive.process.stop() }
        let bystanders = try openBystanders(hive)
        let pids = hive.process.currentWorkerPIDs()
        let target = 0
        let before = hive.registry.worker(target, .protocolErrors).load(ordering: .relaxed)
        let violations: [(name: String, code: UInt16, send: (WebSocketTestClient) throws -> Void)] = [
            ("unmasked", 1002, { try $0.sendFrame(opcode: WebSocketOpcode.text, payload: [0x61], masked: false) }),
            ("RSV1", 1002, { try $0.sendFrame(opcode: WebSocketOpcode.text, payload: [0x61], rsv: 4) }),
            ("opcode 0x3", 1002, { try $0.sendFrame(opcode: 0x3, payload: [0x61]) }),
            ("opcode 0xB", 1002, { try $0.sendFrame(opcode: 0xB, payload: [0x61]) }),
            ("bad UTF-8", 1007, { try $0.sendFrame(opcode: WebSocketOpcode.text, payload: [0xED, 0xA0, 0x80]) }),
            ("too large", 1009, { try $0.sendBinary([UInt8](repeating: 0x61, count: 5000)) }),
        ]
        for (index, violation) in violations.enumerated() {
            let (offender, _) = try openWebSocket(hive, onWorker: target)
            try violation.send(offender)
            try expectCloseFrame(offender, code: violation.code, violation.name)
            for (worker, client) in bystanders {
                let text = "after \(violation.name) #\(index)"
                try client.sendText(text)
                XCTAssertEqual(
                    try client.receiveMessage(), .text(text), "bystander on worker \(worker) after \(violation.name)")
            }
        }
        try waitForCounter(hive, worker: target, .protocolErrors, atLeast: before + UInt64(violations.count))
        XCTAssertEqual(
            hive.registry.worker(target, .protocolErrors).load(ordering: .relaxed), before + UInt64(violations.count),
            "one protocol error per failed connection")
        XCTAssertEqual(hive.process.currentWorkerPIDs(), pids, "a worker was restarted")
    }

    // MARK: WebSocket: keep-alive (--ping-interval, --pong-timeout)

    func testPing_whenClientNeverAnswers_isSentThenConnectionClosed() throws {
        let hive = try launch(["--ping-interval", "1", "--pong-timeout", "1"])
        defer { _ = try? hive.process.stop() }
        let (client, worker) = try openWebSocket(hive)
        let start = ContinuousClock.now

        let frame = try client.receive(timeout: 2.5)
        XCTAssertEqual(frame.opcode, WebSocketOpcode.ping, "expected a ping, got \(frame)")
        let pingAt = seconds(since: start)
        XCTAssertGreaterThan(pingAt, 0.5, "pinged long before --ping-interval 1")

        // Silent since: dropped once the pong timeout passes (without a close frame, by design: see
        // WebSocketFrameHandler.pongDeadlinePassed). Further pings may arrive first; isClosedByPeer keeps them.
        XCTAssertTrue(client.isClosedByPeer(within: 3), "a client that never answered was still open 3 s after a ping")
        XCTAssertLessThan(seconds(since: start), 5)
        try assertWorkerStillServes(hive, worker: worker)
    }

    func testPing_whenClientAnswers_connectionStaysOpen() throws {
        let hive = try launch(["--ping-interval", "1", "--pong-timeout", "1"])
        defer { _ = try? hive.process.stop() }
        let (client, _) = try openWebSocket(hive)
        let deadline = TestDeadline(seconds: 3.5)
        var pings = 0
        while deadline.remaining > 0 {
            let frame: WebSocketTestFrame
            do {
                frame = try client.receive(timeout: deadline.remaining)
            } catch TestClientError.timedOut {
                break
            }
            XCTAssertEqual(frame.opcode, WebSocketOpcode.ping, "only pings were expected, got \(frame)")
            pings += 1
            try client.sendPong(frame.payload)
        }
        XCTAssertGreaterThanOrEqual(pings, 2, "--ping-interval 1 over 3.5 s")
        // Still open past 3 s: a message is echoed (pings that arrive meanwhile are answered and skipped).
        try client.sendText("still here")
        while true {
            let message = try client.receiveMessage()
            if message == .ping {
                try client.sendPong()
                continue
            }
            XCTAssertEqual(message, .text("still here"))
            break
        }
    }

    // MARK: WebSocket: slow consumer (--max-output-buffer)

    func testSlowConsumer_whenOutputQueueOverflows_isClosedWhileOthersKeepReceiving() throws {
        let hive = try launch(["--max-output-buffer", "65536"], workers: 1)
        defer { _ = try? hive.process.stop() }
        let (slow, _) = try openWebSocket(hive, path: "/")   // never reads until the end of the test
        let (fast, _) = try openWebSocket(hive, path: "/")
        fast.timeout = 5
        XCTAssertEqual(hive.registry.worker(0, .slowConsumers).load(ordering: .relaxed), 0)

        let content = String(repeating: "x", count: 60_000)
        let request = #"{"action":"broadcast","content":"\#(content)"}"#
        var detectedAfter: Int?
        var round = 0
        // Until the slow client is detected, then 5 more rounds to show the fast client is not held back by it.
        while round < 400, detectedAfter.map({ round < $0 + 5 }) ?? true {
            try fast.sendText(request)
            var broadcast = false
            var reply = false
            while !(broadcast && reply) {
                switch try fast.receiveMessage() {
                case .text(let text) where text.utf8.count == 60_000 && text == content:
                    XCTAssertFalse(broadcast, "round \(round): the broadcast arrived twice")
                    broadcast = true
                case .text("broadcast sent to every WebSocket client"):
                    reply = true
                case .ping:
                    try fast.sendPong()
                case let other:
                    XCTFail("round \(round): unexpected \(String(describing: other).prefix(200))")
                    return
                }
            }
            round += 1
            if detectedAfter == nil, hive.registry.worker(0, .slowConsumers).load(ordering: .relaxed) >= 1 {
                detectedAfter = round
            }
        }
        let rounds = try XCTUnwrap(detectedAfter, "no slow consumer after 400 broadcasts of 60,000 bytes")
        XCTAssertEqual(hive.registry.worker(0, .slowConsumers).load(ordering: .relaxed), 1)

        // The slow client is closed: the server gives its close frame a bounded time (2 s) to get out, so the
        // socket ends after the backlog. isClosedByPeer reads (and keeps) everything up to the end.
        XCTAssertTrue(slow.isClosedByPeer(within: 6), "the slow consumer was never closed")
        try RegistryProbe.wait(hive.registry, "one WebSocket left on worker 0") {
            $0.worker(0, .webSocketConnections).load(ordering: .relaxed) == 1
        }
        // What it did get is well-formed: whole broadcasts, then possibly a 1008 close frame, then possibly the
        // head of a frame cut by the close.
        var broadcasts = 0
        var closeCode: UInt16?
        while let frame = try? slow.receive(timeout: 0) {
            if frame.opcode == WebSocketOpcode.close {
                closeCode = frame.payload.count >= 2 ? UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]) : nil
                break
            }
            XCTAssertEqual(frame.opcode, WebSocketOpcode.text)
            XCTAssertEqual(frame.payload.count, 60_000)
            broadcasts += 1
        }
        XCTAssertLessThanOrEqual(broadcasts, rounds, "the slow client got more broadcasts than were sent")
        if let closeCode {
            XCTAssertEqual(closeCode, 1008)
        }
        HiveProcess.note(
            "slow consumer detected after \(rounds) broadcasts; it had received \(broadcasts) whole, close code "
                + "\(closeCode.map(String.init) ?? "none (dropped behind the backlog)")")
    }

    // MARK: WebSocket: an application error

    func testHandlerThrows_connectionIsClosedWith1011_andOthersOnTheWorkerKeepWorking() throws {
        let hive = try launch(["--dispatch", "round-robin"])
        defer { _ = try? hive.process.stop() }
        let pids = hive.process.currentWorkerPIDs()
        let (offender, worker) = try openWebSocket(hive, path: "/")
        let (neighbour, _) = try openWebSocket(hive, path: "/", onWorker: worker)

        try offender.sendText(#"{"action":"throw"}"#)
        let message = try offender.receiveMessage(timeout: 3)
        guard case .close(let code, _) = message else {
            return XCTFail("expected a close frame, got \(message)")
        }
        XCTAssertEqual(code, 1011)
        try offender.sendClose(code: 1011)   // the server started the close handshake; answer it
        XCTAssertTrue(offender.isClosedByPeer(within: 2), "the connection stayed open after the close handshake")

        try neighbour.sendText(#"{"action":"hello"}"#)
        XCTAssertEqual(try neighbour.receiveMessage(), .text("hello"), "a neighbour on worker \(worker)")
        let (newcomer, _) = try openWebSocket(hive, path: "/", onWorker: worker)
        try newcomer.sendText(#"{"action":"hello"}"#)
        XCTAssertEqual(try newcomer.receiveMessage(), .text("hello"), "a new client on worker \(worker)")
        XCTAssertEqual(hive.process.currentWorkerPIDs(), pids, "a worker was restarted")
        XCTAssertTrue(hive.process.log().contains("message hook failed"), "the hook's error was not logged")
    }

    // MARK: Helpers

    /// A started hive, its port and its master's registry.
    private struct Launched {
        let process: HiveProcess
        let port: Int
        let registry: SharedRegistry
    }

    /// `hive start --port <free> --workers <n> --run-dir <temp> <extra>`, ready, with its registry mapped.
    private func launch(_ extra: [String] = [], workers: Int = 2) throws -> Launched {
        let port = HiveProcess.freePort()
        let runDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hive-limits-\(UUID().uuidString.prefix(8))", isDirectory: true)
        let process = try HiveProcess(
            arguments: ["--port", String(port), "--workers", String(workers), "--run-dir", runDirectory.path,
                        "--dispatch", "round-robin", "--redis", "none"] + extra)
        launched.append(process)
        try process.start()
        let registry = try RegistryProbe.attach(masterPID: try XCTUnwrap(process.pid))
        return Launched(process: process, port: port, registry: registry)
    }

    private func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
    }

    /// Waits until the registry lists a connection that `before` did not have, in one of `states`.
    private func newConnection(
        _ hive: Launched, before: Set<ConnectionID>, states: Set<ProtocolState>
    ) throws -> ConnectionSnapshot {
        var found: ConnectionSnapshot?
        try RegistryProbe.wait(hive.registry, "a new connection in \(states)") { registry in
            found = registry.connections.first { !before.contains($0.id) && states.contains($0.protocolState) }
            return found != nil
        }
        return found!
    }

    private func connectionIDs(_ hive: Launched) -> Set<ConnectionID> {
        Set(hive.registry.connections.map(\.id))
    }

    /// A new HTTP connection and the worker that adopted it (read from the registry before anything is sent, so
    /// it is known even when the server answers with an error and closes at once).
    private func openHTTP(_ hive: Launched) throws -> (HTTPTestClient, worker: Int) {
        let before = connectionIDs(hive)
        let client = try HTTPTestClient(port: hive.port, timeout: 3)
        let snapshot = try newConnection(hive, before: before, states: [.http])
        return (client, snapshot.worker)
    }

    /// A new WebSocket on `path` and its worker; with `onWorker`, connects (closing the others) until one lands on
    /// that worker, which takes at most `workers` tries with round-robin dispatch.
    private func openWebSocket(
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
    private func openBystanders(_ hive: Launched) throws -> [Int: WebSocketTestClient] {
        var bystanders: [Int: WebSocketTestClient] = [:]
        for _ in 0..<8 where bystanders.count < 2 {
            let (client, worker) = try openWebSocket(hive)
            if bystanders[worker] == nil { bystanders[worker] = client }
        }
        XCTAssertEqual(bystanders.count, 2, "no echo client on some worker")
        return bystanders
    }

    /// The next message is a close frame with `code`, then the server closes the TCP connection.
    private func expectCloseFrame(
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
    private func assertEveryoneStillEchoes(
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
    private func assertWorkerStillServes(
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
    private func assertWorkersUnchanged(_ hive: Launched, file: StaticString = #filePath, line: UInt = #line) {
        let pids = hive.process.currentWorkerPIDs()
        XCTAssertEqual(Set(pids.values), Set(hive.process.workerPIDs()), "a worker was replaced", file: file, line: line)
        for (id, pid) in pids {
            XCTAssertTrue(HiveProcess.isAlive(pid: pid), "worker \(id) (pid \(pid)) is gone", file: file, line: line)
            XCTAssertEqual(
                hive.registry.worker(id, .restarts).load(ordering: .relaxed), 0, "worker \(id) restarted", file: file,
                line: line)
        }
    }

    private func waitForCounter(
        _ hive: Launched, worker: Int, _ field: SharedRegistry.WorkerField, atLeast value: UInt64
    ) throws {
        try RegistryProbe.wait(hive.registry, timeout: 3, "worker \(worker) \(field) >= \(value)") {
            $0.worker(worker, field).load(ordering: .relaxed) >= value
        }
    }

    /// Sends a request the server is expected to refuse part-way: it may answer and close before it has read
    /// everything, so a failed send (EPIPE, ECONNRESET) is not an error; the response read next is what counts.
    private func sendIgnoringEarlyClose(_ client: HTTPTestClient, _ raw: String) {
        do {
            try client.send(raw: raw)
        } catch {
            HiveProcess.note("send stopped early (the server may have closed first): \(error)")
        }
    }

    private func sendIgnoringEarlyClose(_ client: WebSocketTestClient, opcode: UInt8, _ payload: [UInt8]) throws {
        do {
            try client.sendFrame(opcode: opcode, payload: payload)
        } catch {
            HiveProcess.note("send stopped early (the server may have closed first): \(error)")
        }
    }
}
