/// A WebSocket message as the application sees it: text is sent as a text frame, bytes as a binary frame.
///
/// A hook receives one per complete WebSocket message (fragments joined, text checked as UTF-8) and sends them with
/// `HiveServer.push(_:_:)` and `broadcast(_:)`.
public enum HiveMessage: Sendable, Equatable, CustomStringConvertible {
    /// A text message (opcode 1): valid UTF-8 by construction.
    case text(String)
    /// A binary message (opcode 2): any bytes.
    case binary([UInt8])

    /// RFC 6455 opcode of the frame that carries it.
    var opcode: UInt8 {
        switch self {
        case .text: 0x1
        case .binary: 0x2
        }
    }

    var bytes: [UInt8] {
        switch self {
        case .text(let string): Array(string.utf8)
        case .binary(let bytes): bytes
        }
    }

    /// Its kind and size, never its content (safe for logs): "text(5 bytes)".
    public var description: String {
        switch self {
        case .text(let string): "text(\(string.utf8.count) bytes)"
        case .binary(let bytes): "binary(\(bytes.count) bytes)"
        }
    }
}
