import Foundation

/// RFC 6455 opcodes as raw values, so `sendFrame` can also send reserved ones (0x3, 0xB …) in bad-input tests.
enum WebSocketOpcode {
    static let continuation: UInt8 = 0x0
    static let text: UInt8 = 0x1
    static let binary: UInt8 = 0x2
    static let close: UInt8 = 0x8
    static let ping: UInt8 = 0x9
    static let pong: UInt8 = 0xA
}

/// One frame exactly as it came off the wire (payload already unmasked), for tests that check framing itself:
/// that the server does not mask, fragments as expected, or sets no reserved bits.
struct WebSocketTestFrame: Sendable, Equatable, CustomStringConvertible {
    var fin: Bool
    /// The three reserved bits as a number: RSV1 = 4, RSV2 = 2, RSV3 = 1.
    var rsv: UInt8
    var opcode: UInt8
    var masked: Bool
    var payload: [UInt8]

    var isControl: Bool { self.opcode & 0x8 != 0 }

    /// The payload as UTF-8, invalid sequences replaced.
    var text: String { String(decoding: self.payload, as: UTF8.self) }

    var description: String {
        let preview = self.payload.count > 64 ? String(self.text.prefix(64)) + "…" : self.text
        return "frame(opcode 0x\(String(self.opcode, radix: 16)), fin \(self.fin), rsv \(self.rsv), masked "
            + "\(self.masked), \(self.payload.count) bytes \"\(preview)\")"
    }
}

/// A complete, validated message from the server. Pings and pongs are reported, never answered: tests assert on
/// them, and the server's behaviour when a client does not answer is itself something to test.
enum WebSocketTestMessage: Sendable, Equatable {
    case text(String)
    case binary([UInt8])
    /// `code` is nil for a close frame with an empty payload.
    case close(code: UInt16?, reason: String)
    case ping
    case pong
}

/// An RFC 6455 client over one blocking socket to 127.0.0.1.
///
/// Two levels: `receive` returns raw frames and judges nothing; `receiveMessage` reassembles fragments and throws
/// `TestClientError.protocolViolation` for anything a server must not send (masked or RSV frames, unknown opcodes,
/// bad UTF-8, fragmented or oversized control frames). Sending mirrors that: the `send…` helpers build correct
/// frames, `sendFrame` builds whatever it is asked to.
final class WebSocketTestClient {
    let port: Int
    let path: String
    /// Default budget in seconds for each `receive` / `receiveMessage`.
    var timeout: TimeInterval
    /// The server's 101 response, for header assertions (e.g. `Sec-WebSocket-Protocol`).
    let handshakeResponse: HTTPTestResponse
    /// The connection itself, for tests that flood it or shrink its buffers.
    let socket: TestSocket
    /// Opcode and payload so far of a fragmented data message; kept across `receiveMessage` calls because a
    /// control frame between fragments is returned on its own, before the message is complete.
    private var partialMessage: (opcode: UInt8, payload: [UInt8])?

    private static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    /// Refuse to buffer absurd lengths: a garbage header must fail the test, not exhaust memory.
    private static let maxPayload = 64 * 1024 * 1024

    /// Connects and performs the opening handshake with a random `Sec-WebSocket-Key`.
    ///
    /// Throws `TestClientError.upgradeRejected` (carrying the response) unless the server answers 101 with
    /// `Upgrade: websocket`, `Connection: Upgrade` and the right `Sec-WebSocket-Accept`.
    /// - Parameters:
    ///   - port: loopback port of the server.
    ///   - path: request target of the upgrade request.
    ///   - headers: extra header fields for the upgrade request (e.g. `Origin`, `Sec-WebSocket-Protocol`).
    ///   - timeout: budget for the handshake and default for each later receive, in seconds.
    init(port: Int, path: String = "/", headers: [String: String] = [:], timeout: TimeInterval = 2) throws {
        self.port = port
        self.path = path
        self.timeout = timeout
        self.socket = try TestSocket(port: port, timeout: timeout)

        var nonce = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for index in nonce.indices {
            nonce[index] = generator.next()
        }
        let key = Base64.encode(nonce)
        var fields = [
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        ]
        fields.merge(headers) { _, custom in custom }
        let request = HTTPTestClient.encodeRequest(method: "GET", path: path, port: port, headers: fields, body: nil)
        try self.socket.send(request)

        let response = try HTTPResponseParser.read(
            from: self.socket,
            deadline: TestDeadline(seconds: timeout),
            expectBody: true,
            waitingFor: "the WebSocket upgrade response to GET \(path)"
        )
        self.handshakeResponse = response
        let expected = Self.acceptValue(forKey: key)
        guard response.status == 101 else {
            throw TestClientError.upgradeRejected(
                reason: "expected status 101, got \(response.status)", response: response)
        }
        guard response.header("Upgrade")?.lowercased() == "websocket" else {
            throw TestClientError.upgradeRejected(reason: "missing \"Upgrade: websocket\"", response: response)
        }
        let connection = response.headers(named: "Connection").flatMap { $0.lowercased().split(separator: ",") }
        guard connection.contains(where: { $0.trimmingCharacters(in: .whitespaces) == "upgrade" }) else {
            throw TestClientError.upgradeRejected(reason: "missing \"Connection: Upgrade\"", response: response)
        }
        guard response.header("Sec-WebSocket-Accept") == expected else {
            throw TestClientError.upgradeRejected(
                reason: "Sec-WebSocket-Accept should be \"\(expected)\" for key \"\(key)\"", response: response)
        }
    }

    /// Same as `init(port:path:headers:timeout:)`; reads better at call sites.
    static func connect(
        port: Int,
        path: String = "/",
        headers: [String: String] = [:],
        timeout: TimeInterval = 2
    ) throws -> WebSocketTestClient {
        try WebSocketTestClient(port: port, path: path, headers: headers, timeout: timeout)
    }

    /// base64(SHA-1(key + GUID)), RFC 6455 section 4.2.2.
    static func acceptValue(forKey key: String) -> String {
        Base64.encode(SHA1.hash(Array((key + Self.acceptGUID).utf8)))
    }

    /// Closes the TCP connection without a close frame (an abrupt client disconnect). Also done on deinit.
    func close() {
        self.socket.close()
    }

    // MARK: Sending

    func sendText(_ text: String) throws {
        try self.sendFrame(opcode: WebSocketOpcode.text, payload: Array(text.utf8))
    }

    func sendBinary(_ bytes: [UInt8]) throws {
        try self.sendFrame(opcode: WebSocketOpcode.binary, payload: bytes)
    }

    func sendPing(_ payload: [UInt8] = []) throws {
        try self.sendFrame(opcode: WebSocketOpcode.ping, payload: payload)
    }

    func sendPong(_ payload: [UInt8] = []) throws {
        try self.sendFrame(opcode: WebSocketOpcode.pong, payload: payload)
    }

    /// Sends a close frame. `code` nil sends an empty payload (legal: "no status code").
    func sendClose(code: UInt16? = 1000, reason: String = "") throws {
        var payload: [UInt8] = []
        if let code {
            payload = [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)
        }
        try self.sendFrame(opcode: WebSocketOpcode.close, payload: payload)
    }

    /// Sends one frame built exactly as asked, valid or not.
    /// - Parameters:
    ///   - opcode: low 4 bits are used; any value, including reserved ones.
    ///   - payload: unmasked payload; masked here when `masked` is true.
    ///   - fin: false for all but the last fragment.
    ///   - masked: clients must mask (RFC 6455 section 5.1); false sends a frame the server has to reject.
    ///   - rsv: reserved bits as a number, RSV1 = 4, RSV2 = 2, RSV3 = 1.
    func sendFrame(opcode: UInt8, payload: [UInt8], fin: Bool = true, masked: Bool = true, rsv: UInt8 = 0) throws {
        try self.socket.send(Self.encodeFrame(opcode: opcode, payload: payload, fin: fin, masked: masked, rsv: rsv))
    }

    /// Sends raw bytes on the upgraded connection, e.g. half a frame header.
    func send(bytes: [UInt8]) throws {
        try self.socket.send(bytes)
    }

    static func encodeFrame(opcode: UInt8, payload: [UInt8], fin: Bool, masked: Bool, rsv: UInt8) -> [UInt8] {
        var frame: [UInt8] = [(fin ? 0x80 : 0) | (rsv & 0x7) << 4 | (opcode & 0x0F)]
        let maskBit: UInt8 = masked ? 0x80 : 0
        switch payload.count {
        case 0...125:
            frame.append(maskBit | UInt8(payload.count))
        case 126...0xFFFF:
            frame.append(maskBit | 126)
            frame += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        default:
            frame.append(maskBit | 127)
            frame += (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(payload.count) >> (8 * UInt64($0))) }
        }
        guard masked else { return frame + payload }
        var generator = SystemRandomNumberGenerator()
        let key: [UInt8] = (0..<4).map { _ in generator.next() }
        frame += key
        frame += payload.enumerated().map { $0.element ^ key[$0.offset & 3] }
        return frame
    }

    // MARK: Receiving

    /// The next frame as sent, without any validation or reassembly.
    /// - Parameter timeout: seconds to wait for the whole frame; `self.timeout` if nil.
    func receive(timeout: TimeInterval? = nil) throws -> WebSocketTestFrame {
        try self.receiveFrame(deadline: TestDeadline(seconds: timeout ?? self.timeout))
    }

    /// The next complete message: fragments are joined, control frames returned as they come (also between
    /// fragments of a message, which is then continued by the next call).
    /// - Parameter timeout: seconds to wait for the whole message; `self.timeout` if nil.
    func receiveMessage(timeout: TimeInterval? = nil) throws -> WebSocketTestMessage {
        let deadline = TestDeadline(seconds: timeout ?? self.timeout)
        while true {
            let frame = try self.receiveFrame(deadline: deadline)
            guard !frame.masked else { throw TestClientError.protocolViolation("masked frame from server: \(frame)") }
            guard frame.rsv == 0 else { throw TestClientError.protocolViolation("reserved bits set: \(frame)") }
            if frame.isControl {
                guard frame.fin, frame.payload.count <= 125 else {
                    throw TestClientError.protocolViolation("fragmented or oversized control frame: \(frame)")
                }
                return try Self.controlMessage(frame)
            }
            switch frame.opcode {
            case WebSocketOpcode.text, WebSocketOpcode.binary:
                guard self.partialMessage == nil else {
                    throw TestClientError.protocolViolation("new data frame inside a fragmented message: \(frame)")
                }
                self.partialMessage = (frame.opcode, frame.payload)
            case WebSocketOpcode.continuation:
                guard self.partialMessage != nil else {
                    throw TestClientError.protocolViolation("continuation frame without a message to continue")
                }
                self.partialMessage!.payload += frame.payload
            default:
                throw TestClientError.protocolViolation("reserved opcode: \(frame)")
            }
            if frame.fin, let message = self.partialMessage {
                self.partialMessage = nil
                return try Self.dataMessage(opcode: message.opcode, payload: message.payload)
            }
        }
    }

    /// True if the server closes the TCP connection within `seconds`. Frames arriving first are kept for
    /// `receive`, so "got close 1002, then the socket closed" can be asserted in either order.
    func isClosedByPeer(within seconds: TimeInterval) -> Bool {
        (try? self.socket.waitForClose(deadline: TestDeadline(seconds: seconds))) ?? true
    }

    /// True if at least one byte is waiting or arrives within `seconds` (e.g. to assert a broadcast was not
    /// delivered). A close without data returns false.
    func receivedAnything(within seconds: TimeInterval) -> Bool {
        (try? self.socket.receivedAnything(deadline: TestDeadline(seconds: seconds))) ?? false
    }

    private func receiveFrame(deadline: TestDeadline) throws -> WebSocketTestFrame {
        let what = "a WebSocket frame"
        try self.socket.fill(to: 2, deadline: deadline, waitingFor: what)
        let first = self.socket.buffer[0]
        let second = self.socket.buffer[1]
        let masked = second & 0x80 != 0
        var headerLength = 2
        var length = Int(second & 0x7F)
        if length == 126 {
            headerLength = 4
            try self.socket.fill(to: headerLength, deadline: deadline, waitingFor: what)
            length = Int(self.socket.buffer[2]) << 8 | Int(self.socket.buffer[3])
        } else if length == 127 {
            headerLength = 10
            try self.socket.fill(to: headerLength, deadline: deadline, waitingFor: what)
            let wide = self.socket.buffer[2..<10].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard wide <= UInt64(Self.maxPayload) else {
                throw TestClientError.protocolViolation(
                    "frame length \(wide) is over the test limit of \(Self.maxPayload)")
            }
            length = Int(wide)
        }
        let maskOffset = headerLength
        if masked {
            headerLength += 4
        }
        try self.socket.fill(to: headerLength + length, deadline: deadline, waitingFor: what)
        let bytes = self.socket.consume(headerLength + length)
        var payload = Array(bytes[headerLength...])
        if masked {
            let key = Array(bytes[maskOffset..<maskOffset + 4])
            for index in payload.indices {
                payload[index] ^= key[index & 3]
            }
        }
        return WebSocketTestFrame(
            fin: first & 0x80 != 0,
            rsv: (first >> 4) & 0x7,
            opcode: first & 0x0F,
            masked: masked,
            payload: payload
        )
    }

    private static func controlMessage(_ frame: WebSocketTestFrame) throws -> WebSocketTestMessage {
        switch frame.opcode {
        case WebSocketOpcode.ping:
            return .ping
        case WebSocketOpcode.pong:
            return .pong
        case WebSocketOpcode.close:
            if frame.payload.isEmpty {
                return .close(code: nil, reason: "")
            }
            guard frame.payload.count >= 2 else {
                throw TestClientError.protocolViolation("close frame with a 1-byte payload")
            }
            let code = UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1])
            let reason = Array(frame.payload[2...])
            guard let text = Self.validUTF8(reason) else {
                throw TestClientError.protocolViolation("close reason is not valid UTF-8: \(reason)")
            }
            return .close(code: code, reason: text)
        default:
            throw TestClientError.protocolViolation("reserved control opcode: \(frame)")
        }
    }

    private static func dataMessage(opcode: UInt8, payload: [UInt8]) throws -> WebSocketTestMessage {
        guard opcode == WebSocketOpcode.text else { return .binary(payload) }
        guard let text = Self.validUTF8(payload) else {
            throw TestClientError.protocolViolation("text message is not valid UTF-8 (\(payload.count) bytes)")
        }
        return .text(text)
    }

    /// Decoding replaces invalid sequences with U+FFFD, so the bytes survive a round trip only if they were valid.
    private static func validUTF8(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        return Array(text.utf8) == bytes ? text : nil
    }
}

@available(*, unavailable)
extension WebSocketTestClient: Sendable {}   // one owner: frames are read in order by one test thread
