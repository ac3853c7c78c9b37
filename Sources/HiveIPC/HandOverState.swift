/// What a retired worker process tells its replacement about one WebSocket connection it hands over at a reload
/// (the `handOver` record's state; the socket travels beside it). With it the replacement continues the connection
/// mid-stream: the client sees no close, and a frame or a fragmented message it was sending arrives whole.
///
/// Wire format, little-endian, fixed fields first. The version comes first and is all a reader may rely on across
/// binaries: a replacement that reads another version does not guess, it closes the connection with 1012 (Service
/// Restart), as a reload without hand-over does.
///
///     version u16 | partialKind u8 | flags u8 (bit 0: partial compressed) | deflateWindowBits u8 | 3 × 0
///     nextPingIn i64 ns (-1: none) | pongDeadlineIn i64 ns (-1: none)
///     path: u16 length + UTF-8 | channels: u16 count, each u8 length + name
///     frameLeftover: u32 length + bytes | partialMessage: u32 length + bytes
package struct HandOverState: Equatable, Sendable {
    /// The layout above. Bump it whenever the layout or the meaning of a field changes.
    package static let version: UInt16 = 1

    package enum PartialKind: UInt8, Sendable {
        case none = 0, text, binary
    }

    /// The path the client upgraded on (the application sees it in `HiveConnection.path`).
    package var path: String
    /// The permessage-deflate window this client agreed to for our messages; 0 without compression.
    package var deflateWindowBits: UInt8
    /// The kind of a fragmented message not finished yet, and its unmasked bytes so far.
    package var partialKind: PartialKind
    package var partialCompressed: Bool
    package var partialMessage: [UInt8]
    /// The bytes of an incomplete frame (header and payload as the client sent them, still masked).
    package var frameLeftover: [UInt8]
    /// Keep-alive: nanoseconds until the next ping is due and until an unanswered ping's deadline, from the moment
    /// the state was taken (nil: none). Relative, so the two processes need not share a clock origin.
    package var nextPingIn: Int64?
    package var pongDeadlineIn: Int64?
    /// The channels the connection is subscribed to (valid names).
    package var channels: [String]

    package init(
        path: String, deflateWindowBits: UInt8 = 0, partialKind: PartialKind = .none, partialCompressed: Bool = false,
        partialMessage: [UInt8] = [], frameLeftover: [UInt8] = [], nextPingIn: Int64? = nil,
        pongDeadlineIn: Int64? = nil, channels: [String] = []
    ) {
        self.path = path
        self.deflateWindowBits = deflateWindowBits
        self.partialKind = partialKind
        self.partialCompressed = partialCompressed
        self.partialMessage = partialMessage
        self.frameLeftover = frameLeftover
        self.nextPingIn = nextPingIn
        self.pongDeadlineIn = pongDeadlineIn
        self.channels = channels
    }

    package enum DecodeError: Error, Equatable, CustomStringConvertible {
        /// Another binary's layout (a reload to a binary with another hand-over format).
        case unsupportedVersion(UInt16)
        case truncated(field: String)
        case invalid(field: String)

        package var description: String {
            switch self {
            case .unsupportedVersion(let version):
                "hand-over state of version \(version), this binary reads version \(HandOverState.version)"
            case .truncated(let field): "hand-over state is truncated at its \(field)"
            case .invalid(let field): "hand-over state has an invalid \(field)"
            }
        }
    }

    /// - Parameter version: Only tests pass another one (to check the fallback of a replacement that reads it).
    package func encoded(version: UInt16 = HandOverState.version) -> [UInt8] {
        var out: [UInt8] = []
        let path = Array(self.path.utf8.prefix(Int(UInt16.max)))
        out.reserveCapacity(40 + path.count + frameLeftover.count + partialMessage.count + channels.count * 16)
        Self.append(UInt64(version), bytes: 2, to: &out)
        out.append(partialKind.rawValue)
        out.append(partialCompressed ? 1 : 0)
        out.append(deflateWindowBits)
        out += [0, 0, 0]
        Self.append(UInt64(bitPattern: nextPingIn ?? -1), bytes: 8, to: &out)
        Self.append(UInt64(bitPattern: pongDeadlineIn ?? -1), bytes: 8, to: &out)
        Self.append(UInt64(path.count), bytes: 2, to: &out)
        out += path
        let channels = self.channels.prefix(Int(UInt16.max))
        Self.append(UInt64(channels.count), bytes: 2, to: &out)
        for channel in channels {
            let name = Array(channel.utf8.prefix(ChannelName.maxLength))
            out.append(UInt8(name.count))
            out += name
        }
        Self.append(UInt64(frameLeftover.count), bytes: 4, to: &out)
        out += frameLeftover
        Self.append(UInt64(partialMessage.count), bytes: 4, to: &out)
        out += partialMessage
        return out
    }

    /// The version of an encoded state, if it has the two bytes.
    package static func version(of bytes: [UInt8]) -> UInt16? {
        bytes.count >= 2 ? UInt16(bytes[0]) | UInt16(bytes[1]) << 8 : nil
    }

    package init(decoding bytes: [UInt8]) throws(DecodeError) {
        guard let version = Self.version(of: bytes) else { throw .truncated(field: "version") }
        guard version == Self.version else { throw .unsupportedVersion(version) }
        var reader = Reader(bytes: bytes, offset: 2)
        guard let kind = PartialKind(rawValue: try reader.int(1, "partial kind").low8) else {
            throw .invalid(field: "partial kind")
        }
        let flags = try reader.int(1, "flags")
        let windowBits = try reader.int(1, "deflate window")
        _ = try reader.bytes(3, "padding")
        let nextPing = Int64(bitPattern: try reader.int(8, "next ping"))
        let pongDeadline = Int64(bitPattern: try reader.int(8, "pong deadline"))
        let pathLength = Int(try reader.int(2, "path length"))
        let path = String(decoding: try reader.bytes(pathLength, "path"), as: UTF8.self)
        var channels: [String] = []
        let channelCount = Int(try reader.int(2, "channel count"))
        for _ in 0..<channelCount {
            let length = Int(try reader.int(1, "channel name length"))
            let name = String(decoding: try reader.bytes(length, "channel name"), as: UTF8.self)
            guard ChannelName.problem(name) == nil else { throw .invalid(field: "channel name") }
            channels.append(name)
        }
        let leftover = try reader.bytes(Int(try reader.int(4, "frame leftover length")), "frame leftover")
        let partial = try reader.bytes(Int(try reader.int(4, "partial message length")), "partial message")
        self.init(
            path: path, deflateWindowBits: windowBits.low8, partialKind: kind, partialCompressed: flags & 1 == 1,
            partialMessage: partial, frameLeftover: leftover, nextPingIn: nextPing < 0 ? nil : nextPing,
            pongDeadlineIn: pongDeadline < 0 ? nil : pongDeadline, channels: channels
        )
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset: Int

        mutating func bytes(_ count: Int, _ field: String) throws(DecodeError) -> [UInt8] {
            guard count >= 0, bytes.count - offset >= count else { throw .truncated(field: field) }
            defer { offset += count }
            return Array(bytes[offset..<offset + count])
        }

        mutating func int(_ count: Int, _ field: String) throws(DecodeError) -> UInt64 {
            var value: UInt64 = 0
            for (shift, byte) in try bytes(count, field).enumerated() { value |= UInt64(byte) << (8 * shift) }
            return value
        }
    }

    private static func append(_ value: UInt64, bytes: Int, to out: inout [UInt8]) {
        for shift in 0..<bytes { out.append(UInt8(truncatingIfNeeded: value >> (8 * shift))) }
    }
}

extension UInt64 {
    fileprivate var low8: UInt8 { UInt8(truncatingIfNeeded: self) }
}
