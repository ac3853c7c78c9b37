import NIOCore

/// A complete WebSocket message, after reassembly of its fragments and, for text, UTF-8 validation.
///
/// `data` holds unmasked payload bytes only; for a fragmented message it is one buffer with every fragment, so the
/// owner never sees a fragment boundary.
struct WebSocketMessage {
    enum Kind: Sendable {
        case text
        case binary
    }

    var kind: Kind
    var data: ByteBuffer

    /// The payload decoded as a string, for text messages. The frame handler only delivers text messages whose bytes
    /// are valid UTF-8, so this never has to repair anything.
    var text: String? {
        self.kind == .text ? String(buffer: self.data) : nil
    }
}

extension WebSocketMessage: Sendable {}

extension WebSocketMessage: Equatable {}
