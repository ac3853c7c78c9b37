import Glibc
import XCTest

@testable import HiveIPC

/// The IPC records of users: a binding, a user message and a user push (inline, and in a memfd when large, with
/// the longest id); a record naming a bad user id is refused, not passed on.
final class UserRecordIPCTests: XCTestCase {
    private var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IPCMessage.maxRecordSize, alignment: 8)

    override func tearDown() { buffer.deallocate() }

    func testUserRecords_roundTrip_inlineAndInAMemfd() throws {
        let (a, b) = try RecordChannel.pair(while: "testing")
        defer { a.close(); b.close() }
        let id = ConnectionID(generation: 3, worker: 1, slot: 9)
        let longest = String(repeating: "ü", count: UserID.maxLength / 2)
        let messages: [IPCMessage] = [
            .binding(id, user: "alice"),
            .binding(id, user: longest),
            .binding(id, user: nil),
            .userMessage(user: "bob", frames: [0x81, 2, 0x68, 0x69], messages: 1),
            .userMessage(user: longest, frames: [UInt8](repeating: 9, count: IPCMessage.maxInlinePayload + 1), messages: 2),
            .userPush(user: "名前 with space", opcode: 1, payload: Array("hello".utf8)),
            .userPush(user: longest, opcode: 1, payload: [UInt8](repeating: 0x61, count: 64 * 1024)),
        ]
        for message in messages {
            XCTAssertEqual(try a.send(message, blocking: false), .sent)
            let received = try XCTUnwrap(try b.receive(blocking: true, buffer: buffer))
            XCTAssertEqual(received.0, message)
            XCTAssertEqual(received.descriptor, -1)
        }
    }

    func testARecordNamingABadUser_isRefused() {
        for record: [UInt8] in [
            [IPCMessage.Kind.binding.rawValue, 1, 1, 0, 0, 0, 0, 0, 0, 0],  // bind with no id
            [IPCMessage.Kind.binding.rawValue, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0x61, 0x0A],  // a line break
            [IPCMessage.Kind.userMessage.rawValue, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0xFF, 0xFE, 0x81, 0],  // not UTF-8
            [IPCMessage.Kind.userPush.rawValue, 0, 1, 0],  // an empty id
            [IPCMessage.Kind.userPush.rawValue, 0, 1, 65] + [UInt8](repeating: 0x61, count: 65),
        ] {
            XCTAssertThrowsError(try record.withUnsafeBytes { try IPCCodec.decode($0, external: nil) }, "\(record)")
        }
        let truncated: [UInt8] = [IPCMessage.Kind.userMessage.rawValue, 0, 1, 0, 0, 0, 0, 0, 0, 0, 30, 0x61]
        XCTAssertThrowsError(try truncated.withUnsafeBytes { try IPCCodec.decode($0, external: nil) }) {
            XCTAssertTrue("\($0)".contains("truncated"), "\($0)")
        }
        let flag: [UInt8] = [IPCMessage.Kind.binding.rawValue, 2, 1, 0, 0, 0, 0, 0, 0, 0]
        XCTAssertThrowsError(try flag.withUnsafeBytes { try IPCCodec.decode($0, external: nil) })
    }
}
