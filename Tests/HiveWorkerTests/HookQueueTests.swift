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

    /// Hooks run in parked runner tasks, not a task each: hooks that never await, of any connection, run one
    /// after the other in the same task. (The first hook cancels its task; a later hook sees that only in the
    /// same task. Comparing task addresses would not do: a freed task's memory is reused by the next one.)
    func testHooksThatNeverAwait_reuseOneParkedTask() throws {
        let loop = self.loop
        let seen = try loop.submit { () -> [Bool] in
            let executor = EventLoopTaskExecutor(eventLoop: loop)
            let (first, second) = (HookQueue(executor: executor), HookQueue(executor: executor))
            let seen = NIOLockedValueBox<[Bool]>([])
            first.enqueue { withUnsafeCurrentTask { $0?.cancel() } }
            for queue in [second, first] {
                queue.enqueue { seen.withLockedValue { $0.append(Task.isCancelled) } }
            }
            return seen.withLockedValue { $0 }
        }.wait()
        XCTAssertEqual(seen, [true, true], "hooks that never await should run in the same task, one after the other")
    }

    /// A suspended hook keeps its runner; another connection's hook runs at once in another one, and so does a
    /// hook that a running hook starts on another connection (a disconnect's close hook, say).
    func testSuspendedHook_doesNotHoldUpOtherQueues_andNestedHooksRunAtOnce() throws {
        let loop = self.loop
        let log = NIOLockedValueBox<[String]>([])
        let release = loop.makePromise(of: Void.self)
        let done = loop.makePromise(of: Void.self)
        let afterEnqueue = try loop.submit { () -> [String] in
            let executor = EventLoopTaskExecutor(eventLoop: loop)
            let (slow, other, nested) = (HookQueue(executor: executor), HookQueue(executor: executor), HookQueue(executor: executor))
            let gate = release.futureResult
            slow.enqueue {
                try? await gate.get()
                log.withLockedValue { $0.append("slow end onLoop=\(loop.inEventLoop)") }
                done.succeed()
            }
            other.enqueue {
                log.withLockedValue { $0.append("other") }
                nested.enqueue { log.withLockedValue { $0.append("nested") } }
                log.withLockedValue { $0.append("other end") }
            }
            return log.withLockedValue { $0 }
        }.wait()
        XCTAssertEqual(afterEnqueue, ["other", "nested", "other end"])
        try loop.submit { release.succeed() }.wait()
        try done.futureResult.wait()
        XCTAssertEqual(log.withLockedValue { $0 }.last, "slow end onLoop=true")
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
        let holder = Holder { hold in holds.withLockedValue { $0.append(hold) } }  // the queue holds it unowned
        let queue = try loop.submit { () -> HookQueue in
            let queue = HookQueue(executor: EventLoopTaskExecutor(eventLoop: loop))
            queue.waitingBeforeHold = 2
            queue.readHolder = holder
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
        withExtendedLifetime(holder) {}
    }
}

/// Records what a queue tells its read holder.
private final class Holder: HookReadHolder, Sendable {
    let told: @Sendable (Bool) -> Void
    init(_ told: @escaping @Sendable (Bool) -> Void) { self.told = told }
    func hooksHoldReads(_ hold: Bool) { told(hold) }
}
