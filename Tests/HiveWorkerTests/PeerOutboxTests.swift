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
}

/// A counter the outbox's thread may bump.
private final class ManagedCounter: @unchecked Sendable {
    // @unchecked: `count` is guarded by `lock`.
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
