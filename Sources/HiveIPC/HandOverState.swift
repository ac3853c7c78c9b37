/// What a retired worker process tells its replacement about one WebSocket connection it hands over at a reload
/// (the `handOver` record's state; the socket travels beside it). With it the replacement continues the connection
/// mid-stream: the client sees no close, and a frame or a fragmented message it was sending arrives whole.
///
/// Wire format, little-endian, fixed fields first. The version comes first and is all a reader may rely on across
/// binaries: a replacement that reads another version does not guess, it closes the connection with 1012 (Service
/// Restart), as a reload without hand-over does.
///
///     version u16 | partialKind u8 | flags u8 | deflateWindowBits u8 | 3 × 0
///     nextPingIn i64 ns (-1: none) | pongDeadlineIn i64 ns (-1: none)
///     path: u16 length + UTF-8
///     channels: u16 count, each u8 length + name [+ with envelopes: position: u8 epoch length (0: none) + epoch
///               + u64 offset]
///     frameLeftover: u32 length + bytes | partialMessage: u32 length + bytes
///     [with a token: subject u8 length + UTF-8 | expiresAt f64 bits (seconds since 1970; only with flag bit 3)
///                    | claim: only with flag bit 4: u16 count, each u8 length + name]
///
/// Flags: bit 0 the partial message is compressed, bit 1 envelopes (`envelope=json`), bit 2 a token follows,
/// bit 3 the token has an `exp`, bit 4 the token has a `channels` claim. Other bits must be 0.
///
/// Every length is checked against what remains before it is read, and against the field's own limit (a name
/// of at most `ChannelName.maxLength` bytes, a subject of 1 to 64, an epoch of letters and digits up to 32), so
/// any bytes decode or throw `DecodeError`, never trap. The whole state is at most `maxSize(maxMessageSize:)`.
package struct HandOverState: Equatable, Sendable {
    /// The layout above. Bump it whenever the layout or the meaning of a field changes.
    /// 2: envelopes with channel positions, and a token's claims.
    package static let version: UInt16 = 2

    /// Where an enveloped connection is in a channel: the last position it was given (`EPOCH:OFFSET`).
    package struct Position: Equatable, Sendable {
        package var epoch: String
        package var offset: UInt64

        package init(epoch: String, offset: UInt64) {
            self.epoch = epoch
            self.offset = offset
        }
    }

    /// The verified claims of the JWT the connection opened with (`HiveToken`'s fields).
    package struct Token: Equatable, Sendable {
        package var subject: String
        /// The `channels` claim as given (valid channel names or "*"); nil: no claim.
        package var channels: [String]?
        /// The `exp` claim, seconds since 1970; nil: none.
        package var expiresAt: Double?

        package init(subject: String, channels: [String]?, expiresAt: Double?) {
            self.subject = subject
            self.channels = channels
            self.expiresAt = expiresAt
        }
    }

    /// The longest epoch a position may name (`HistoryPosition.maxEpochLength`).
    package static let maxEpochLength = 32
    /// The longest `sub` a token may have (a user id).
    package static let maxSubjectLength = 64

    /// The largest state a replacement accepts, chunks included: an incomplete frame and a fragmented message of
    /// at most `maxMessageSize` each (plus a frame header), and 1 MiB for the rest (path, channels, claims).
    package static func maxSize(maxMessageSize: Int) -> Int { 2 * maxMessageSize + 16 + (1 << 20) }

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
    /// Whether channel messages reach it in envelopes (`envelope=json`), and where it is in each of its channels
    /// that gave it a position (a channel without one is not in the dictionary). Positions need envelopes.
    package var envelopes: Bool
    package var positions: [String: Position]
    /// Its token's claims; nil: anonymous (no token key configured).
    package var token: Token?

    package init(
        path: String, deflateWindowBits: UInt8 = 0, partialKind: PartialKind = .none, partialCompressed: Bool = false,
        partialMessage: [UInt8] = [], frameLeftover: [UInt8] = [], nextPingIn: Int64? = nil,
        pongDeadlineIn: Int64? = nil, channels: [String] = [], envelopes: Bool = false,
        positions: [String: Position] = [:], token: Token? = nil
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
        self.envelopes = envelopes
        self.positions = positions
        self.token = token
    }

    package enum DecodeError: Error, Equatable, CustomStringConvertible {
        /// Another binary's layout (a reload to a binary with another hand-over format).
        case unsupportedVersion(UInt16)
        case truncated(field: String)
        case invalid(field: String)
        /// Larger than `maxSize(maxMessageSize:)` (the chunks of one connection add up past it).
        case tooLarge(bytes: Int, limit: Int)

        package var description: String {
            switch self {
            case .unsupportedVersion(let version):
                "hand-over state of version \(version), this binary reads version \(HandOverState.version)"
            case .truncated(let field): "hand-over state is truncated at its \(field)"
            case .invalid(let field): "hand-over state has an invalid \(field)"
            case .tooLarge(let bytes, let limit):
                "hand-over state is over \(bytes) bytes, more than the \(limit) its connection can need"
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
        var flags: UInt8 = partialCompressed ? Flag.partialCompressed : 0
        if envelopes { flags |= Flag.envelopes }
        if let token {
            flags |= Flag.token
            if token.expiresAt != nil { flags |= Flag.expiry }
            if token.channels != nil { flags |= Flag.claim }
        }
        out.append(flags)
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
            if envelopes {
                if let position = positions[channel] {
                    let epoch = Array(position.epoch.utf8.prefix(Self.maxEpochLength))
                    out.append(UInt8(epoch.count))
                    out += epoch
                    Self.append(position.offset, bytes: 8, to: &out)
                } else {
                    out.append(0)
                }
            }
        }
        Self.append(UInt64(frameLeftover.count), bytes: 4, to: &out)
        out += frameLeftover
        Self.append(UInt64(partialMessage.count), bytes: 4, to: &out)
        out += partialMessage
        if let token {
            let subject = Array(token.subject.utf8.prefix(Self.maxSubjectLength))
            out.append(UInt8(subject.count))
            out += subject
            if let expiresAt = token.expiresAt { Self.append(expiresAt.bitPattern, bytes: 8, to: &out) }
            if let claim = token.channels {
                // Cut, never widened: a claim of more names than fit allows fewer channels, not more.
                let names = claim.prefix(Int(UInt16.max))
                Self.append(UInt64(names.count), bytes: 2, to: &out)
                for channel in names {
                    let name = Array(channel.utf8.prefix(ChannelName.maxLength))
                    out.append(UInt8(name.count))
                    out += name
                }
            }
        }
        return out
    }

    private enum Flag {
        static let partialCompressed: UInt8 = 1
        static let envelopes: UInt8 = 2
        static let token: UInt8 = 4
        static let expiry: UInt8 = 8
        static let claim: UInt8 = 16
        static let all: UInt8 = 31
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
        let flags = try reader.int(1, "flags").low8
        guard flags & ~Flag.all == 0, flags & Flag.token != 0 || flags & (Flag.expiry | Flag.claim) == 0 else {
            throw .invalid(field: "flags")
        }
        let envelopes = flags & Flag.envelopes != 0
        let windowBits = try reader.int(1, "deflate window")
        _ = try reader.bytes(3, "padding")
        let nextPing = Int64(bitPattern: try reader.int(8, "next ping"))
        let pongDeadline = Int64(bitPattern: try reader.int(8, "pong deadline"))
        let pathLength = Int(try reader.int(2, "path length"))
        let path = String(decoding: try reader.bytes(pathLength, "path"), as: UTF8.self)
        var channels: [String] = []
        var positions: [String: Position] = [:]
        let channelCount = Int(try reader.int(2, "channel count"))
        for _ in 0..<channelCount {
            let name = try reader.channelName("channel name")
            guard !channels.contains(name) else { throw .invalid(field: "channel name (listed twice)") }
            channels.append(name)
            guard envelopes else { continue }
            let epochLength = Int(try reader.int(1, "epoch length"))
            guard epochLength > 0 else { continue }
            let epoch = try reader.bytes(epochLength, "epoch")
            guard epoch.count <= Self.maxEpochLength, epoch.allSatisfy(Self.isEpochByte) else {
                throw .invalid(field: "epoch")
            }
            positions[name] = Position(epoch: String(decoding: epoch, as: UTF8.self), offset: try reader.int(8, "offset"))
        }
        let leftover = try reader.bytes(Int(try reader.int(4, "frame leftover length")), "frame leftover")
        let partial = try reader.bytes(Int(try reader.int(4, "partial message length")), "partial message")
        var token: Token?
        if flags & Flag.token != 0 {
            let subjectBytes = try reader.bytes(Int(try reader.int(1, "token subject length")), "token subject")
            let subject = String(decoding: subjectBytes, as: UTF8.self)
            guard (1...Self.maxSubjectLength).contains(subjectBytes.count), Array(subject.utf8) == subjectBytes,
                !subjectBytes.contains(where: { $0 < 0x20 || $0 == 0x7F })
            else { throw .invalid(field: "token subject") }
            var expiresAt: Double?
            if flags & Flag.expiry != 0 {
                expiresAt = Double(bitPattern: try reader.int(8, "token expiry"))
                guard expiresAt!.isFinite else { throw .invalid(field: "token expiry") }
            }
            var claim: [String]?
            if flags & Flag.claim != 0 {
                let count = Int(try reader.int(2, "token channel count"))
                var names: [String] = []
                for _ in 0..<count { names.append(try reader.channelName("token channel", allowAny: true)) }
                claim = names
            }
            token = Token(subject: subject, channels: claim, expiresAt: expiresAt)
        }
        guard reader.offset == bytes.count else { throw .invalid(field: "length (bytes after the last field)") }
        self.init(
            path: path, deflateWindowBits: windowBits.low8, partialKind: kind,
            partialCompressed: flags & Flag.partialCompressed != 0, partialMessage: partial, frameLeftover: leftover,
            nextPingIn: nextPing < 0 ? nil : nextPing, pongDeadlineIn: pongDeadline < 0 ? nil : pongDeadline,
            channels: channels, envelopes: envelopes, positions: positions, token: token
        )
    }

    /// Letters and digits (`HistoryPosition.isEpoch`).
    private static func isEpochByte(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset: Int

        mutating func bytes(_ count: Int, _ field: String) throws(DecodeError) -> [UInt8] {
            guard count >= 0, bytes.count - offset >= count else { throw .truncated(field: field) }
            defer { offset += count }
            return Array(bytes[offset..<offset + count])
        }

        /// A u8 length and a valid channel name (or "*", a token claim's "any channel", with `allowAny`).
        mutating func channelName(_ field: String, allowAny: Bool = false) throws(DecodeError) -> String {
            let length = Int(try int(1, "\(field) length"))
            let name = String(decoding: try bytes(length, field), as: UTF8.self)
            guard (allowAny && name == "*") || ChannelName.problem(name) == nil else { throw .invalid(field: field) }
            return name
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
