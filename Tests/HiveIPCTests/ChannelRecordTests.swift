import Glibc
import XCTest

@testable import HiveIPC

/// The IPC records of channels: a channel message (inline, and in a memfd when large, with the longest name)
/// and a subscription change; a record naming a bad channel is refused, not passed on.
final class ChannelRecordTests: XCTestCase {
    private var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IPCMessage.maxRecordSize, alignment: 8)

    override func tearDown() { buffer.deallocate() }

    func testChannelRecords_roundTrip_inlineAndInAMemfd() throws {
        let (a, b) = try RecordChannel.pair(while: "testing")
        defer { a.close(); b.close() }
        let id = ConnectionID(generation: 3, worker: 1, slot: 9)
        let longest = String(repeating: "n", count: ChannelName.maxLength)
        let messages: [IPCMessage] = [
            .channelMessage(channel: "news", entries: [0x81, 2, 0x68, 0x69], messages: 1),
            .channelMessage(channel: longest, entries: [UInt8](repeating: 7, count: IPCMessage.maxInlinePayload), messages: 3),
            .channelMessage(channel: longest, entries: [UInt8](repeating: 9, count: IPCMessage.maxInlinePayload + 1), messages: 2),
            .subscription(id, channel: "room:1/a", subscribe: true),
            .subscription(id, channel: longest, subscribe: false),
        ]
        for message in messages {
            XCTAssertEqual(try a.send(message, blocking: false), .sent)
            let received = try XCTUnwrap(try b.receive(blocking: true, buffer: buffer))
            XCTAssertEqual(received.0, message)
            XCTAssertEqual(received.descriptor, -1)
        }
    }

    func testARecordNamingABadChannel_isRefused() {
        var record: [UInt8] = [IPCMessage.Kind.channelMessage.rawValue, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3]
        record += Array("a b".utf8) + [0x81, 0]
        XCTAssertThrowsError(try record.withUnsafeBytes { try IPCCodec.decode($0, external: nil) }) {
            XCTAssertTrue("\($0)".contains("bad channel"), "\($0)")
        }
        var truncated: [UInt8] = [IPCMessage.Kind.channelMessage.rawValue, 0, 1, 0, 0, 0, 0, 0, 0, 0, 30]
        truncated += Array("news".utf8)
        XCTAssertThrowsError(try truncated.withUnsafeBytes { try IPCCodec.decode($0, external: nil) })
        let subscription: [UInt8] = [IPCMessage.Kind.subscription.rawValue, 2, 1, 0, 0, 0, 0, 0, 0, 0] + Array("news".utf8)
        XCTAssertThrowsError(try subscription.withUnsafeBytes { try IPCCodec.decode($0, external: nil) })
    }
}
