import NIOCore

/// The hooks of one connection, one at a time and in order (its requests, `open`, its messages, `close`). A hook
/// runs at once when none is running; while one is suspended the next ones wait, and past `waitingBeforeHold` of
/// them the connection's reads are held (`readHolder.hooksHoldReads(true)`) until they are done, so a client cannot queue
/// unbounded work behind a slow hook. Hooks run in the executor's parked runner tasks; hooks that never suspend
/// cost a runner's resume and nothing else: no task, no queue, no allocation here.
final class HookQueue: @unchecked Sendable {
    // @unchecked: touched on the event loop only. The runners run on that loop (their task executor), the
    // completion included.
    typealias Hook = @Sendable () async -> Void

    /// What waits in the queue: a hook as a closure, or a WebSocket message for the application's message hook,
    /// which `runHooks` calls itself (the hot path: no closure to allocate, and one async call level fewer).
    enum Work {
        case hook(Hook)
        case message(HiveMessage, WebSocketSession)
        /// An HTTP request for the application's request hook: the handler holds it (one at a time), and
        /// `HTTPRequestHandler.runRequestHook` answers it; no closure to allocate per request either.
        case request(HTTPRequestHandler)
    }

    private let executor: EventLoopTaskExecutor
    /// A hook is running or suspended, or about to run (`next`): further hooks wait.
    private var running = false
    private var holding = false
    /// How many hooks may wait behind a suspended one before reads are held. 0 (HTTP) holds them as soon as a hook
    /// suspends: the next request waits in the socket, as HTTP/1.1 expects. A WebSocket keeps reading a few
    /// messages more, so the pings and pongs of a connection whose hook awaits a slow service still flow.
    /// 32 bits, next to the flags: the queue fits a 16-byte smaller allocation (one per connection).
    var waitingBeforeHold: Int32 = 0
    private var waiting: CircularBuffer<Work>?
    /// The hook `enqueue` hands to a runner: the runner takes it from here, so nothing is allocated to pass it.
    private var next: Work?
    /// Told when reads must be held, and when they may go on: the handler keeping the connection's record. A
    /// reference, not a closure: a closure was an allocation of its own per connection. `unowned`: the handler
    /// clears it when it leaves the pipeline, and a weak reference would give the handler a side table.
    unowned var readHolder: (any HookReadHolder)?

    /// No hook is running or waiting (a reload hands a connection over only then).
    var isIdle: Bool { !running && (waiting?.isEmpty ?? true) }

    init(executor: EventLoopTaskExecutor) {
        self.executor = executor
    }

    func enqueue(_ hook: @escaping Hook) {
        enqueue(.hook(hook))
    }

    func enqueue(_ work: Work) {
        executor.eventLoop.preconditionInEventLoop()
        if running {
            if waiting == nil { waiting = CircularBuffer(initialCapacity: 4) }
            waiting!.append(work)
        } else {
            running = true
            next = work
            executor.serve(self)
        }
        if running { updateHold() }
    }

    /// Runs the hook `enqueue` handed over, then the ones that waited behind it, one at a time, until none is
    /// left. Called by a runner task of the executor, on the loop; it is suspended here while a hook is.
    @inline(__always)  // into the runner: one async frame fewer per hook
    func runHooks() async {
        while true {
            let work: Work
            if let first = next {
                next = nil
                work = first
            } else if let waited = waiting?.popFirst() {
                work = waited
                updateHold()
            } else {
                break
            }
            switch work {
            case .hook(let hook):
                await hook()
            case .message(let message, let session):
                let hive = session.hive
                do {
                    try await hive.hooks.message(message, from: session.connection, hive: hive)
                } catch {
                    session.hookFailed("message", error)
                }
            case .request(let handler):
                await handler.runRequestHook()
            }
            // Debug builds (the integration tests' binary) check that a hook that suspended came back to the loop.
            executor.eventLoop.assertInEventLoop()
        }
        running = false
        updateHold()
    }

    private func updateHold() {
        let hold = running && (waiting?.count ?? 0) >= Int(waitingBeforeHold)
        guard hold != holding else { return }
        holding = hold
        readHolder?.hooksHoldReads(hold)
    }
}

/// Holds a connection's reads while its hooks are backed up (`HookQueue.readHolder`).
protocol HookReadHolder: AnyObject {
    func hooksHoldReads(_ hold: Bool)
}
