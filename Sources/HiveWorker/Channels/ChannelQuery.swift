import HiveIPC

/// The `channels` parameter of a WebSocket upgrade's query (`/ws?channels=news,sport`): the channels the
/// connection joins as it opens. Percent-encoding is decoded (a browser's `URLSearchParams` writes the comma as
/// `%2C`); the parameter may be repeated, its lists are joined.
enum ChannelQuery {
    /// The channels asked for (none without the parameter), or why the list is refused (answered 400).
    static func channels(inTarget target: String) -> Result<[String], ChannelName.ListError> {
        guard let mark = target.firstIndex(of: "?") else { return .success([]) }
        var lists: [String] = []
        for pair in target[target.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == "channels" else { continue }
            guard let value = percentDecoded(parts.count > 1 ? parts[1] : "") else {
                return .failure(ChannelName.ListError(
                    message: "?channels=: the value is not valid percent-encoded UTF-8; list names like ?channels=news,sport"))
            }
            lists.append(value)
        }
        guard !lists.isEmpty else { return .success([]) }
        return ChannelName.parseList(lists.joined(separator: ","))
    }

    /// `%XX` decoded (and `+` as a space, as forms write it), or nil for a bad escape or bytes that are not UTF-8.
    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
