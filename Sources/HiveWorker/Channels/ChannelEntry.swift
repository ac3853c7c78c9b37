import HiveRedis

/// One message for a channel's subscribers, with its place in the channel's history when it has one (published
/// through the history script); a plain `PUBLISH` or `deliver(_:toChannel:)` has none.
struct ChannelEntry: Sendable, Equatable {
    var message: HiveMessage
    var position: HistoryPosition?

    /// A message from the Redis subscription: the history script's frame gives the position, anything else is
    /// delivered as published.
    init(redisPayload payload: [UInt8]) {
        if let (position, start) = HistoryFrame.parse(payload) {
            self.init(message: HiveMessage(redisPayload: Array(payload[start...])), position: position)
        } else {
            self.init(message: HiveMessage(redisPayload: payload), position: nil)
        }
    }

    init(message: HiveMessage, position: HistoryPosition?) {
        self.message = message
        self.position = position
    }
}

/// The bytes of a `channelMessage` record between workers: each receiving worker encodes the frames its own
/// subscribers need (plain, enveloped, or both) once, from these. Per entry: kind (1 text, 2 binary), epoch length
/// (0: no position), the epoch, the offset (8 bytes, little-endian, only with an epoch), the payload length
/// (4 bytes, little-endian), the payload.
enum ChannelEntryCodec {
    static func encode(_ entries: [ChannelEntry]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entries.reduce(0) { $0 + $1.message.byteCount + 16 })
        for entry in entries {
            out.append(entry.message.opcode)
            if let position = entry.position {
                out.append(UInt8(position.epoch.utf8.count))
                out += position.epoch.utf8
                withUnsafeBytes(of: position.offset.littleEndian) { out += $0 }
            } else {
                out.append(0)
            }
            withUnsafeBytes(of: UInt32(entry.message.byteCount).littleEndian) { out += $0 }
            switch entry.message {
            case .text(let text): out += text.utf8
            case .binary(let bytes): out += bytes
            }
        }
        return out
    }

    /// nil for bytes that are not exactly a sequence of entries (they come from another process: checked, never
    /// trusted), or for `expected` entries not matching the count.
    static func decode(_ bytes: [UInt8], expected: Int) -> [ChannelEntry]? {
        var entries: [ChannelEntry] = []
        entries.reserveCapacity(min(expected, 1024))
        var index = 0
        let count = bytes.count
        func word<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard count - index >= MemoryLayout<T>.size else { return nil }
            var value = T.zero
            for shift in 0..<MemoryLayout<T>.size { value |= T(bytes[index + shift]) << (8 * shift) }
            index += MemoryLayout<T>.size
            return value
        }
        while index < count {
            guard count - index >= 2 else { return nil }
            let kind = bytes[index]
            let epochLength = Int(bytes[index + 1])
            index += 2
            guard kind == 1 || kind == 2 else { return nil }
            var position: HistoryPosition?
            if epochLength > 0 {
                guard count - index >= epochLength, HistoryPosition.isEpoch(bytes[index..<index + epochLength]) else { return nil }
                let epoch = String(decoding: bytes[index..<index + epochLength], as: UTF8.self)
                index += epochLength
                guard let offset = word(UInt64.self) else { return nil }
                position = HistoryPosition(epoch: epoch, offset: offset)
            }
            guard let length = word(UInt32.self).map(Int.init), count - index >= length else { return nil }
            let payload = Array(bytes[index..<index + length])
            index += length
            let message: HiveMessage
            if kind == 1 {
                guard let text = String(validating: payload, as: UTF8.self) else { return nil }
                message = .text(text)
            } else {
                message = .binary(payload)
            }
            entries.append(ChannelEntry(message: message, position: position))
        }
        return entries.count == expected ? entries : nil
    }
}
