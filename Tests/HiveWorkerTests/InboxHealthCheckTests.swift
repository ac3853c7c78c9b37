import Foundation
import HiveIPC
import Logging
import NIOCore
import NIOPosix
import XCTest

@testable import HiveWorker

/// The worker's side of the health check: the inbox thread reads it, the event loop answers it. A loop that is
/// blocked must not answer, even though the inbox thread still runs (SIGSTOP in the integration tests stops both).
final class InboxHealthCheckTests: XCTestCase {
    private struct PlainApplication: HiveApplication {}

    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IPCMessage.maxRecordSize, alignment: 8)

    deinit { buffer.deallocate() }

    /// The next record on `channel` within `seconds`, or nil.
    private func receive(_ channel: RecordChannel, within seconds: TimeInterval) throws -> IPCMessage? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let (message, _) = try channel.receive(blocking: false, buffer: buffer) { return message }
            usleep(5_000)
        }
        return nil
    }

    func testHealthCheck_isAnsweredFromTheEventLoop_andNotWhileTheLoopIsBlocked() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let registry = try SharedRegistry.create(capacity: 4, workerCount: 1)
        let logger = Logger(label: "test")
        let hive = HiveServer(
            workerID: 0, eventLoop: group.next(), registry: registry, limits: ConnectionLimits(),
            application: PlainApplication(), logger: logger
        )
        let (inboxReceive, inboxSend) = try RecordChannel.pair(while: "testing")
        let (masterReceive, masterSend) = try RecordChannel.pair(while: "testing")
        defer { [inboxReceive, inboxSend, masterReceive, masterSend].forEach { $0.close() } }
        let reader = InboxReader(
            inbox: inboxReceive, master: masterSend, hive: hive, group: group,
            lifecycle: WorkerLifecycle(hive: hive, grace: .seconds(1), redis: nil), logger: logger
        )
        let finished = DispatchSemaphore(value: 0)
        Thread {
            reader.run()
            finished.signal()
        }.start()

        // A running loop answers, with this process's pid and the check's sequence.
        XCTAssertEqual(try inboxSend.send(.healthCheck(sequence: 41), blocking: false), .sent)
        XCTAssertEqual(try receive(masterReceive, within: 5), .healthy(worker: 0, pid: getpid(), sequence: 41))

        // A blocked loop does not, although the inbox thread reads the check; released, it answers.
        let release = DispatchSemaphore(value: 0)
        hive.eventLoop.execute { release.wait() }
        XCTAssertEqual(try inboxSend.send(.healthCheck(sequence: 42), blocking: false), .sent)
        XCTAssertNil(try receive(masterReceive, within: 0.5), "answered while the event loop was blocked")
        release.signal()
        XCTAssertEqual(try receive(masterReceive, within: 5), .healthy(worker: 0, pid: getpid(), sequence: 42))

        // Ends the reader thread the way a reload does (closing the inbox would exit the process).
        XCTAssertEqual(try inboxSend.send(.retire, blocking: false), .sent)
        XCTAssertEqual(finished.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(try receive(masterReceive, within: 5), .retired(worker: 0, pid: getpid()))
    }
}
