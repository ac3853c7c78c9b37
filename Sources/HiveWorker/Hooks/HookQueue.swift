import NIOCore

/// The hooks of one connection, one at a time and in order (its requests, `open`, its messages, `close`). A hook
/// runs at once when none is running; while one is suspended the next ones wait, and past `waitingBeforeHold` of
/// them the connection's reads are held (`onHoldReads(true)`) until they are done, so a client cannot queue
/// unbounded work behind a slow hook. Hooks that never suspend cost a task each and nothing else: no queue, no
/// allocation here.
final class HookQueue: @unchecked Sendable {
    // @unchecked: touched on the event loop only. Every task it starts runs on that loop (its task executor), the
    // completion included.
    typealias Hook = @Sendable () async -> Void

    private let executor: EventLoopTaskExecutor
    private var running = false
    /// True while `drain` runs hooks one after the other: a hook that finishes inside it does not start the next.
    private var draining = false
    private var holding = false
    private var waiting: CircularBuffer<Hook>?
    /// The hook being started: the task reads it at once, so its closure captures only `self` (a closure whose one
    /// capture is an object needs no allocated context) instead of wrapping the hook in a second closure.
    private var starting: Hook?
    /// Told when reads must be held, and when they may go on.
    var onHoldReads: ((Bool) -> Void)?
    /// How many hooks may wait behind a suspended one before reads are held. 0 (HTTP) holds them as soon as a hook
    /// suspends: the next request waits in the socket, as HTTP/1.1 expects. A WebSocket keeps reading a few
    /// messages more, so the pings and pongs of a connection whose hook awaits a slow service still flow.
    var waitingBeforeHold = 0

    /// No hook is running or waiting (a reload hands a connection over only then).
    var isIdle: Bool { !running && (waiting?.isEmpty ?? true) }

    init(executor: EventLoopTaskExecutor) {
        self.executor = executor
    }

    func enqueue(_ hook: @escaping Hook) {
        executor.eventLoop.preconditionInEventLoop()
        if running {
            if waiting == nil { waiting = CircularBuffer(initialCapacity: 4) }
            waiting!.append(hook)
        } else {
            start(hook)
        }
        if running { updateHold() }
    }

    private func start(_ hook: @escaping Hook) {
        running = true
        starting = hook
        executor.run { [self] in await self.runStarting() }
    }

    private func runStarting() async {
        guard let hook = starting else { return }
        starting = nil
        await hook()
        finished()
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
        updateHold()
    }

    private func updateHold() {
        let hold = running && (waiting?.count ?? 0) >= waitingBeforeHold
        guard hold != holding else { return }
        holding = hold
        onHoldReads?(hold)
    }
}
