import Foundation
import HiveIPC
import Logging
import XCTest

@testable import HiveWorker

final class PeerOutboxTests: XCTestCase {
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IPCMessage.maxRecordSize, alignment: 8)

    deinit { buffer.deallocate() }

    /// A broadcast larger than the whole queue bound (a Redis message under --max-redis-message, say) is still
    /// taken when nothing is queued, and reaches every target once, whole: before, anything over the bound was
    /// refused and no other worker ever saw it.
    func testRecordLargerThanTheBound_isTakenWhenTheQueueIsEmpty_andReachesEveryTarget() throws {
        let (inbox1, sender1) = try RecordChannel.pair(while: "testing")
        let (inbox2, sender2) = try RecordChannel.pair(while: "testing")
        defer { [inbox1, sender1, inbox2, sender2].forEach { $0.close() } }
        let drops = ManagedCounter()
        // Index 0 is this worker (never a target); 1 and 2 are its peers.
        let outbox = PeerOutbox(peers: [sender1, sender1, sender2], maxQueuedBytes: 1000, logger: Logger(label: "test")) { _, _ in
            drops.increment()
        }
        defer { outbox.stop() }
        let frames = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let record = IPCMessage.broadcast(frames: frames, messages: 1)
        guard outbox.send(record, to: [1, 2]) else { return XCTFail("a record larger than the bound was refused") }
        for inbox in [inbox1, inbox2] {
            let received = try XCTUnwrap(try inbox.receive(blocking: true, buffer: buffer))
            XCTAssertEqual(received.0, record)
        }
        XCTAssertEqual(drops.value, 0)
        XCTAssertNil(try inbox1.receive(blocking: false, buffer: buffer), "a target got the record twice")
    }

    /// With nothing queued, a record is in the peer's inbox when `send` returns: the loop does not wait for the
    /// sender thread to wake up (one thread hop less per message to the other workers).
    func testRecordWithNothingQueued_isInThePeersInbox_whenSendReturns() throws {
        let (inbox, sender) = try RecordChannel.pair(while: "testing")
        defer { [inbox, sender].forEach { $0.close() } }
        let outbox = PeerOutbox(peers: [sender, sender], logger: Logger(label: "test")) { _, _ in }
        defer { outbox.stop() }
        for sequence in 0..<100 {
            let record = IPCMessage.broadcast(frames: [UInt8(sequence)], messages: 1)
            XCTAssertTrue(outbox.send(record, to: [1]))
            let received = try inbox.receive(blocking: false, buffer: buffer)
            XCTAssertEqual(received?.0, record, "record \(sequence) was not sent before send returned")
        }
    }

    /// A peer whose inbox is full gets the record later through the sender thread, and every record after it too,
    /// in order; so does a peer with room (once a record is queued, the ones after it queue behind it).
    func testPeerWithAFullInbox_getsEveryRecordInOrder_afterItReadsAgain() throws {
        let (fullInbox, fullSender) = try RecordChannel.pair(while: "testing")
        let (freeInbox, freeSender) = try RecordChannel.pair(while: "testing")
        defer { [fullInbox, fullSender, freeInbox, freeSender].forEach { $0.close() } }
        let drops = ManagedCounter()
        let outbox = PeerOutbox(peers: [freeSender, freeSender, fullSender], logger: Logger(label: "test")) { _, _ in
            drops.increment()
        }
        defer { outbox.stop() }
        // Fill the peer's inbox directly until the kernel refuses more.
        let filler = IPCMessage.broadcast(frames: [UInt8](repeating: 7, count: 4096), messages: 1)
        var filled = 0
        while try fullSender.send(filler, blocking: false) == .sent { filled += 1 }
        XCTAssertGreaterThan(filled, 0)
        let records = (0..<50).map { IPCMessage.broadcast(frames: [UInt8($0)], messages: 1) }
        for record in records { XCTAssertTrue(outbox.send(record, to: [1, 2])) }
        // The sender thread waits on the full inbox (before its send times out and drops): read that one first.
        for _ in 0..<filled { XCTAssertEqual(try fullInbox.receive(blocking: true, buffer: buffer)?.0, filler) }
        for record in records {
            XCTAssertEqual(try fullInbox.receive(blocking: true, buffer: buffer)?.0, record)
        }
        for record in records {
            XCTAssertEqual(try freeInbox.receive(blocking: true, buffer: buffer)?.0, record)
        }
        XCTAssertEqual(drops.value, 0)
    }
}

/// A counter the outbox's thread may bump.
private final class ManagedCounter: @unchecked Sendable {
    // @unchecked: `count` is guarded by `lock`.
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
