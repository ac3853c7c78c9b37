import XCTest

@testable import HiveRedis

/// The splice of a Redis stream between a reload's old and new worker 0: each message is delivered by exactly one.
final class RedisSpliceTests: XCTestCase {
    private let channel = RedisSplice.channel(masterPID: 42, startedAt: 7)

    private func message(_ text: String, on channel: String = "test") -> RedisMessage {
        RedisMessage(channel: channel, pattern: nil, payload: Array(text.utf8))
    }

    func testOldAndNew_seeingTheSameStream_deliverEachMessageOnce() {
        var old = RedisSplice(channel: channel, token: "old", awaiting: false)
        var new = RedisSplice(channel: channel, token: "new", awaiting: true)
        // What Redis sends both once the new one is subscribed: 3, 4, its marker, 5, 6. The old one saw 1, 2 alone.
        let stream = ["3", "4"].map { message($0) } + [message("new", on: channel)] + ["5", "6"].map { message($0) }
        var delivered: [String] = []
        for text in ["1", "2"] where old.admit(message(text)) == .deliver { delivered.append(text) }
        var oldDone = false
        for item in stream {
            if !oldDone {
                switch old.admit(item) {
                case .deliver: delivered.append(String(decoding: item.payload, as: UTF8.self))
                case .handOff: oldDone = true
                case .drop: break
                }
            }
            if new.admit(item) == .deliver { delivered.append(String(decoding: item.payload, as: UTF8.self)) }
        }
        XCTAssertEqual(delivered.sorted(), ["1", "2", "3", "4", "5", "6"])
        XCTAssertEqual(old.mode, .handedOff)
        XCTAssertEqual(new.mode, .delivering)
    }

    func testAFirstStart_deliversAtOnce_andIgnoresItsOwnMarkerLater() {
        var splice = RedisSplice(channel: channel, token: "me", awaiting: false)
        XCTAssertEqual(splice.admit(message("a")), .deliver)
        XCTAssertEqual(splice.admit(message("me", on: channel)), .drop)
        XCTAssertEqual(splice.mode, .delivering)
        XCTAssertEqual(splice.admit(message("other", on: channel)), .handOff, "a successor's marker ends it")
        XCTAssertEqual(splice.admit(message("b")), .drop)
    }

    func testAWaitingSubscriber_dropsUntilItsOwnMarker_notAnotherOne() {
        var splice = RedisSplice(channel: channel, token: "me", awaiting: true)
        XCTAssertEqual(splice.admit(message("a")), .drop)
        XCTAssertEqual(splice.admit(message("someone else", on: channel)), .drop)
        XCTAssertEqual(splice.admit(message("b")), .drop)
        XCTAssertEqual(splice.admit(message("me", on: channel)), .drop)
        XCTAssertEqual(splice.admit(message("c")), .deliver)
    }

    func testAMarkerOutsideAReload_isIgnored() {
        var splice = RedisSplice(channel: channel, token: "me", awaiting: false)
        XCTAssertEqual(splice.admit(message("forged", on: channel), successorAllowed: false), .drop)
        XCTAssertEqual(splice.mode, .delivering)
        XCTAssertEqual(splice.admit(message("a"), successorAllowed: false), .deliver)
    }

    func testStopWaiting_deliversWithoutTheMarker() {
        var splice = RedisSplice(channel: channel, token: "me", awaiting: true)
        splice.stopWaiting()
        XCTAssertEqual(splice.admit(message("a")), .deliver)
    }

    func testTheSpliceChannelIsPerMaster() {
        XCTAssertNotEqual(RedisSplice.channel(masterPID: 1, startedAt: 2), RedisSplice.channel(masterPID: 1, startedAt: 3))
    }
}
