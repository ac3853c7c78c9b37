import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

@testable import HiveWorker

/// The hook runtime on a real event loop: hooks that never await run at once, inside `enqueue`; hooks that await
/// resume on the loop; one connection's hooks run one at a time, in order; reads are held past the threshold.
final class HookQueueTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private var loop: EventLoop { group.next() }

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        try? group.syncShutdownGracefully()
    }

    func testHookThatNeverAwaits_runsToTheEndInsideEnqueue() throws {
        let loop = self.loop
        let ranInline = try loop.submit { () -> Bool in
            let queue = HookQueue(executor: EventLoopTaskExecutor(eventLoop: loop))
            let done = NIOLockedValueBox(false)
            queue.enqueue { done.withLockedValue { $0 = true } }
            return done.withLockedValue { $0 }
        }.wait()
        XCTAssertTrue(ranInline, "a hook without an await should finish before enqueue returns")
    }

    func testHooksThatAwait_resumeOnTheLoop_andRunOneAtATimeInOrder() throws {
        let loop = self.loop
        let log = NIOLockedValueBox<[String]>([])
        let finished = loop.makePromise(of: Void.self)
        try loop.submit {
            let queue = HookQueue(executor: EventLoopTaskExecutor(eventLoop: loop))
            for (index, delay) in [30, 0, 10, 0].enumerated() {
                queue.enqueue {
                    log.withLockedValue { $0.append("start \(index)") }
                    if delay > 0 { try? await Task.sleep(for: .milliseconds(delay)) }
                    log.withLockedValue { $0.append("end \(index) onLoop=\(loop.inEventLoop)") }
                    if index == 3 { finished.succeed() }
                }
            }
        }.wait()
        try finished.futureResult.wait()
        XCTAssertEqual(log.withLockedValue { $0 }, [
            "start 0", "end 0 onLoop=true", "start 1", "end 1 onLoop=true",
            "start 2", "end 2 onLoop=true", "start 3", "end 3 onLoop=true",
        ])
    }

    func testReads_areHeldPastTheThreshold_andReleasedWhenTheHooksAreDone() throws {
        let loop = self.loop
        let holds = NIOLockedValueBox<[Bool]>([])
        let release = loop.makePromise(of: Void.self)
        let queue = try loop.submit { () -> HookQueue in
            let queue = HookQueue(executor: EventLoopTaskExecutor(eventLoop: loop))
            queue.waitingBeforeHold = 2
            queue.onHoldReads = { hold in holds.withLockedValue { $0.append(hold) } }
            let gate = release.futureResult
            queue.enqueue { try? await gate.get() }  // suspends until released
            queue.enqueue {}
            XCTAssertEqual(holds.withLockedValue { $0 }, [], "one waiting hook is below the threshold")
            queue.enqueue {}
            XCTAssertEqual(holds.withLockedValue { $0 }, [true], "two waiting hooks hold reads")
            return queue
        }.wait()
        _ = queue
        try loop.submit { release.succeed() }.wait()
        try loop.submit {}.wait()  // let the released hooks run
        let deadline = Date().addingTimeInterval(2)
        while holds.withLockedValue({ $0 }).count < 2, Date() < deadline { usleep(1000) }
        XCTAssertEqual(holds.withLockedValue { $0 }, [true, false])
    }
}
