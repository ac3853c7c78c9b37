/// What the history script publishes: `\0hive\1EPOCH:OFFSET\n` then the payload as given. The NUL and the version
/// byte 1 make a prefix that text never starts with; a plain `PUBLISH` of anything else is delivered as it is,
/// without a position. Parsed defensively (the bytes come from whoever can publish to Redis): anything that is not
/// exactly this shape is a plain message, never an error.
package enum HistoryFrame {
    /// The magic with the version: `\0 h i v e \1`.
    package static let magic: [UInt8] = [0x00, 0x68, 0x69, 0x76, 0x65, 0x01]

    /// A framed message's position and where its payload starts; nil for a plain message.
    package static func parse(_ bytes: [UInt8]) -> (position: HistoryPosition, payloadStart: Int)? {
        let count = bytes.count
        guard count > magic.count, bytes.starts(with: magic) else { return nil }
        var index = magic.count
        let epochStart = index
        while index < count, bytes[index] != UInt8(ascii: ":"), index - epochStart <= HistoryPosition.maxEpochLength { index += 1 }
        guard index < count, bytes[index] == UInt8(ascii: ":"), HistoryPosition.isEpoch(bytes[epochStart..<index]) else { return nil }
        let epochEnd = index
        index += 1
        let offsetStart = index
        while index < count, bytes[index] != 0x0A, index - offsetStart <= 19 { index += 1 }
        guard index < count, bytes[index] == 0x0A, let offset = HistoryPosition.offset(bytes[offsetStart..<index]) else { return nil }
        let epoch = String(decoding: bytes[epochStart..<epochEnd], as: UTF8.self)
        return (HistoryPosition(epoch: epoch, offset: offset), index + 1)
    }

    /// The frame the script publishes, for tests and for writers that do not use the script.
    package static func encode(_ position: HistoryPosition, payload: [UInt8]) -> [UInt8] {
        magic + Array("\(position.epoch):\(position.offset)\n".utf8) + payload
    }
}
