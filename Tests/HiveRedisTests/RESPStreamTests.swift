import XCTest

@testable import HiveRedis

final class RESPStreamTests: XCTestCase {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// What a subscriber receives: confirmations, messages, pattern messages, an error and a status.
    private var traffic: [UInt8] {
        bytes("*3\r\n$9\r\nsubscribe\r\n$4\r\ntest\r\n:1\r\n")
            + bytes("*3\r\n$7\r\nmessage\r\n$4\r\ntest\r\n$5\r\nhello\r\n")
            + bytes("*4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$10\r\nnews.sport\r\n$0\r\n\r\n")
            + bytes("-ERR unknown command\r\n+OK\r\n$-1\r\n*0\r\n")
    }

    private let expected: [RESPStream.Value] = [
        .array([.string(Array("subscribe".utf8)), .string(Array("test".utf8)), .integer(1)]),
        .array([.string(Array("message".utf8)), .string(Array("test".utf8)), .string(Array("hello".utf8))]),
        .array([.string(Array("pmessage".utf8)), .string(Array("news.*".utf8)), .string(Array("news.sport".utf8)), .string([])]),
        .error("ERR unknown command"), .status("OK"), .null, .array([]),
    ]

    private func parse(_ chunks: [[UInt8]], maxBulk: Int = 1 << 20) throws -> [RESPStream.Value] {
        var stream = RESPStream(maxBulk: maxBulk)
        var replies: [RESPStream.Value] = []
        for chunk in chunks { try chunk.withUnsafeBytes { try stream.feed($0, into: &replies) } }
        return replies
    }

    func testWholeInput_givesEveryReply() throws {
        XCTAssertEqual(try parse([traffic]), expected)
    }

    /// Reads end anywhere: cut at every position, and fed one byte at a time, the replies are the same.
    func testInputCutAnywhere_givesTheSameReplies() throws {
        let all = traffic
        for cut in 0...all.count {
            XCTAssertEqual(try parse([Array(all[..<cut]), Array(all[cut...])]), expected, "cut at \(cut)")
        }
        XCTAssertEqual(try parse(all.map { [$0] }), expected)
    }

    /// A payload over the limit comes out as `.skipped(length)`, however it is cut, and what follows is intact.
    func testBulkOverTheLimit_isSkipped_andTheNextMessageIsWhole() throws {
        let big = [UInt8](repeating: 0x61, count: 5000)
        let input = bytes("*3\r\n$7\r\nmessage\r\n$4\r\ntest\r\n$5000\r\n") + big + bytes("\r\n")
            + bytes("*3\r\n$7\r\nmessage\r\n$4\r\ntest\r\n$4\r\nnext\r\n")
        let wanted: [RESPStream.Value] = [
            .array([.string(bytes("message")), .string(bytes("test")), .skipped(5000)]),
            .array([.string(bytes("message")), .string(bytes("test")), .string(bytes("next"))]),
        ]
        XCTAssertEqual(try parse([input], maxBulk: 4999), wanted)
        let chunks = stride(from: 0, to: input.count, by: 700).map { Array(input[$0..<min($0 + 700, input.count)]) }
        XCTAssertEqual(try parse(chunks, maxBulk: 4999), wanted)
        // At exactly the limit it is delivered.
        XCTAssertEqual(try parse([input], maxBulk: 5000)[0], .array([.string(bytes("message")), .string(bytes("test")), .string(big)]))
    }

    func testGarbage_isAProtocolError() {
        XCTAssertThrowsError(try parse([bytes("HTTP/1.1 400 Bad Request\r\n")]))
        XCTAssertThrowsError(try parse([bytes("$3\r\nabcXY")]))
        XCTAssertThrowsError(try parse([bytes(":12a\r\n")]))
        XCTAssertThrowsError(try parse([[UInt8](repeating: 0x2B, count: RESPStream.maxLine + 1)]))
    }

    func testEncode_isAnArrayOfBulkStrings() {
        XCTAssertEqual(RESPStream.encode([bytes("SUBSCRIBE"), bytes("a b"), []]), bytes("*3\r\n$9\r\nSUBSCRIBE\r\n$3\r\na b\r\n$0\r\n\r\n"))
    }

    func testEvents_messagesPatternMessagesAndOversized() {
        let message = RESPStream.Value.array([.string(bytes("message")), .string(bytes("c")), .string(bytes("p"))])
        XCTAssertEqual(RedisSubscriber.event(from: message), .message(.init(channel: "c", pattern: nil, payload: bytes("p"))))
        let pattern = RESPStream.Value.array([.string(bytes("pmessage")), .string(bytes("c.*")), .string(bytes("c.1")), .string([])])
        XCTAssertEqual(RedisSubscriber.event(from: pattern), .message(.init(channel: "c.1", pattern: "c.*", payload: [])))
        let oversized = RESPStream.Value.array([.string(bytes("message")), .string(bytes("c")), .skipped(9)])
        XCTAssertEqual(RedisSubscriber.event(from: oversized), .oversized(channel: "c", size: 9))
        let confirmation = RESPStream.Value.array([.string(bytes("subscribe")), .string(bytes("c")), .integer(1)])
        XCTAssertNil(RedisSubscriber.event(from: confirmation))
    }
}
