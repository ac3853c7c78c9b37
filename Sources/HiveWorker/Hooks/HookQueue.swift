import NIOCore

/// The hooks of one connection, one at a time and in order (its requests, `open`, its messages, `close`). A hook
/// runs at once when none is running; one that suspends makes the next wait, and holds the connection's reads
/// (`onSuspended(true)`) until the last waiting hook is done, so a client cannot queue unbounded work behind a slow
/// hook. Hooks that never suspend cost a task each and nothing else: no queue, no allocation here.
final class HookQueue: @unchecked Sendable {
    // @unchecked: touched on the event loop only. Every task it starts runs on that loop (its task executor), the
    // completion included.
    typealias Hook = @Sendable () async -> Void

    private let executor: EventLoopTaskExecutor
    private var running = false
    /// True while `drain` runs hooks one after the other: a hook that finishes inside it does not start the next.
    private var draining = false
    private var suspended = false
    private var waiting: CircularBuffer<Hook>?
    /// Told when hooks start and stop waiting on a suspended one: hold reads, release them.
    var onSuspended: ((Bool) -> Void)?

    init(executor: EventLoopTaskExecutor) {
        self.executor = executor
    }

    /// Whether no hook is running or waiting.
    var isIdle: Bool { !running && (waiting?.isEmpty ?? true) }

    func enqueue(_ hook: @escaping Hook) {
        executor.eventLoop.preconditionInEventLoop()
        if running {
            if waiting == nil { waiting = CircularBuffer(initialCapacity: 4) }
            waiting!.append(hook)
            return
        }
        start(hook)
        if running { suspend() }
    }

    private func start(_ hook: @escaping Hook) {
        running = true
        executor.run {
            await hook()
            self.finished()
        }
    }

    private func finished() {
        running = false
        guard !draining else { return }
        drain()
    }

    /// Runs the waiting hooks until one suspends or none is left.
    private func drain() {
        draining = true
        while !running, let next = waiting?.popFirst() {
            start(next)
        }
        draining = false
        if running { suspend() } else if suspended {
            suspended = false
            onSuspended?(false)
        }
    }

    private func suspend() {
        guard !suspended else { return }
        suspended = true
        onSuspended?(true)
    }
}
