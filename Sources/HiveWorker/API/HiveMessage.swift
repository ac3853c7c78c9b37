/// A WebSocket message as the application sees it: text is sent as a text frame, bytes as a binary frame.
public enum HiveMessage: Sendable, Equatable, CustomStringConvertible {
    case text(String)
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

    public var description: String {
        switch self {
        case .text(let string): "text(\(string.utf8.count) bytes)"
        case .binary(let bytes): "binary(\(bytes.count) bytes)"
        }
    }
}
