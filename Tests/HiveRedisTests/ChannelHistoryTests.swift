import Foundation
import Logging
import XCTest

@testable import HiveRedis

#if canImport(Glibc)
import Glibc
#endif

final class ChannelHistoryTests: XCTestCase {
    private let logger = Logger(label: "test.redis.history", factory: { _ in SwiftLogNoOpLogHandler() })

    override class func setUp() {
        super.setUp()
        signal(SIGPIPE, SIG_IGN)
    }

    // MARK: Pure

    func testPosition_parsesEpochColonOffset_andRefusesEverythingElse() {
        XCTAssertEqual(HistoryPosition(parsing: "6b0f4a9b0c7e7:42"), HistoryPosition(epoch: "6b0f4a9b0c7e7", offset: 42))
        XCTAssertEqual(HistoryPosition(parsing: "e:0"), HistoryPosition(epoch: "e", offset: 0))
        for bad in ["", ":1", "e:", "e:-1", "e:01", "e:1x", "e-1:2", "e:1:2", String(repeating: "a", count: 33) + ":1",
                    "e:99999999999999999999", "é:1"] {
            XCTAssertNil(HistoryPosition(parsing: bad), bad)
        }
    }

    func testFrame_roundTrips_andAnythingElseIsAPlainMessage() {
        let position = HistoryPosition(epoch: "abc123", offset: 7)
        let framed = HistoryFrame.encode(position, payload: Array("hi\n:there".utf8))
        let parsed = HistoryFrame.parse(framed)
        XCTAssertEqual(parsed?.position, position)
        XCTAssertEqual(parsed.map { Array(framed[$0.payloadStart...]) }, Array("hi\n:there".utf8))
        XCTAssertEqual(HistoryFrame.parse(HistoryFrame.encode(position, payload: [])).map { framed.count - $0.payloadStart }, 9)
        let plain: [[UInt8]] = [
            [], Array("hello".utf8), HistoryFrame.magic, HistoryFrame.magic + Array("abc:1".utf8),
            HistoryFrame.magic + Array(":1\nx".utf8), HistoryFrame.magic + Array("ab c:1\nx".utf8),
            HistoryFrame.magic + Array("abc:\nx".utf8), HistoryFrame.magic + Array("abc:1a\nx".utf8),
            [0x00, 0x68, 0x69, 0x76, 0x65, 0x02] + Array("abc:1\nx".utf8),
        ]
        for bytes in plain { XCTAssertNil(HistoryFrame.parse(bytes), "\(bytes)") }
    }

    func testRules_firstMatchingGlobWins_overTheGlobalPolicy_andSizeZeroTurnsHistoryOff() {
        let rules = ChannelHistory.Rules(global: .init(size: 100, ttl: 0), rules: [
            .init(parsing: "news*=10,60")!, .init(parsing: "private.*=0")!, .init(parsing: "n*=20")!,
        ])
        XCTAssertEqual(rules.policy(for: "news"), .init(size: 10, ttl: 60))
        XCTAssertEqual(rules.policy(for: "news.eu"), .init(size: 10, ttl: 60))
        XCTAssertEqual(rules.policy(for: "nba"), .init(size: 20, ttl: 0))
        XCTAssertNil(rules.policy(for: "private.chat"))
        XCTAssertEqual(rules.policy(for: "sport"), .init(size: 100, ttl: 0))
        XCTAssertNil(ChannelHistory.Rules(global: nil, rules: [.init(parsing: "news*=5")!]).policy(for: "sport"))
        XCTAssertFalse(ChannelHistory.Rules(global: nil, rules: [.init(parsing: "a=0")!]).isOn)
        for bad in ["news", "=5", "news*=", "news*=-1", "news*=5,x", "news*=5,6,7"] {
            XCTAssertNil(ChannelHistory.Rules.Rule(parsing: bad), bad)
        }
    }

    // MARK: Against Redis

    func testPublisher_withHistory_givesIncreasingPositions_framesTheMessage_storesIt_andSurvivesAScriptFlush() async throws {
        let redis = try TestRedisServer()
        try redis.start()
        let subscriber = try redis.subscribe("news")
        let publisher = RedisPublisher(configuration: .init(url: redis.url, timeout: 3), logger: logger)
        defer { publisher.shutdown() }
        let target = HistoryTarget(keys: ChannelHistory.Keys(redisChannel: "news"), policy: .init(size: 3, ttl: 60))

        var receipts: [PublishReceipt] = []
        for index in 1...4 { receipts.append(try await publisher.publish(channel: "news", payload: Array("m\(index)".utf8), history: target)) }
        // Redis forgets its scripts: the next EVALSHA gets NOSCRIPT and is sent again as EVAL.
        _ = try RedisConnection(url: redis.url).command([Array("SCRIPT".utf8), Array("FLUSH".utf8)])
        receipts.append(try await publisher.publish(channel: "news", payload: Array("m5".utf8), history: target))
        let plain = try await publisher.publish(channel: "news", payload: Array("plain".utf8), history: nil)

        XCTAssertEqual(receipts.map(\.receivers), [1, 1, 1, 1, 1])
        XCTAssertEqual(plain.position, nil)
        let epoch = try XCTUnwrap(receipts.first?.position?.epoch)
        XCTAssertEqual(receipts.map(\.position), (1...5).map { HistoryPosition(epoch: epoch, offset: UInt64($0)) })
        let messages = try subscriber.messages(6)
        XCTAssertEqual(messages.prefix(5).map { HistoryFrame.parse($0)?.position }, receipts.map(\.position))
        XCTAssertEqual(messages.last, Array("plain".utf8))

        let page = try await read(redis.url, after: 0)
        XCTAssertEqual(page.epoch, epoch)
        XCTAssertEqual(page.last, 5)
        XCTAssertEqual(page.entries, (3...5).map { HistoryReader.Entry(offset: UInt64($0), payload: Array("m\($0)".utf8)) },
                       "the stream keeps --history-size messages")
        let ttl = try RedisConnection(url: redis.url).command(["TTL", target.keys.stream].map { Array($0.utf8) })
        guard case .integer(let seconds) = ttl else { return XCTFail("TTL: \(ttl)") }
        XCTAssertTrue((55...60).contains(seconds), "\(seconds)")
        let later = try await read(redis.url, after: 4)
        XCTAssertEqual(later.entries.map(\.offset), [5])
    }

    func testLostHistory_startsANewEpoch_andAChannelWithoutHistoryReadsAsNone() async throws {
        let redis = try TestRedisServer()
        try redis.start()
        let publisher = RedisPublisher(configuration: .init(url: redis.url, timeout: 3), logger: logger)
        defer { publisher.shutdown() }
        let target = HistoryTarget(keys: ChannelHistory.Keys(redisChannel: "news"), policy: .init(size: 10, ttl: 0))
        let first = try await publisher.publish(channel: "news", payload: [1], history: target)
        _ = try RedisConnection(url: redis.url).command([Array("FLUSHALL".utf8)])
        let none = try await read(redis.url, after: 0)
        XCTAssertEqual(none, HistoryReader.Page(epoch: nil, last: 0, entries: []))
        let second = try await publisher.publish(channel: "news", payload: [2], history: target)
        XCTAssertEqual(second.position?.offset, 1)
        XCTAssertNotEqual(second.position?.epoch, first.position?.epoch)
    }

    func testSummaries_ofManyChannels_arePipelinedInChunks_andEachAnswersItsOwnChannel() async throws {
        let redis = try TestRedisServer()
        try redis.start()
        let publisher = RedisPublisher(configuration: .init(url: redis.url, timeout: 3), logger: logger)
        defer { publisher.shutdown() }
        // 300 channels with 1, 2 or 3 messages (600 commands: past one 256-command chunk) and one channel without.
        let channels = (0..<300).map { "ch\($0)" }
        var epochs: [String: String] = [:]
        for (index, channel) in channels.enumerated() {
            let target = HistoryTarget(keys: ChannelHistory.Keys(redisChannel: channel), policy: .init(size: 10, ttl: 0))
            for _ in 0...(index % 3) {
                let receipt = try await publisher.publish(channel: channel, payload: [1], history: target)
                epochs[channel] = receipt.position?.epoch
            }
        }
        let summaries = try HistoryReader.summaries(url: redis.url, redisChannels: channels + ["none"])
        XCTAssertEqual(summaries.count, 301)
        for (index, channel) in channels.enumerated() {
            let expected = HistoryReader.Summary(epoch: epochs[channel], last: UInt64(index % 3 + 1), length: index % 3 + 1)
            XCTAssertEqual(summaries[index], expected, channel)
        }
        XCTAssertEqual(summaries.last, HistoryReader.Summary(epoch: nil, last: 0, length: 0))
    }

    private func read(_ url: RedisURL, after: UInt64) async throws -> HistoryReader.Page {
        let reader = HistoryReader(url: url, timeout: 3, logger: logger)
        defer { reader.shutdown() }
        return try await withCheckedThrowingContinuation { continuation in
            reader.read(ChannelHistory.Keys(redisChannel: "news"), after: after, limit: 100) { continuation.resume(with: $0) }
        }
    }
}
