import Foundation
import HiveRedis
import NIOCore
import XCTest

@testable import HiveWorker

/// The pure parts of channel history in a worker: the cursor that keeps one enveloped subscriber gap- and
/// duplicate-free, the entries between workers, the envelopes, and the query.
final class ChannelHistoryDeliveryTests: XCTestCase {
    private func entry(_ offset: UInt64, epoch: String = "e1", _ text: String? = nil) -> ChannelEntry {
        ChannelEntry(message: .text(text ?? "m\(offset)"), position: HistoryPosition(epoch: epoch, offset: offset))
    }

    private func page(_ offsets: ClosedRange<UInt64>?, last: UInt64, epoch: String? = "e1") -> Result<HistoryReader.Page, RedisError> {
        .success(HistoryReader.Page(epoch: epoch, last: last, entries: (offsets.map(Array.init) ?? []).map {
            HistoryReader.Entry(offset: $0, payload: Array("m\($0)".utf8))
        }))
    }

    // MARK: Cursor

    func testLive_inOrder_isDelivered_duplicatesDropped_andAGapFetchesWhatIsMissing() {
        let cursor = ChannelCursor(since: nil, maxBuffered: 10)
        XCTAssertEqual(cursor.receive([entry(4), entry(5)]), [.live(0), .live(1)])
        XCTAssertEqual(cursor.receive([entry(5), entry(6)]), [.live(1)], "5 again is a duplicate")
        XCTAssertEqual(cursor.receive([entry(9), entry(10)]), [.fetch(after: 6)], "7 and 8 are missing")
        XCTAssertEqual(cursor.receive([entry(11)]), [], "waits while fetching")
        XCTAssertEqual(cursor.fetched(page(7...10, last: 10)),
                       [.entry(entry(7)), .entry(entry(8)), .entry(entry(9)), .entry(entry(10)), .entry(entry(11))],
                       "history, then the buffer without what history gave")
        XCTAssertEqual(cursor.position?.offset, 11)
        XCTAssertEqual(cursor.receive([entry(12)]), [.live(0)])
    }

    func testSince_fetchesFirst_buffersLive_andDeduplicatesTheSeam() {
        let cursor = ChannelCursor(since: HistoryPosition(epoch: "e1", offset: 5), maxBuffered: 10)
        XCTAssertEqual(cursor.start(), [.fetch(after: 5)])
        XCTAssertEqual(cursor.receive([entry(8), entry(9)]), [])
        XCTAssertEqual(cursor.fetched(page(6...8, last: 8)),
                       [.entry(entry(6)), .entry(entry(7)), .entry(entry(8)), .entry(entry(9))])
    }

    func testSince_whenTheSnapshotWasOlderThanTheBuffer_fetchesAgain() {
        let cursor = ChannelCursor(since: HistoryPosition(epoch: "e1", offset: 5), maxBuffered: 10)
        _ = cursor.start()
        XCTAssertEqual(cursor.receive([entry(9)]), [])
        XCTAssertEqual(cursor.fetched(page(6...6, last: 6)), [.entry(entry(6)), .fetch(after: 6)])
        XCTAssertEqual(cursor.fetched(page(7...9, last: 9)), [.entry(entry(7)), .entry(entry(8)), .entry(entry(9))])
    }

    func testSince_outOfTheWindow_orAnotherEpoch_orInTheFuture_isNotRecovered_thenTheBuffer() {
        for result in [page(8...10, last: 10), page(6...10, last: 10, epoch: "e2"), page(nil, last: 3), page(nil, last: 0, epoch: nil)] {
            let cursor = ChannelCursor(since: HistoryPosition(epoch: "e1", offset: 5), maxBuffered: 10)
            _ = cursor.start()
            _ = cursor.receive([entry(11)])
            XCTAssertEqual(cursor.fetched(result), [.notRecovered, .entry(entry(11))], "\(result)")
            XCTAssertEqual(cursor.receive([entry(12)]), [.live(0)])
        }
        let upToDate = ChannelCursor(since: HistoryPosition(epoch: "e1", offset: 5), maxBuffered: 10)
        _ = upToDate.start()
        XCTAssertEqual(upToDate.fetched(page(nil, last: 5)), [], "nothing missed")
    }

    func testCatchUp_readsOnceMore_afterTheRecovery_andDeliversOnlyWhatIsNew() {
        let cursor = ChannelCursor(since: HistoryPosition(epoch: "e1", offset: 5), maxBuffered: 10)
        _ = cursor.start()
        XCTAssertEqual(cursor.catchUp(), [], "a read is under way already")
        XCTAssertEqual(cursor.fetched(page(6...7, last: 7)), [.entry(entry(6)), .entry(entry(7))])
        XCTAssertEqual(cursor.catchUp(), [.fetch(after: 7)])
        XCTAssertEqual(cursor.receive([entry(9)]), [], "held during the read")
        XCTAssertEqual(cursor.fetched(page(8...9, last: 9)), [.entry(entry(8)), .entry(entry(9))],
                       "8 reached nobody live; 9 came both ways, once")
        XCTAssertEqual(ChannelCursor(since: nil, maxBuffered: 1).catchUp(), [], "no position, nothing to catch up")
    }

    func testABufferOverflow_closes_andAFailedRead_closes() {
        let cursor = ChannelCursor(since: HistoryPosition(epoch: "e1", offset: 0), maxBuffered: 2)
        _ = cursor.start()
        let steps = cursor.receive([entry(1), entry(2), entry(3)])
        guard case .close(let reason) = steps.last else { return XCTFail("\(steps)") }
        XCTAssertTrue(reason.contains("recovery buffer full (2 messages)"), reason)

        let failing = ChannelCursor(since: HistoryPosition(epoch: "e1", offset: 0), maxBuffered: 2)
        _ = failing.start()
        let failed = failing.fetched(.failure(RedisError(address: "redis://x", message: "cannot connect")))
        guard case .close(let why) = failed.first else { return XCTFail("\(failed)") }
        XCTAssertTrue(why.contains("history unavailable") && why.contains("reconnect with the same since"), why)
    }

    func testAnEpochChange_live_saysNotRecovered_andPlainMessagesPassInOrder() {
        let cursor = ChannelCursor(since: nil, maxBuffered: 10)
        let plain = ChannelEntry(message: .text("plain"), position: nil)
        XCTAssertEqual(cursor.receive([entry(1), plain, entry(1, epoch: "e2")]), [.live(0), .live(1), .notRecovered, .live(2)])
    }

    // MARK: Entries, envelopes, query

    func testEntries_roundTrip_andBadBytesAreRefused() {
        let entries = [entry(1, "héllo"), ChannelEntry(message: .binary([0, 255]), position: nil), entry(UInt64.max, epoch: "Z9")]
        let bytes = ChannelEntryCodec.encode(entries)
        XCTAssertEqual(ChannelEntryCodec.decode(bytes, expected: 3), entries)
        XCTAssertNil(ChannelEntryCodec.decode(bytes, expected: 2))
        XCTAssertNil(ChannelEntryCodec.decode(Array(bytes.dropLast()), expected: 3))
        XCTAssertNil(ChannelEntryCodec.decode([3, 0, 0, 0, 0, 0], expected: 1), "unknown kind")
        XCTAssertNil(ChannelEntryCodec.decode([1, 3, 0x61, 0x2D, 0x62, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], expected: 1), "a bad epoch")
        XCTAssertEqual(ChannelEntry(redisPayload: [0xFF, 0xFE], position: nil).isText, false, "not UTF-8: binary")
        XCTAssertEqual(ChannelEntry(subscribed: Array("plain".utf8)), ChannelEntry(message: .text("plain"), position: nil))
    }

    func testEnvelopes_escapeText_base64Binary_andLeaveOutAMissingOffset() throws {
        let text = String(decoding: ChannelEnvelope.json(channel: "news", entry: entry(3, epoch: "ab", "a\"b\\c\n\u{1}é")), as: UTF8.self)
        XCTAssertEqual(text, #"{"channel":"news","offset":"ab:3","data":"a\"b\\c\n\u0001é"}"#)
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]
        XCTAssertEqual(object?["data"], "a\"b\\c\n\u{1}é")
        let binary = String(decoding: ChannelEnvelope.json(channel: "news", entry: ChannelEntry(message: .binary([0xFF, 0, 1]), position: nil)), as: UTF8.self)
        XCTAssertEqual(binary, #"{"channel":"news","data":"/wAB","encoding":"base64"}"#)
        XCTAssertEqual(String(decoding: ChannelEnvelope.notRecovered(channel: "news"), as: UTF8.self), #"{"channel":"news","recovered":false}"#)
        let (buffer, ends) = ChannelEnvelope.frames(channel: "c", entries: [entry(1), entry(2)])
        XCTAssertEqual(ends.count, 2)
        XCTAssertEqual(ends.last, buffer.writerIndex)
    }

    func testQuery_envelopeAndSince() {
        XCTAssertEqual(try EnvelopeQuery.parse(target: "/?channels=news", channels: ["news"]).get(), EnvelopeQuery())
        XCTAssertEqual(try EnvelopeQuery.parse(target: "/?channels=news&envelope=json&since=ab%3A12", channels: ["news"]).get(),
                       EnvelopeQuery(envelope: true, since: HistoryPosition(epoch: "ab", offset: 12)))
        for (target, channels) in [("/?envelope=yaml", ["news"]), ("/?since=ab:1", ["news"]), ("/?envelope=json&since=ab:1", ["a", "b"]),
                                   ("/?envelope=json&since=ab", ["news"])] {
            XCTAssertThrowsError(try EnvelopeQuery.parse(target: target, channels: channels).get(), target)
        }
    }
}
