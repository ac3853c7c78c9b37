import NIOCore
import NIOWebSocket

extension WebSocketFrameHandler {
    /// The RFC 6455 rules for one server-side connection, without I/O: frames in, actions out.
    ///
    /// Everything here is driven by peer data, so nothing traps: every violation becomes a `.fail` action with the
    /// close code RFC 6455 7.4.1 prescribes, and the machine then ignores the rest of the connection.
    struct StateMachine {
        enum State: Equatable {
            /// Messages flow both ways.
            case open
            /// We sent a close frame and wait for the peer's; data frames are no longer delivered.
            case closeSent
            /// The handshake finished or the connection failed: nothing the peer sends matters any more.
            case closed
        }

        enum Action: Equatable {
            case none
            /// A complete, validated data message for the owner.
            case deliver(WebSocketMessage)
            /// Answer a ping with this (unmasked) payload.
            case sendPong(ByteBuffer)
            /// The peer started the close handshake: reply with `replyCode`, then close the connection. `peerCode` is
            /// what the peer sent, or 1005 ("no status received", RFC 6455 7.1.5) when its close frame had no body.
            case answerClose(peerCode: WebSocketErrorCode, replyCode: WebSocketErrorCode)
            /// The peer broke the protocol: send a close frame with `code`, then close without waiting for the
            /// peer's close (RFC 6455 7.1.7 "fail the WebSocket connection").
            case fail(WebSocketErrorCode, reason: String)
            /// The peer answered the close we sent (or misbehaved while we waited for that): close the connection.
            case closeConnection
        }

        /// A text or binary message whose final fragment has not arrived yet.
        private struct PartialMessage {
            var kind: WebSocketMessage.Kind
            /// Unmasked bytes of all fragments so far. Grows by doubling, so reassembly stays O(total bytes)
            /// however many fragments there are (Autobahn 9.3.1 sends 65,536 of them).
            var data: ByteBuffer
            /// Fed with each text fragment as it arrives, so bad UTF-8 fails the connection at the first bad
            /// fragment rather than at the end of the message.
            var validator: UTF8Validator
            /// RSV1 on the first frame (permessage-deflate): `data` is compressed, inflated and validated at the end.
            var compressed = false
        }

        private(set) var state: State = .open
        private var partial: PartialMessage?
        private let maxMessageSize: Int
        /// Set when permessage-deflate was negotiated: RSV1 then marks a compressed message (RFC 7692 6). The
        /// worker's shared inflater, since every client agreed to `client_no_context_takeover`.
        private let inflater: MessageInflater?

        init(maxMessageSize: Int, inflater: MessageInflater? = nil) {
            self.maxMessageSize = maxMessageSize
            self.inflater = inflater
        }

        /// Applies one frame from the peer.
        mutating func receive(_ frame: WebSocketFrame) -> Action {
            switch self.state {
            case .closed:
                return .none
            case .closeSent:
                // After our close frame only the peer's close matters (RFC 6455 5.5.1): data frames, pings and even
                // broken frames are dropped, and the close timer bounds the wait.
                guard frame.opcode == .connectionClose else {
                    return .none
                }
                self.state = .closed
                return .closeConnection
            case .open:
                break
            }

            // RFC 6455 5.1: a server MUST close the connection on an unmasked client frame.
            guard frame.maskKey != nil else {
                return self.fail(.protocolError, reason: "unmasked frame")
            }
            // No reserved bit has a meaning (RFC 6455 5.2) except RSV1 on the first frame of a message when
            // permessage-deflate was negotiated (RFC 7692 6): anywhere else it fails the connection.
            var reserved = frame.reservedBits
            if self.inflater != nil && (frame.opcode == .text || frame.opcode == .binary) {
                reserved.remove(.rsv1)
            }
            guard reserved.isEmpty else {
                return self.fail(.protocolError, reason: "reserved bits set")
            }

            switch frame.opcode {
            case .text:
                return self.startMessage(.text, frame: frame)
            case .binary:
                return self.startMessage(.binary, frame: frame)
            case .continuation:
                return self.continueMessage(frame)
            case .ping, .pong, .connectionClose:
                // WebSocketFrameParser already rejects both, but frames may come from elsewhere (tests, another
                // parser).
                guard frame.fin else {
                    return self.fail(.protocolError, reason: "fragmented control frame")
                }
                guard frame.data.readableBytes <= WebSocketFrameCodec.maxControlPayload else {
                    return self.fail(.protocolError, reason: "control frame longer than 125 bytes")
                }
                switch frame.opcode {
                case .ping:
                    return .sendPong(Self.unmaskedPayload(of: frame))
                case .pong:
                    // Unsolicited pongs are allowed (RFC 6455 5.5.3); the handler counts any frame as liveness.
                    return .none
                default:
                    return self.receiveClose(frame)
                }
            default:
                return self.fail(.protocolError, reason: "reserved opcode")
            }
        }

        /// Applies an error from the `WebSocketFrameParser`, which parses nothing more after it.
        mutating func receiveDecoderError(_ error: NIOWebSocketError) -> Action {
            switch self.state {
            case .open:
                switch error {
                case .invalidFrameLength:
                    return self.fail(.messageTooLarge, reason: "frame too large")
                case .fragmentedControlFrame:
                    return self.fail(.protocolError, reason: "fragmented control frame")
                case .multiByteControlFrameLength:
                    return self.fail(.protocolError, reason: "control frame longer than 125 bytes")
                }
            case .closeSent:
                // Our close frame is already out and no second one may follow: just stop.
                self.state = .closed
                return .closeConnection
            case .closed:
                return .none
            }
        }

        /// Moves to `.closeSent` for a server-initiated close. Returns false when a close already started (either
        /// side), in which case no close frame may be sent.
        mutating func startClose() -> Bool {
            guard self.state == .open else {
                return false
            }
            self.state = .closeSent
            self.partial = nil
            return true
        }

        /// A fragmented message not finished yet: its kind, its unmasked bytes so far, and whether it is
        /// compressed (for a reload's hand-over).
        var partialMessage: (kind: WebSocketMessage.Kind, data: ByteBuffer, compressed: Bool)? {
            self.partial.map { ($0.kind, $0.data, $0.compressed) }
        }

        /// Continues a fragmented message another process's machine had begun (a reload's hand-over). A text
        /// message's bytes so far are validated again, which also restores the validator's place in a character.
        /// Returns false (and changes nothing) when they are not a valid UTF-8 prefix or too long: the state came
        /// from another process.
        mutating func restorePartial(kind: WebSocketMessage.Kind, data: ByteBuffer, compressed: Bool) -> Bool {
            guard self.state == .open, self.partial == nil, data.readableBytes <= self.maxMessageSize,
                !compressed || self.inflater != nil
            else { return false }
            var validator = UTF8Validator()
            if kind == .text && !compressed {
                guard validator.feed(data) else { return false }
            }
            self.partial = PartialMessage(kind: kind, data: data, validator: validator, compressed: compressed)
            return true
        }

        /// The connection is going away without (more of) a handshake: TCP closed, keep-alive timeout, removal.
        mutating func markClosed() {
            self.state = .closed
            self.partial = nil
        }

        private mutating func fail(_ code: WebSocketErrorCode, reason: String) -> Action {
            self.markClosed()
            return .fail(code, reason: reason)
        }

        private mutating func startMessage(_ kind: WebSocketMessage.Kind, frame: WebSocketFrame) -> Action {
            guard self.partial == nil else {
                return self.fail(.protocolError, reason: "new message inside a fragmented message")
            }
            // Checked on the masked length, before the unmasking copy.
            guard frame.data.readableBytes <= self.maxMessageSize else {
                return self.fail(.messageTooLarge, reason: "message larger than \(self.maxMessageSize) bytes")
            }
            let data = Self.unmaskedPayload(of: frame)
            let compressed = frame.rsv1
            var validator = UTF8Validator()
            if kind == .text && !compressed {
                guard validator.feed(data) else {
                    return self.fail(.dataInconsistentWithMessage, reason: "invalid UTF-8")
                }
            }
            guard frame.fin else {
                self.partial = PartialMessage(kind: kind, data: data, validator: validator, compressed: compressed)
                return .none
            }
            return self.finishMessage(kind: kind, data: data, validator: validator, compressed: compressed)
        }

        private mutating func continueMessage(_ frame: WebSocketFrame) -> Action {
            guard var partial = self.partial else {
                return self.fail(.protocolError, reason: "continuation frame without a message")
            }
            // Drop our copy first, or the append below would see a shared buffer and copy the whole message for
            // every fragment: quadratic in the number of fragments.
            self.partial = nil

            let length = frame.data.readableBytes
            guard length <= self.maxMessageSize - partial.data.readableBytes else {
                return self.fail(.messageTooLarge, reason: "message larger than \(self.maxMessageSize) bytes")
            }
            let start = partial.data.readableBytes
            partial.data.writeImmutableBuffer(frame.data)
            if let key = frame.maskKey {
                WebSocketFrameCodec.unmask(&partial.data, key: key, fromReadableOffset: start)
            }
            if partial.kind == .text && !partial.compressed {
                var validator = partial.validator
                let valid = partial.data.withUnsafeReadableBytes { bytes in
                    validator.feed(UnsafeRawBufferPointer(rebasing: bytes[start...]))
                }
                guard valid else {
                    return self.fail(.dataInconsistentWithMessage, reason: "invalid UTF-8")
                }
                partial.validator = validator
            }
            guard frame.fin else {
                self.partial = partial
                return .none
            }
            return self.finishMessage(
                kind: partial.kind, data: partial.data, validator: partial.validator, compressed: partial.compressed)
        }

        private mutating func finishMessage(
            kind: WebSocketMessage.Kind,
            data: ByteBuffer,
            validator: UTF8Validator,
            compressed: Bool = false
        ) -> Action {
            if compressed {
                return self.finishCompressedMessage(kind: kind, data: data)
            }
            // A text message may not end inside a character, even if every fragment was a valid prefix.
            guard kind == .binary || validator.isAtBoundary else {
                return self.fail(.dataInconsistentWithMessage, reason: "invalid UTF-8")
            }
            return .deliver(WebSocketMessage(kind: kind, data: data))
        }

        /// Inflates a compressed message, with --max-message-size applied to the inflated size (1009 past it), and
        /// validates a text message's UTF-8 once whole.
        private mutating func finishCompressedMessage(kind: WebSocketMessage.Kind, data: ByteBuffer) -> Action {
            guard let inflater = self.inflater else {
                return self.fail(.protocolError, reason: "reserved bits set")
            }
            switch inflater.inflate(data, limit: self.maxMessageSize, allocator: ByteBufferAllocator()) {
            case .failure(.tooLarge):
                return self.fail(
                    .messageTooLarge, reason: "message larger than \(self.maxMessageSize) bytes once inflated")
            case .failure(.corrupt):
                return self.fail(.dataInconsistentWithMessage, reason: "invalid compressed data")
            case .success(let inflated):
                guard kind == .binary || UTF8Validator.isValid(inflated) else {
                    return self.fail(.dataInconsistentWithMessage, reason: "invalid UTF-8")
                }
                return .deliver(WebSocketMessage(kind: kind, data: inflated))
            }
        }

        private mutating func receiveClose(_ frame: WebSocketFrame) -> Action {
            var payload = Self.unmaskedPayload(of: frame)
            // A close ends any fragmented message: Autobahn 7.1.5 expects the peer's code back, not 1002.
            self.partial = nil
            guard payload.readableBytes > 0 else {
                self.state = .closed
                return .answerClose(peerCode: WebSocketErrorCode(codeNumber: 1005), replyCode: .normalClosure)
            }
            guard let number = payload.readInteger(as: UInt16.self) else {
                return self.fail(.protocolError, reason: "close frame with a 1-byte body")
            }
            guard WebSocketFrameCodec.isValidReceivedCloseCode(number) else {
                return self.fail(.protocolError, reason: "invalid close code \(number)")
            }
            guard UTF8Validator.isValid(payload) else {
                return self.fail(.dataInconsistentWithMessage, reason: "close reason is not valid UTF-8")
            }
            self.state = .closed
            let code = WebSocketErrorCode(codeNumber: Int(number))
            return .answerClose(peerCode: code, replyCode: code)
        }

        private static func unmaskedPayload(of frame: WebSocketFrame) -> ByteBuffer {
            var data = frame.data
            if let key = frame.maskKey {
                WebSocketFrameCodec.unmask(&data, key: key)
            }
            return data
        }
    }
}
