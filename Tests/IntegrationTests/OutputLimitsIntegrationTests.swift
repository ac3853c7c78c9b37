#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HiveIPC
import XCTest

/// One output limit for every byte queued for a client (--max-output-buffer), back-pressure while a client is over
/// it, and the slow-consumer policy (--slow-consumer-grace, and a hard cap of 8 times the limit), against the real
/// binary: what an attacker that never reads costs a worker, and that a client that reads normally survives a burst.
final class OutputLimitsIntegrationTests: LimitsTestCase {
    /// Four connections pipeline 100,000 `GET /favicon.ico` each and never read. Hive stops reading from them once
    /// their responses pass the limit, so the worker stays small, serves everyone else meanwhile, and closes the
    /// four when they stay over the limit for the grace period.
    func testPipelinedRequestsNeverRead_workerStaysSmall_othersAreServed_andTheFloodersAreClosed() throws {
        let hive = try launch(["--slow-consumer-grace", "2"], workers: 1)
        let pid = try XCTUnwrap(hive.process.currentWorkerPIDs()[0])
        let idle = try XCTUnwrap(Self.residentBytes(of: pid))
        let request = Array("GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        let flood = Array(repeatElement(request, count: 100_000).joined())
        let flooders = try (0..<4).map { _ in try openHTTP(hive).0.socket }

        var peak = idle
        let sent = Self.flood(flooders, with: flood, for: 4) { peak = max(peak, Self.residentBytes(of: pid) ?? 0) }
        HiveProcess.note("flooders sent \(sent.map { $0 / request.count }) requests of 100,000 each")

        let bystander = try HTTPTestClient(port: hive.port, timeout: 3)
        XCTAssertEqual(try bystander.request(path: "/hello").status, 200, "a bystander was not served during the flood")
        try RegistryProbe.wait(hive.registry, timeout: 10, "the four flooders closed as slow consumers") { registry in
            peak = max(peak, Self.residentBytes(of: pid) ?? 0)
            return registry.worker(0, .httpConnections).load(ordering: .relaxed) <= 1
        }
        XCTAssertEqual(hive.registry.worker(0, .slowConsumers).load(ordering: .relaxed), 4)
        // The worker gives freed memory back 3 s after closing a slow consumer.
        var after = Int.max
        let deadline = TestDeadline(seconds: 8)
        while deadline.remaining > 0, after - idle >= 16 << 20 {
            after = Self.residentBytes(of: pid) ?? Int.max
            usleep(100_000)
        }
        HiveProcess.note("worker RSS: idle \(idle >> 20) MiB, peak \(peak >> 20) MiB, after \(after >> 20) MiB")
        XCTAssertLessThan(peak - idle, 64 << 20, "the worker grew by \(peak - idle) bytes under the flood")
        XCTAssertLessThan(after - idle, 16 << 20, "the worker kept the flood's memory")
        try assertWorkerStillServes(hive, worker: 0)
    }

    /// 200,000 pings whose pongs are never read: the pongs of one read are one write, and reads stop while they
    /// are over the limit, so the client costs little and is closed when it stays over. (125-byte payloads: the
    /// pongs must outgrow what the kernel's socket buffers absorb, several MiB on loopback.)
    func testPingsWhosePongsAreNeverRead_costTheWorkerLittle_andTheClientIsClosed() throws {
        let hive = try launch(["--slow-consumer-grace", "2", "--max-output-buffer", "65536"], workers: 1)
        let pid = try XCTUnwrap(hive.process.currentWorkerPIDs()[0])
        let (client, _) = try openWebSocket(hive)
        client.socket.setReceiveBuffer(bytes: 4096)
        let idle = try XCTUnwrap(Self.residentBytes(of: pid))
        let ping = WebSocketTestClient.encodeFrame(
            opcode: WebSocketOpcode.ping, payload: Array(repeating: 0x70, count: 125), fin: true, masked: true, rsv: 0)
        let flood = Array(repeatElement(ping, count: 200_000).joined())

        var peak = idle
        let sent = Self.flood([client.socket], with: flood, for: 4) { peak = max(peak, Self.residentBytes(of: pid) ?? 0) }
        HiveProcess.note("sent \(sent[0] / ping.count) pings of 200,000")
        try waitForCounter(hive, worker: 0, .slowConsumers, atLeast: 1, timeout: 10)
        XCTAssertLessThan(peak - idle, 32 << 20, "the worker grew by \(peak - idle) bytes under the pings")
        HiveProcess.note("worker RSS: idle \(idle >> 20) MiB, peak \(peak >> 20) MiB")
        XCTAssertTrue(client.isClosedByPeer(within: 10), "the client that never read its pongs is still open")
        try assertWorkerStillServes(hive, worker: 0)
    }

    /// A worker that was stopped comes back with a backlog above the limit for a client that reads normally: the
    /// client drains it well within the grace and keeps every message (the old policy closed it at once).
    func testBacklogAboveTheLimit_forAClientThatReads_isDeliveredWhole() throws {
        let hive = try launch(["--slow-consumer-grace", "5"], workers: 2)
        let before = connectionIDs(hive)
        let (reader, readerWorker) = try openWebSocket(hive, path: "/", onWorker: 1)
        let readerID = try XCTUnwrap(hive.registry.connections.first { !before.contains($0.id) && $0.worker == 1 }).id
        reader.timeout = 10
        let (sender, _) = try openWebSocket(hive, path: "/", onWorker: 0)
        sender.timeout = 10
        let pid = try XCTUnwrap(hive.process.currentWorkerPIDs()[readerWorker])

        // 64 broadcasts of 100 kB: 60 while the reader's worker is stopped, 4 right after it resumes, before the
        // reader reads anything. Of the 6.4 MB, loopback TCP takes about 4 MB; the rest is queued by Hive: over
        // the 1 MiB limit, under the hard cap of 8 MiB.
        let contents = (0..<64).map { String(format: "%02d", $0) + String(repeating: "x", count: 100_000) }
        XCTAssertEqual(kill(pid, SIGSTOP), 0)
        var resumed = false
        defer { if !resumed { kill(pid, SIGCONT) } }
        for (index, content) in contents.enumerated() {
            if index == 60 {
                XCTAssertEqual(kill(pid, SIGCONT), 0)
                resumed = true
                // The backlog is written and the reader's queue is over the limit: the next broadcasts meet a
                // client that is not writable.
                try RegistryProbe.wait(hive.registry, timeout: 5, "the reader's queue over the limit") { registry in
                    registry.connections.first { $0.id == readerID }.map { $0.queuedOut > 1 << 20 } ?? false
                }
            }
            try sender.sendText(#"{"action":"broadcast","content":"\#(content)"}"#)
            try Self.skipUntilReply(sender, "broadcast sent to every WebSocket client")
        }
        for (index, content) in contents.enumerated() {
            let message = try reader.receiveMessage()
            guard case .text(let text) = message else {
                return XCTFail("broadcast \(index): expected text, got \(String(describing: message).prefix(120))")
            }
            XCTAssertEqual(text.prefix(2), content.prefix(2), "broadcast \(index) out of order")
            XCTAssertEqual(text.utf8.count, content.utf8.count)
        }
        XCTAssertEqual(hive.registry.worker(readerWorker, .slowConsumers).load(ordering: .relaxed), 0)
        try reader.sendText(#"{"action":"hello"}"#)
        XCTAssertEqual(try reader.receiveMessage(), .text("hello"), "the reader was closed after its backlog")
    }

    /// A client that stops reading is over the limit after a few broadcasts, but below the hard cap: it is closed
    /// with 1008 when it has stayed over for the grace period, not before.
    func testClientOverTheLimit_isClosedAsSlowConsumer_onlyAfterTheGrace() throws {
        let hive = try launch(["--max-output-buffer", "65536", "--slow-consumer-grace", "1.5"], workers: 1)
        let before = connectionIDs(hive)
        let (idle, _) = try openWebSocket(hive, path: "/")   // never reads
        let idleID = try newConnection(hive, before: before, states: [.websocket]).id
        let (sender, _) = try openWebSocket(hive, path: "/")
        sender.timeout = 5

        // 60 kB broadcasts until the client's queue is over 64 KiB (the kernel's socket buffers take the first few
        // hundred kB): then it is over the limit and far below the hard cap of 512 KiB.
        let content = String(repeating: "y", count: 60_000)
        var broadcasts = 0
        while hive.registry.connections.first(where: { $0.id == idleID })?.queuedOut ?? 0 <= 65536 {
            guard broadcasts < 200 else { return XCTFail("the client's queue never passed the limit") }
            try sender.sendText(#"{"action":"broadcast","content":"\#(content)"}"#)
            try Self.skipUntilReply(sender, "broadcast sent to every WebSocket client")
            broadcasts += 1
        }
        HiveProcess.note("over the limit after \(broadcasts) broadcasts")
        let lastBroadcast = ContinuousClock.now
        try waitForCounter(hive, worker: 0, .slowConsumers, atLeast: 1, timeout: 8)
        let after = seconds(since: lastBroadcast)
        XCTAssertGreaterThan(after, 1.0, "closed \(after) s after the last broadcast: before the 1.5 s grace")
        XCTAssertTrue(idle.isClosedByPeer(within: 10), "the slow consumer was never closed")
        var closeCode: UInt16?
        while let frame = try? idle.receive(timeout: 0) {
            if frame.opcode == WebSocketOpcode.close {
                closeCode = frame.payload.count >= 2 ? UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]) : nil
                break
            }
        }
        if let closeCode { XCTAssertEqual(closeCode, 1008) }
        try sender.sendText(#"{"action":"hello"}"#)
        XCTAssertEqual(try sender.receiveMessage(), .text("hello"), "the sender was closed too")
    }

    // MARK: Helpers

    /// Reads messages until `reply`; the sender also receives its own broadcasts, and may be pinged.
    static func skipUntilReply(_ client: WebSocketTestClient, _ reply: String) throws {
        while true {
            let message = try client.receiveMessage()
            if message == .text(reply) { return }
            if case .close = message { throw TestClientError.misuse("closed while waiting for \"\(reply)\"") }
        }
    }

    /// Sends `bytes` on every socket without ever blocking, until all is sent, the peers are gone or `seconds`
    /// pass; `sample` runs between rounds. Returns the bytes each socket sent.
    static func flood(_ sockets: [TestSocket], with bytes: [UInt8], for seconds: Double, sample: () -> Void) -> [Int] {
        var offsets = [Int](repeating: 0, count: sockets.count)
        let deadline = TestDeadline(seconds: seconds)
        while deadline.remaining > 0, offsets.contains(where: { $0 < bytes.count }) {
            var progressed = false
            for (index, socket) in sockets.enumerated() where offsets[index] < bytes.count {
                guard let written = socket.sendSome(bytes, from: offsets[index]) else {
                    offsets[index] = bytes.count   // the server closed it
                    continue
                }
                offsets[index] += written
                progressed = progressed || written > 0
            }
            sample()
            if !progressed { usleep(5_000) }
        }
        return offsets
    }

    /// The resident set of a process in bytes (VmRSS of /proc/<pid>/status).
    static func residentBytes(of pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kilobytes * 1024
    }
}
