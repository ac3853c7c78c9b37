import Atomics
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The worker's event loop as Swift concurrency's global executor (`swift_task_enqueueGlobal_hook`, as NIO's
/// `NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor` does it, but for this
/// loop): a worker process has one loop, and every task without an executor preference runs there.
///
/// Why: a task with a task-executor preference pays for it at every `await` of a nonisolated function (the runtime
/// looks the preference up under the task's status-record lock, about 170 instructions each, 9 per echo round
/// trip). The hook runners need no preference once the loop is the global executor, so they are made without
/// one (`EventLoopTaskExecutor.runnersNeedNoPreference`). The cost: `Task {}` and `Task.detached {}` in a worker
/// also run on the loop, like everything else there.
final class LoopGlobalExecutor: Sendable {
    let eventLoop: EventLoop
    /// Set on the loop around the inline resumption of a parked runner (`EventLoopTaskExecutor.serve`).
    let runNextJobInline = Atomic<Bool>(false)

    private init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    /// The executor the hook enqueues on; set once, by `install`, before the hook is.
    nonisolated(unsafe) private static var installing: EventLoop?
    static let shared: LoopGlobalExecutor? = installing.map(LoopGlobalExecutor.init(eventLoop:))

    /// The generic executor ("no isolation"): a job run on it switches nowhere when it calls nonisolated code.
    /// `UnownedSerialExecutor` is the runtime's two-word executor reference, and the generic one is all zeros.
    static let generic = unsafeBitCast((UInt(0), UInt(0)), to: UnownedSerialExecutor.self)

    func enqueue(_ job: UnownedJob) {
        if runNextJobInline.load(ordering: .relaxed), eventLoop.inEventLoop {
            runNextJobInline.store(false, ordering: .relaxed)
            job.runSynchronously(on: Self.generic)
            return
        }
        eventLoop.execute { job.runSynchronously(on: Self.generic) }
    }

    /// Makes `eventLoop` the process's global executor. Call once, before the loop serves anything; returns false
    /// (and changes nothing) when the runtime has no hook or another one is installed.
    static func install(on eventLoop: EventLoop) -> Bool {
        typealias Hook = @convention(thin) (UnownedJob, @convention(thin) (UnownedJob) -> Void) -> Void
        guard installing == nil else { return shared?.eventLoop === eventLoop }
        installing = eventLoop
        guard shared != nil,
            let symbol = dlsym(dlopen(nil, RTLD_NOW), "swift_task_enqueueGlobal_hook")
        else { return false }
        // The runtime reads the hook at every enqueue, from any thread: swap it in atomically.
        let slot = UnsafeAtomic<Int>(at: symbol.assumingMemoryBound(to: Int.AtomicRepresentation.self))
        return withUnsafeTemporaryAllocation(of: Hook.self, capacity: 1) { hook in
            hook.baseAddress!.initialize(to: { job, _ in LoopGlobalExecutor.shared!.enqueue(job) })
            return hook.baseAddress!.withMemoryRebound(to: Int.self, capacity: 1) { pointer in
                slot.compareExchange(expected: 0, desired: pointer.pointee, ordering: .acquiringAndReleasing).exchanged
            }
        }
    }
}
