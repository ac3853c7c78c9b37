import NIOCore
import NIOEmbedded
import NIOWebSocket
import XCTest

@testable import HiveWorker

// MARK: - State machine (no I/O)

final class WebSocketFrameHandlerStateMachineTests: XCTestCase {
    func testReceive_afterPeerClose_ignoresEverything() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        XCTAssertEqual(
            machine.receive(closeFrame(code: 1000)),
            .answerClose(peerCode: .normalClosure, replyCode: .normalClosure)
        )
        XCTAssertEqual(machine.state, .closed)
        XCTAssertEqual(machine.receive(clientFrame(.text, "late")), .none)
        XCTAssertEqual(machine.receive(clientFrame(.ping, "late")), .none)
        XCTAssertEqual(machine.receive(clientFrame(.text, Array("bad".utf8), masked: false)), .none)
        XCTAssertEqual(machine.receive(closeFrame(code: 1000)), .none)
    }

    func testReceive_closeInMiddleOfFragmentedMessage_thenRest_answersCloseAndDropsRest() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        XCTAssertEqual(machine.receive(clientFrame(.text, "frag", fin: false)), .none)
        XCTAssertEqual(
            machine.receive(closeFrame(code: 1000)),
            .answerClose(peerCode: .normalClosure, replyCode: .normalClosure)
        )
        XCTAssertEqual(machine.receive(clientFrame(.continuation, "ment", fin: true)), .none)
    }

    func testReceive_whileCloseSent_onlyPeerCloseMatters() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        XCTAssertTrue(machine.startClose())
        XCTAssertFalse(machine.startClose())
        XCTAssertEqual(machine.receive(clientFrame(.text, "late")), .none)
        XCTAssertEqual(machine.receive(clientFrame(.ping, "late")), .none)
        XCTAssertEqual(machine.receive(clientFrame(.continuation, "orphan")), .none)
        XCTAssertEqual(machine.receive(clientFrame(.connectionClose)), .closeConnection)
        XCTAssertEqual(machine.state, .closed)
    }

    func testReceiveDecoderError_whileCloseSent_closesWithoutSecondCloseFrame() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        XCTAssertTrue(machine.startClose())
        XCTAssertEqual(machine.receiveDecoderError(.invalidFrameLength), .closeConnection)
        XCTAssertEqual(machine.receiveDecoderError(.invalidFrameLength), .none)
    }

    func testReceive_afterFailure_ignoresEverything() {
        var machine = WebSocketFrameHandler.StateMachine(maxMessageSize: 100)
        XCTAssertEqual(
            machine.receive(clientFrame(.continuation, "orphan")),
            .fail(.protocolError, reason: "continuation frame without a message")
        )
        XCTAssertEqual(machine.receive(clientFrame(.text, "ok")), .none)
        XCTAssertFalse(machine.startClose())
    }
}
