import NIOCore

/// The worker's event loop as a Swift concurrency task executor: the hooks' tasks prefer it, so their code runs on
/// the loop before and after every `await`, like the rest of the worker. A hook that does not suspend never
/// touches it (its task starts at once, on the loop, and ends there).
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: EventLoop

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// Runs `body` in a new task on the event loop: at once and to its first suspension when called on the loop
    /// (a hook that never awaits finishes before this returns), and on the loop after every suspension.
    func run(_ body: sending @escaping () async -> Void) {
        Task.immediate(executorPreference: self, operation: body)
    }
}
