import Foundation
import HiveIPC
import XCTest

/// A session holds one pending frame in itself and more in an array: messages that reach a client faster than
/// the worker flushes (here, pushes made by the hooks of one read batch) leave together, in order, every byte
/// counted.
final class PendingFramesIntegrationTests: HiveTestCase {
    func testPushesOfOneReadBatch_leaveTogether_inOrder_andAreCountedExactly() throws {
        let (hive, port) = try startHive(workers: 1)
        let registry = try RegistryProbe.attach(masterPID: hive.pid!)
        let sender = try WebSocketTestClient(port: port)
        let receiver = try WebSocketTestClient(port: port)
        let receiverID = ConnectionID(rawValue: try connectionID(of: receiver))
        try RegistryProbe.wait(registry, "the reply to who counted") { $0.lookup(receiverID)?.framesOut == 1 }
        let before = try XCTUnwrap(registry.lookup(receiverID)).bytesOut

        // 30 push actions in one write: their hooks run in one read batch, before the deferred flush.
        let contents = (0..<30).map { "push-\($0)-" + String(repeating: "x", count: $0 * 7) }
        var burst: [UInt8] = []
        for content in contents {
            let text = action("push", ["to": String(receiverID.rawValue), "content": content])
            burst += WebSocketTestClient.encodeFrame(opcode: WebSocketOpcode.text, payload: Array(text.utf8), fin: true, masked: true, rsv: 0)
        }
        try sender.send(bytes: burst)
        for content in contents { XCTAssertEqual(try receiver.receiveMessage(), .text(content)) }

        let frameBytes = UInt64(contents.reduce(0) { $0 + ($1.utf8.count <= 125 ? 2 : 4) + $1.utf8.count })
        try RegistryProbe.wait(registry, "the pushes counted") { $0.lookup(receiverID)?.framesOut == 1 + UInt64(contents.count) }
        XCTAssertEqual(try XCTUnwrap(registry.lookup(receiverID)).bytesOut, before + frameBytes)
        // And a message after the burst still goes out alone.
        try sender.sendText(action("push", ["to": String(receiverID.rawValue), "content": "after"]))
        XCTAssertEqual(try receiver.receiveMessage(), .text("after"))
    }
}
