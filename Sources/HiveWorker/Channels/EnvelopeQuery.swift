import HiveIPC
import HiveRedis

/// The `envelope` and `since` parameters of a WebSocket upgrade's query (`/ws?channels=news&envelope=json&since=
/// EPOCH:OFFSET`): envelopes with positions, and where to resume from. Checked at the handshake: a bad value is
/// answered 400 with the reason, never silently ignored (a client that thinks it resumes must not get live only).
struct EnvelopeQuery: Equatable {
    var envelope = false
    var since: HistoryPosition?

    static func parse(target: String, channels: [String]) -> Result<EnvelopeQuery, ChannelName.ListError> {
        var query = EnvelopeQuery()
        guard let mark = target.firstIndex(of: "?") else { return .success(query) }
        var sinceText: String?
        for pair in target[target.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = ChannelQuery.percentDecoded(parts.count > 1 ? parts[1] : "") ?? "\u{FFFD}"
            switch parts[0] {
            case "envelope":
                guard value == "json" else {
                    return .failure(.init(message: "?envelope=\(value.prefix(32)): the only envelope is json (?envelope=json)"))
                }
                query.envelope = true
            case "since":
                sinceText = value
            default:
                continue
            }
        }
        guard let sinceText else { return .success(query) }
        guard let since = HistoryPosition(parsing: sinceText) else {
            return .failure(.init(message: "?since=\(sinceText.prefix(64)): not a position; give the \"offset\" of the last "
                + "envelope received, EPOCH:OFFSET (letters and digits, a colon, a number)"))
        }
        guard query.envelope else {
            return .failure(.init(message: "?since= needs ?envelope=json: positions come in envelopes"))
        }
        guard channels.count == 1 else {
            return .failure(.init(message: "?since= needs exactly one channel in ?channels= (a position belongs to one channel), "
                + "got \(channels.count)"))
        }
        query.since = since
        return .success(query)
    }
}
