#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HiveIPC
import XCTest

/// WebSocket limits and bad input against the real binary (see LimitsTestCase).
final class WebSocketLimitsIntegrationTests: LimitsTestCase {
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
        // A grace longer than the test: what closes the slow client here is the hard cap (8 × the limit).
        let hive = try launch(["--max-output-buffer", "65536", "--slow-consumer-grace", "60"], workers: 1)
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
}
