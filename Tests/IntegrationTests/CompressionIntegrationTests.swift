import Foundation
import XCTest

/// permessage-deflate (RFC 7692, --compression on) with the real binary: negotiation, a broadcast compressed once
/// per worker reaching compressed and plain clients, compressed client messages, and the inflated-size limit.
final class CompressionIntegrationTests: HiveTestCase {
    private let offer = ["Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"]
    private let agreed = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

    /// A JSON message of about 2 KB, like a market-data or chat broadcast.
    private func json(_ count: Int = 34) -> String {
        let items = (0..<count).map { #"{"id": \#($0), "symbol": "HIVE\#($0 % 7)", "price": \#(1000 + $0 * 3), "side": "buy"}"# }
        return "[" + items.joined(separator: ", ") + "]"
    }

    /// The next data frame whose payload (inflated when RSV1 is set) is `expected`, skipping others (replies).
    private func receiveFrame(carrying expected: String, on client: WebSocketTestClient) throws -> WebSocketTestFrame {
        for _ in 0..<10 {
            let frame = try client.receive()
            let payload = frame.rsv & 4 != 0 ? RawDeflate.decompress(frame.payload) : frame.payload
            if frame.opcode == WebSocketOpcode.text, payload == Array(expected.utf8) { return frame }
        }
        throw TestClientError.misuse("no frame carrying the expected message")
    }

    func testBroadcast_isCompressedForClientsThatNegotiated_andPlainForOthers_onEveryWorker() throws {
        let (_, port) = try startHive(workers: 2, ["--compression", "on"])
        let compressed = try (0..<4).map { _ in try WebSocketTestClient.connect(port: port, headers: offer) }
        let plain = try (0..<2).map { _ in try WebSocketTestClient.connect(port: port) }
        for client in compressed {
            XCTAssertEqual(client.handshakeResponse.header("Sec-WebSocket-Extensions"), agreed)
        }
        for client in plain {
            XCTAssertNil(client.handshakeResponse.header("Sec-WebSocket-Extensions"))
        }
        let workers = Set(try compressed.map { try worker(of: $0) })
        XCTAssertEqual(workers, [0, 1], "compressed clients on both workers (least-connections dispatch)")

        let message = json()
        XCTAssertGreaterThan(message.utf8.count, 2000)
        try compressed[0].sendText(action("broadcast", ["content": message]))
        for client in compressed {
            let frame = try receiveFrame(carrying: message, on: client)
            XCTAssertEqual(frame.rsv, 4, "RSV1: compressed")
            XCTAssertTrue(frame.fin)
            XCTAssertLessThan(frame.payload.count, message.utf8.count / 3, "JSON deflates well")
        }
        for client in plain {
            let frame = try receiveFrame(carrying: message, on: client)
            XCTAssertEqual(frame.rsv, 0, "never compressed for a client that did not negotiate it")
        }
    }

    func testCompressedClientMessage_isInflated_andShortRepliesGoUncompressed() throws {
        let (_, port) = try startHive(workers: 1, ["--compression", "on", "--compression-min-size", "100"])
        let client = try WebSocketTestClient.connect(port: port, path: "/echo", headers: offer)
        let message = json()
        try client.sendFrame(opcode: WebSocketOpcode.text, payload: RawDeflate.compress(Array(message.utf8)), rsv: 4)
        let echo = try client.receive()
        XCTAssertEqual(echo.rsv, 4)
        XCTAssertEqual(RawDeflate.decompress(echo.payload), Array(message.utf8))
        // Under --compression-min-size: sent as it is.
        try client.sendFrame(opcode: WebSocketOpcode.text, payload: RawDeflate.compress(Array("short".utf8)), rsv: 4)
        XCTAssertEqual(try client.receiveMessage(), .text("short"))
    }

    func testZipBomb_isClosedWith1009_withoutInflatingIt() throws {
        let (hive, port) = try startHive(workers: 1, ["--compression", "on", "--max-message-size", "65536"])
        let client = try WebSocketTestClient.connect(port: port, path: "/echo", headers: offer)
        // 64 MiB of zeros deflate to about 64 KB; 1 MiB to about 1 KB: under the limit compressed, far over it inflated.
        let bomb = RawDeflate.compress([UInt8](repeating: 0, count: 1 << 20))
        XCTAssertLessThan(bomb.count, 2048)
        try client.sendFrame(opcode: WebSocketOpcode.binary, payload: bomb, rsv: 4)
        XCTAssertEqual(try client.receiveMessage(), .close(code: 1009, reason: "message larger than 65536 bytes once inflated"))
        XCTAssertTrue(client.isClosedByPeer(within: 3))
        // The worker is fine: a new client still gets its echo.
        let next = try WebSocketTestClient.connect(port: port, path: "/echo")
        try next.sendText("still here")
        XCTAssertEqual(try next.receiveMessage(), .text("still here"))
        _ = hive
    }

    func testCompressionOff_byDefault_declinesOffer_andRSV1StillFails() throws {
        let (_, port) = try startHive(workers: 1)
        let client = try WebSocketTestClient.connect(port: port, path: "/echo", headers: offer)
        XCTAssertNil(client.handshakeResponse.header("Sec-WebSocket-Extensions"))
        try client.sendFrame(opcode: WebSocketOpcode.text, payload: RawDeflate.compress(Array("hi".utf8)), rsv: 4)
        guard case .close(let code, _) = try client.receiveMessage() else { return XCTFail("expected a close") }
        XCTAssertEqual(code, 1002)
    }

    func testMalformedOffer_isDeclined_andTheConnectionWorksUncompressed() throws {
        let (_, port) = try startHive(workers: 1, ["--compression", "on"])
        let client = try WebSocketTestClient.connect(
            port: port, path: "/echo",
            headers: ["Sec-WebSocket-Extensions": "permessage-deflate; server_max_window_bits=99; \"broken"])
        XCTAssertNil(client.handshakeResponse.header("Sec-WebSocket-Extensions"))
        let message = json()
        try client.sendText(message)
        XCTAssertEqual(try client.receiveMessage(), .text(message))
    }

    /// A real Chromium offers permessage-deflate, gets it, sends compressed messages and reads a compressed echo and
    /// broadcast.
    func testChromium_negotiatesCompression_andReadsCompressedEchoAndBroadcast() throws {
        let (_, port) = try startHive(workers: 1, ["--compression", "on"])
        let browser = try HeadlessChromium()
        defer { browser.close() }
        try browser.navigate(to: "http://127.0.0.1:\(port)/hello")
        let message = json()
        try browser.evaluate(
            """
            window.got = []; window.message = \(String(decoding: try JSONSerialization.data(withJSONObject: [message]), as: UTF8.self))[0];
            window.ws = new WebSocket('ws://127.0.0.1:\(port)/echo');
            ws.onmessage = (event) => got.push(event.data);
            ws.onopen = () => ws.send(message);
            """)
        try browser.waitFor("ws.readyState === 1", timeout: 5)
        XCTAssertEqual(try browser.evaluate("ws.extensions") as? String, agreed)
        try browser.waitFor("got.length === 1", timeout: 5)
        XCTAssertEqual(try browser.evaluate("got[0] === message") as? Bool, true)

        // A broadcast from a test client, compressed once, read by the browser's page socket.
        try browser.evaluate(
            """
            window.page = new WebSocket('ws://127.0.0.1:\(port)/');
            page.onmessage = (event) => got.push(event.data);
            page.onclose = (event) => got.push('closed ' + event.code + ' ' + event.reason);
            """)
        try browser.waitFor("page.readyState === 1", timeout: 5)
        XCTAssertEqual(try browser.evaluate("page.extensions") as? String, agreed)
        let client = try WebSocketTestClient.connect(port: port, headers: offer)
        try client.sendText(action("broadcast", ["content": message]))
        XCTAssertEqual(try receiveFrame(carrying: message, on: client).rsv, 4)
        // Both of the browser's sockets get it (a broadcast reaches every WebSocket, /echo too).
        try browser.waitFor("got.length === 3", timeout: 5)
        XCTAssertEqual(try browser.evaluate("got.every(text => text === message)") as? Bool, true)
    }
}
