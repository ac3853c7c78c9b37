import NIOCore

/// What one client does with its WebSocket once it is open. A struct stored inline in the handler (the handler is
/// generic over it), so a connection costs one NIO channel plus one small handler object, nothing more: 30,000
/// connections must fit in a few generator processes. (NIO's client upgrader would add an HTTP codec, an upgrade
/// handler and the frame codecs to every pipeline for a handshake that happens once.)
protocol ClientBehaviour {
    /// The 101 arrived.
    mutating func opened()
    /// The run begins (a `StartSending` event). Returns the first text message to send, if any.
    mutating func start() -> [UInt8]?
    /// A complete data message arrived at `time` (monotonic ns, one clock read per socket read). Returns the next
    /// text message to send, if any.
    mutating func received(_ payload: UnsafeRawBufferPointer, at time: UInt64) -> [UInt8]?
    /// The connection ended after the handshake (server close frame, reset, or our own close).
    mutating func closed()
    /// A data frame arrived: its size on the wire (header included), and whether it was compressed.
    mutating func dataFrame(wireBytes: Int, compressed: Bool)
}

extension ClientBehaviour {
    mutating func dataFrame(wireBytes: Int, compressed: Bool) {}
}

struct HandshakeError: Error, CustomStringConvertible {
    let description: String
}

/// A minimal RFC 6455 client on a raw NIO channel: sends the upgrade request, checks the 101 and its accept key,
/// then parses server frames (unmasked) straight out of the read buffers, answers pings (the server pings every
/// 25 s by default and closes clients that stay silent), answers a close frame, and masks what it sends.
final class WebSocketClientHandler<Behaviour: ClientBehaviour>: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// RFC 6455's sample key and its accept value: the key need not be random for a benchmark (the server cannot tell),
    /// and a constant lets every connection check the server's answer without computing SHA-1.
    static var key: String { "dGhlIHNhbXBsZSBub25jZQ==" }
    static var expectedAccept: [UInt8] { Array("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".utf8) }
    static var maxFrame: Int { 16 << 20 }

    static func request(host: String, port: Int, path: String, compression: Bool = false) -> [UInt8] {
        // Chrome's offer, word for word.
        let extensions = compression ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : ""
        return Array(
            ("GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\(extensions)\r\n").utf8
        )
    }

    private enum State { case handshaking, open, closed }

    private var state = State.handshaking
    private var behaviour: Behaviour
    /// Shared by every connection of a run (copy-on-write array: no per-connection copy).
    private let requestBytes: [UInt8]
    private let handshake: EventLoopPromise<Void>
    /// Bytes of an incomplete frame (or response head) carried to the next read; nil almost always.
    private var pending: ByteBuffer?
    /// A fragmented message being reassembled (Hive does not fragment, but a client must accept it).
    private var fragments: [UInt8]?
    private var maskState: UInt32

    init(behaviour: Behaviour, request: [UInt8], handshake: EventLoopPromise<Void>, seed: UInt32) {
        self.behaviour = behaviour
        self.requestBytes = request
        self.handshake = handshake
        self.maskState = seed | 1
    }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: requestBytes.count)
        buffer.writeBytes(requestBytes)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = Clock.now()
        var incoming = unwrapInboundIn(data)
        if var carried = pending {
            pending = nil
            carried.writeBuffer(&incoming)
            process(&carried, context: context, now: now)
        } else {
            process(&incoming, context: context, now: now)
        }
    }

    private func process(_ buffer: inout ByteBuffer, context: ChannelHandlerContext, now: UInt64) {
        if state == .handshaking, !readHandshake(&buffer, context: context) {
            // The response head arrived in pieces: keep what came so far.
            if state == .handshaking, buffer.readableBytes > 0 { pending = buffer }
            return
        }
        while state == .open, buffer.readableBytes >= 2 {
            guard readFrame(&buffer, context: context, now: now) else { break }
        }
        if state != .closed, buffer.readableBytes > 0 {
            pending = buffer
        }
    }

    /// Consumes the response head once it is complete. Returns false while more bytes are needed or on failure.
    private func readHandshake(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) -> Bool {
        let end: Int? = buffer.withUnsafeReadableBytes { bytes in
            guard bytes.count >= 4 else { return nil }
            for i in 3..<bytes.count
            where bytes[i] == 10 && bytes[i - 1] == 13 && bytes[i - 2] == 10 && bytes[i - 3] == 13 {
                return i + 1
            }
            return nil
        }
        guard let end else {
            if buffer.readableBytes > 16_384 { fail(context, "response head over 16 KiB") }
            return false
        }
        let head = buffer.readBytes(length: end) ?? []
        let statusOK = head.starts(with: Array("HTTP/1.1 101".utf8))
        let acceptOK = Self.contains(head, Self.expectedAccept)
        guard statusOK, acceptOK else {
            let line = String(decoding: head.prefix { $0 != 13 }, as: UTF8.self)
            fail(context, statusOK ? "101 without the expected Sec-WebSocket-Accept" : "upgrade refused: \(line)")
            return false
        }
        state = .open
        handshake.succeed(())
        behaviour.opened()
        return true
    }

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }

    /// Parses one frame if it is complete. Returns false when more bytes are needed (or the connection ended).
    private func readFrame(_ buffer: inout ByteBuffer, context: ChannelHandlerContext, now: UInt64) -> Bool {
        let start = buffer.readerIndex
        guard let b0 = buffer.getInteger(at: start, as: UInt8.self),
            let b1 = buffer.getInteger(at: start + 1, as: UInt8.self)
        else { return false }
        var headerSize = 2
        var length = Int(b1 & 0x7F)
        if length == 126 {
            guard let l = buffer.getInteger(at: start + 2, as: UInt16.self) else { return false }
            length = Int(l)
            headerSize = 4
        } else if length == 127 {
            guard let l = buffer.getInteger(at: start + 2, as: UInt64.self) else { return false }
            guard l <= UInt64(Self.maxFrame) else {
                fail(context, "frame of \(l) bytes")
                return false
            }
            length = Int(l)
            headerSize = 10
        }
        if b1 & 0x80 != 0 {
            fail(context, "the server sent a masked frame")
            return false
        }
        guard buffer.readableBytes >= headerSize + length else { return false }
        let fin = b0 & 0x80 != 0
        let opcode = b0 & 0x0F
        let compressed = b0 & 0x40 != 0
        if opcode == 0x1 || opcode == 0x2 || opcode == 0x0 {
            behaviour.dataFrame(wireBytes: headerSize + length, compressed: compressed)
        }
        buffer.withUnsafeReadableBytes { bytes in
            let payload = UnsafeRawBufferPointer(rebasing: bytes[headerSize..<(headerSize + length)])
            if compressed && fin && opcode != 0x0 {
                // permessage-deflate, no context takeover (Hive always agrees to it): each message on its own.
                guard let inflated = BenchInflater.forThisThread.inflate(payload) else {
                    return fail(context, "a compressed message that does not inflate")
                }
                inflated.withUnsafeBytes { frame(opcode: opcode, fin: fin, payload: $0, context: context, now: now) }
            } else {
                frame(opcode: opcode, fin: fin, payload: payload, context: context, now: now)
            }
        }
        buffer.moveReaderIndex(forwardBy: headerSize + length)
        return state == .open
    }

    private func frame(opcode: UInt8, fin: Bool, payload: UnsafeRawBufferPointer, context: ChannelHandlerContext, now: UInt64) {
        switch opcode {
        case 0x1, 0x2:
            if fin {
                deliver(payload, context: context, now: now)
            } else {
                fragments = Array(payload)
            }
        case 0x0:
            guard fragments != nil else { return fail(context, "continuation without a first fragment") }
            fragments!.append(contentsOf: payload)
            if fin, let whole = fragments {
                fragments = nil
                whole.withUnsafeBytes { deliver($0, context: context, now: now) }
            }
        case 0x8:
            // Answer with the same status code, then let the server close the TCP connection (or close it ourselves).
            send(opcode: 0x8, Array(payload.prefix(2)), context: context)
            end(context)
        case 0x9:
            send(opcode: 0xA, Array(payload), context: context)
        case 0xA:
            break
        default:
            fail(context, "unknown opcode \(opcode)")
        }
    }

    @inline(__always)
    private func deliver(_ payload: UnsafeRawBufferPointer, context: ChannelHandlerContext, now: UInt64) {
        if let next = behaviour.received(payload, at: now) { send(opcode: 0x1, next, context: context) }
    }

    /// Writes one masked frame (clients must mask; the key comes from a per-connection xorshift, which is plenty for
    /// a benchmark that talks only to its own server).
    private func send(opcode: UInt8, _ payload: [UInt8], context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: payload.count + 14)
        buffer.writeInteger(0x80 | opcode)
        if payload.count < 126 {
            buffer.writeInteger(UInt8(0x80 | payload.count))
        } else if payload.count <= 0xFFFF {
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(payload.count))
        } else {
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(payload.count))
        }
        maskState ^= maskState << 13
        maskState ^= maskState >> 17
        maskState ^= maskState << 5
        let key = maskState
        buffer.writeInteger(key)
        payload.withUnsafeBytes { source in
            _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: source.count) { target in
                for i in 0..<source.count {
                    target[i] = source[i] ^ UInt8(truncatingIfNeeded: key >> UInt32(24 - 8 * (i & 3)))
                }
                return source.count
            }
        }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    private func fail(_ context: ChannelHandlerContext, _ reason: String) {
        if state == .handshaking { handshake.fail(HandshakeError(description: reason)) }
        end(context)
    }

    private func end(_ context: ChannelHandlerContext) {
        if state == .open { behaviour.closed() }
        state = .closed
        pending = nil
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is StartSending {
            if state == .open, let first = behaviour.start() { send(opcode: 0x1, first, context: context) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .handshaking: handshake.fail(HandshakeError(description: "connection closed during the handshake"))
        case .open: behaviour.closed()
        case .closed: break
        }
        state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if state == .handshaking { handshake.fail(error) }
        end(context)
    }
}
