// libFuzzer target: what channel history reads from others. `HistoryFrame.parse` on a payload from the Redis
// subscription (anyone who can PUBLISH writes it), `ChannelEntryCodec.decode` on a record from another worker,
// and `EnvelopeQuery.parse` / `HistoryPosition(parsing:)` on a client's `?since=`.
//
// Input: [selector][bytes]. Beyond "never crash, never trap": a frame that parses gives a valid position and a
// payload start inside the input, and encoding that position with that payload gives the same bytes back; decoded
// entries encode to the same bytes; a position that parses prints as the text it came from; a query that parses
// with a `since` has envelopes on and exactly one channel.
import HiveFuzzSupport

@testable import HiveRedis
@testable import HiveWorker

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHistory(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    let selector = data[0]
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch selector % 3 {
    case 0:
        if let (position, start) = HistoryFrame.parse(bytes) {
            fuzzCheck(start <= bytes.count, "payload start \(start) past \(bytes.count) bytes")
            fuzzCheck(HistoryPosition.isEpoch(Array(position.epoch.utf8)), "epoch \(position.epoch) not letters and digits")
            fuzzCheck(HistoryFrame.encode(position, payload: Array(bytes[start...])) == bytes, "the frame does not encode back")
        }
    case 1:
        let expected = Int(selector / 3)
        if let entries = ChannelEntryCodec.decode(bytes, expected: expected) {
            fuzzCheck(entries.count == expected, "\(entries.count) entries, expected \(expected)")
            fuzzCheck(ChannelEntryCodec.encode(entries) == bytes, "the entries do not encode back")
            for entry in entries { _ = ChannelEnvelope.json(channel: "c", entry: entry) }
        }
    default:
        let text = String(decoding: bytes, as: UTF8.self)
        if let position = HistoryPosition(parsing: text) {
            fuzzCheck(position.description == text, "\(text) parsed as \(position)")
        }
        let channels = selector & 0x80 == 0 ? ["news"] : ["news", "sport"]
        if case .success(let query) = EnvelopeQuery.parse(target: "/?" + text, channels: channels), query.since != nil {
            fuzzCheck(query.envelope && channels.count == 1, "since without envelopes or with \(channels.count) channels")
        }
    }
    return 0
}

runFuzzer(fuzzHistory)
