import HiveRedis
import NIOCore

/// One message for a channel's subscribers, with its place in the channel's history when it has one (published
/// through the history script); a plain `PUBLISH` or `deliver(_:toChannel:)` has none.
///
/// Kept as bytes with a text flag, never as a `String`: a message crosses workers and becomes frames and envelopes
/// without being converted (UTF-8 is checked once, where it comes in).
struct ChannelEntry: Sendable, Equatable {
    /// Valid UTF-8 (a text frame) or not (a binary frame).
    var isText: Bool
    var payload: [UInt8]
    var position: HistoryPosition?

    /// A Redis payload (from the subscription, or from history): text when it is valid UTF-8, as
    /// `HiveMessage(redisPayload:)` decides.
    init(redisPayload payload: [UInt8], position: HistoryPosition?) {
        self.init(isText: payload.withUnsafeBytes { bytes in
            var validator = UTF8Validator()
            return validator.feed(bytes) && validator.isAtBoundary
        }, payload: payload, position: position)
    }

    /// A message from the Redis subscription: the history script's frame gives the position, anything else is
    /// delivered as published.
    init(subscribed payload: [UInt8]) {
        if let (position, start) = HistoryFrame.parse(payload) {
            self.init(redisPayload: Array(payload[start...]), position: position)
        } else {
            self.init(redisPayload: payload, position: nil)
        }
    }

    init(message: HiveMessage, position: HistoryPosition?) {
        switch message {
        case .text(let text): self.init(isText: true, payload: Array(text.utf8), position: position)
        case .binary(let bytes): self.init(isText: false, payload: bytes, position: position)
        }
    }

    init(isText: Bool, payload: [UInt8], position: HistoryPosition?) {
        self.isText = isText
        self.payload = payload
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
        out.reserveCapacity(entries.reduce(0) { $0 + $1.payload.count + 16 })
        for entry in entries {
            out.append(entry.isText ? 1 : 2)
            if let position = entry.position {
                out.append(UInt8(position.epoch.utf8.count))
                out += position.epoch.utf8
                withUnsafeBytes(of: position.offset.littleEndian) { out += $0 }
            } else {
                out.append(0)
            }
            withUnsafeBytes(of: UInt32(entry.payload.count).littleEndian) { out += $0 }
            out += entry.payload
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
            // Text was checked by the sender (a worker of this build): the bytes go on as they are.
            entries.append(ChannelEntry(isText: kind == 1, payload: Array(bytes[index..<index + length]), position: position))
            index += length
        }
        return entries.count == expected ? entries : nil
    }
}

extension ChannelEntry {
    /// Entries as server frames, back to back in one buffer: once per worker for its plain subscribers.
    static func frames(_ entries: [ChannelEntry]) -> ByteBuffer {
        var frames = ByteBufferAllocator().buffer(capacity: entries.reduce(0) { $0 + $1.payload.count + 10 })
        for entry in entries {
            WebSocketFrameCodec.writeHeader(opcode: entry.isText ? .text : .binary, length: entry.payload.count, to: &frames)
            frames.writeBytes(entry.payload)
        }
        return frames
    }
}

extension HiveMessage {
    /// The message an entry carries (its text was checked when the entry was made).
    init(_ entry: ChannelEntry) {
        self = entry.isText ? .text(String(decoding: entry.payload, as: UTF8.self)) : .binary(entry.payload)
    }
}
