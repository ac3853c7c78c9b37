import NIOCore
import NIOWebSocket
import XCTest

@testable import HiveWorker

/// A reload's hand-over continues a connection mid-stream in another process: the parser from the bytes of an
/// incomplete frame, the state machine from a fragmented message's bytes so far.
final class HandOverRestoreTests: XCTestCase {
    func testParser_continuesAFrameFromAnotherParsersLeftover() throws {
        let payload = Array((0..<5_000).map { UInt8(truncatingIfNeeded: $0) })
        var bytes = serialize(clientFrame(.binary, payload))
        var old = WebSocketFrameParser(maxFrameSize: 1 << 20)
        old.append(bytes.readSlice(length: 3_000)!)
        XCTAssertNil(try old.next())
        let leftover = try XCTUnwrap(old.leftover)
        XCTAssertEqual(leftover.readableBytes, 3_000)

        var new = WebSocketFrameParser(maxFrameSize: 1 << 20, leftover: ByteBuffer(bytes: Array(buffer: leftover)))
        new.append(bytes)
        let frame = try XCTUnwrap(try new.next())
        var data = frame.data
        if let key = frame.maskKey { WebSocketFrameCodec.unmask(&data, key: key) }
        XCTAssertEqual(Array(buffer: data), payload)
        XCTAssertNil(try new.next())
    }

    func testStateMachine_finishesAFragmentedTextMessageBegunElsewhere_evenCutInsideACharacter() {
        var old = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        let e = Array("é".utf8)
        XCTAssertEqual(old.receive(clientFrame(.text, Array("ab".utf8) + [e[0]], fin: false)), .none)
        let partial = try! XCTUnwrap(old.partialMessage)
        XCTAssertEqual(partial.kind, .text)

        var new = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        XCTAssertTrue(new.restorePartial(kind: partial.kind, data: partial.data, compressed: false))
        guard case .deliver(let message) = new.receive(clientFrame(.continuation, [e[1]] + Array("z".utf8))) else {
            return XCTFail("the message was not completed")
        }
        XCTAssertEqual(String(buffer: message.data), "abéz")
    }

    func testStateMachine_refusesAStateItWouldNotHaveAccepted() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 10)
        XCTAssertFalse(machine.restorePartial(kind: .text, data: ByteBuffer(bytes: [0xFF]), compressed: false), "bad UTF-8")
        XCTAssertFalse(machine.restorePartial(kind: .binary, data: ByteBuffer(repeating: 1, count: 11), compressed: false), "too long")
        XCTAssertFalse(machine.restorePartial(kind: .binary, data: ByteBuffer(), compressed: true), "compressed without deflate")
        XCTAssertNil(machine.partialMessage)
    }
}
