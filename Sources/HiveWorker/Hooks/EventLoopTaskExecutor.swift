import NIOCore
import Synchronization

/// The worker's event loop as a Swift concurrency task executor: the hooks' tasks prefer it, so their code runs on
/// the loop before and after every `await`, like the rest of the worker.
///
/// Hooks run in long-lived tasks ("runners") that park between hooks instead of a new task per hook: a task costs
/// about a third of an echo round trip to create and tear down (its allocator's slabs included), a parked one
/// only a resume and a suspension. A runner is resumed synchronously, on the loop, inside the call that starts a
/// hook, so a hook that never awaits still finishes before `HookQueue.enqueue` returns. A runner whose hook
/// suspends is simply not parked: the next hook takes another runner (or a new one), and this one parks again
/// once its hook and the ones waiting behind it on the same connection are done.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `parked` is touched on the event loop only (every runner runs there); `runNextJobInline` is
    // atomic because `enqueue` is called from any thread (a continuation resumed elsewhere).
    let eventLoop: EventLoop
    /// Runners waiting for a hook queue to serve, most recently parked last (its allocator's memory is warm).
    private var parked: [UnsafeContinuation<HookQueue?, Never>] = []
    /// Set on the loop just around the resumption of a parked runner: the job that resumption enqueues runs at
    /// once, inside it, instead of later in the loop's turn.
    private let runNextJobInline = Atomic<Bool>(false)
    /// The loop is the process's global executor (a worker, `LoopGlobalExecutor`): parked runners are made
    /// without an executor preference (their `await`s are cheaper) and are resumed through it.
    private let global: LoopGlobalExecutor?
    /// A runner without preference is on its way to `parked` (made when a hook found none parked).
    private var refilling = false
    /// Idle runners kept at most; more end (after a burst of suspended hooks, say) and give their memory back.
    static let maxParked = 16

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
        let global = LoopGlobalExecutor.shared
        self.global = global?.eventLoop === eventLoop ? global : nil
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        // The flag first: it is false for every job but the one resumed by `serve` on the loop, and it is only
        // ever true on the loop's thread, so another thread that sees it set must still not run the job itself.
        if runNextJobInline.load(ordering: .relaxed), eventLoop.inEventLoop {
            runNextJobInline.store(false, ordering: .relaxed)
            job.runSynchronously(on: asUnownedTaskExecutor())
            return
        }
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// Runs `body` in a new task on the event loop: at once and to its first suspension when called on the loop
    /// (a hook that never awaits finishes before this returns), and on the loop after every suspension.
    func run(_ body: sending @escaping () async -> Void) {
        Task.immediate(executorPreference: self, operation: body)
    }

    /// Runs `queue`'s hooks (`HookQueue.runHooks`) in a runner, at once: returns when they are done or one of them
    /// suspends. Call on the loop.
    func serve(_ queue: HookQueue) {
        if let runner = parked.popLast() {
            // Its resumption is enqueued on the global executor when it has no preference, on this one otherwise.
            if let global {
                global.runNextJobInline.store(true, ordering: .relaxed)
                runner.resume(returning: queue)
                global.runNextJobInline.store(false, ordering: .relaxed)
            } else {
                runNextJobInline.store(true, ordering: .relaxed)
                runner.resume(returning: queue)
                runNextJobInline.store(false, ordering: .relaxed)
            }
        } else if global == nil {
            run { [self] in await self.runner(serving: queue) }
        } else {
            // None parked (the runners' hooks are suspended): this hook gets a task of its own, at once, and a
            // runner without preference is made to park, on the loop, for the hooks after it.
            run { await queue.runHooks() }
            if !refilling {
                refilling = true
                Task { [self] in await self.runner(serving: nil) }
            }
        }
    }

    /// A runner's life: serve a queue, park, serve the queue it is resumed with, and so on.
    private func runner(serving first: HookQueue?) async {
        if first == nil { refilling = false }
        var queue = first
        while true {
            if let queue { await queue.runHooks() }
            queue = nil  // a parked runner keeps no connection's queue alive
            guard parked.count < Self.maxParked else { return }
            queue = await withUnsafeContinuation { parked.append($0) }
        }
    }
}
