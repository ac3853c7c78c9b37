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

    /// `%XX` decoded (and `+` as a space, as forms write it), or nil for bytes that are not UTF-8. A bad escape
    /// stays as it is (the lenient rule of every query, `PercentDecoding`), and its `%` then fails the name check.
    static func percentDecoded(_ text: Substring) -> String? {
        String(validating: PercentDecoding.bytes(text, plusIsSpace: true), as: UTF8.self)
    }
}
