import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// One connection of a `RedisPublisher` and the thread that drives it. Callers append to `queue` under `lock` and
/// wake the thread through a pipe when it sleeps in `poll`; the thread writes everything queued as one pipelined
/// batch, reads the replies in order and resumes each caller. The thread exists from the first publish until
/// `stop`, and holds a connection only while one is needed (see `PublisherLane+Thread.swift`).
final class PublisherLane: @unchecked Sendable {
    // @unchecked: the fields under "Guarded by `lock`" are only touched with `lock` held; those under "Lane thread
    // only" only by the lane's thread; the rest is immutable.

    struct Request {
        let channel: String
        let payload: [UInt8]
        /// With history: the script's keys and policy (an `EVALSHA` instead of a `PUBLISH`).
        let history: HistoryTarget?
        /// Monotonic seconds by which the call ends, replied or not.
        let deadline: Double
        let continuation: CheckedContinuation<PublishReceipt, any Error>
    }

    /// A publish written (or about to be) to the connection, waiting for its reply; the payload is in `output` now
    /// (a history publish keeps it too: after a `NOSCRIPT` it is sent again as `EVAL`).
    struct InFlight {
        let channel: String
        let bytes: Int
        let history: HistoryTarget?
        let payload: [UInt8]
        let deadline: Double
        /// nil for the lane's own `SCRIPT LOAD`.
        let continuation: CheckedContinuation<PublishReceipt, any Error>?
    }

    enum State { case idle, running, stopping, finished }

    let index: Int
    let configuration: RedisPublisher.Configuration
    let maxPending: Int
    let maxPendingBytes: Int
    let logger: Logger
    var address: String { configuration.url.description }

    // Guarded by `lock` (also signalled when `state` becomes `.finished`).
    let lock = NSCondition()
    var queue: [Request] = []
    /// Queued plus in flight, and their payload bytes: what the limits count.
    var pending = 0
    var pendingBytes = 0
    var state = State.idle
    /// The thread is in (or about to enter) `poll` with an empty queue: the next enqueue writes to `wakeWrite`.
    var sleeping = false
    /// The wake pipe, made with the thread; -1 before.
    var wakeRead: Int32 = -1
    var wakeWrite: Int32 = -1

    // Lane thread only.
    var connection: RedisConnection?
    var stream = RESPStream(maxBulk: 64 * 1024)
    /// The history script's SHA1 on this connection (`SCRIPT LOAD` after connecting), nil before the first need.
    var scriptSHA: [UInt8]?
    /// A `SCRIPT LOAD` is on its way on this connection.
    var scriptRequested = false
    var inFlight: [InFlight] = []
    var inFlightHead = 0
    /// Encoded commands not yet written, from `outputOffset` on.
    var output: [UInt8] = []
    var outputOffset = 0
    /// After a failed connection attempt: no new attempt before `retryAt` (monotonic seconds); publishes meanwhile
    /// fail at once with `lastFailure`. `delay` is the next back-off.
    var retryAt = 0.0
    var delay = 0.1
    var lastFailure = ""
    /// What the log last said, so a change is logged once and a repeat never.
    var loggedDown = false
    var spare: [Request] = []

    init(index: Int, configuration: RedisPublisher.Configuration, maxPending: Int, maxPendingBytes: Int, logger: Logger) {
        self.index = index
        self.configuration = configuration
        self.maxPending = maxPending
        self.maxPendingBytes = maxPendingBytes
        self.logger = logger
    }

    deinit {
        if wakeRead >= 0 { close(wakeRead) }
        if wakeWrite >= 0 { close(wakeWrite) }
    }

    var pendingCount: Int { lock.withLock { pending } }
    /// Publishes the thread has not taken yet (once taken, a batch is written on the connection it has then).
    var queuedCount: Int { lock.withLock { queue.count } }

    /// Queues one publish, or resumes `continuation` at once with the reason it cannot be queued.
    func enqueue(channel: String, payload: [UInt8], history: HistoryTarget?,
                 continuation: CheckedContinuation<PublishReceipt, any Error>) {
        let request = Request(channel: channel, payload: payload, history: history,
                              deadline: Monotonic.seconds() + configuration.timeout, continuation: continuation)
        let size = payload.count
        lock.lock()
        if state == .stopping || state == .finished {
            lock.unlock()
            continuation.resume(throwing: error(.shutDown, channel, reason: "the publisher was shut down (the worker is stopping)",
                                                hint: "nothing was sent; publish before the worker stops"))
            return
        }
        if pending >= maxPending || (pending > 0 && pendingBytes + size > maxPendingBytes) {
            let (count, bytes) = (pending, pendingBytes)
            lock.unlock()
            continuation.resume(throwing: error(
                .queueFull, channel,
                reason: "\(count) publishes (\(bytes) payload bytes) already wait for Redis on connection \(index), the limit is "
                    + "\(maxPending) publishes or \(maxPendingBytes) bytes",
                hint: "nothing was sent; Redis is slower than the publish rate: await each publish before the next (back-pressure), "
                    + "publish less, or raise maxPending/maxPendingBytes"
            ))
            return
        }
        if state == .idle {
            if let failure = startThread() {
                lock.unlock()
                continuation.resume(throwing: error(.unreachable, channel, reason: failure, hint: "nothing was sent; try again later"))
                return
            }
        }
        queue.append(request)
        pending += 1
        pendingBytes += size
        let wake = sleeping
        sleeping = false
        lock.unlock()
        if wake { self.wake() }
    }

    /// Stops taking publishes; with `wait`, returns once those already queued have ended and the thread is gone, or
    /// when `wait` seconds have passed (then false: the thread ends on its own later).
    @discardableResult
    func stop(wait: Double?) -> Bool {
        lock.lock()
        switch state {
        case .idle: state = .finished
        case .running: state = .stopping
        case .stopping, .finished: break
        }
        let wake = sleeping
        sleeping = false
        lock.unlock()
        if wake { self.wake() }
        guard let wait else { return true }
        let deadline = Date(timeIntervalSinceNow: wait)
        return lock.withLock {
            while state != .finished { if !lock.wait(until: deadline) { break } }
            return state == .finished
        }
    }

    /// Called with `lock` held. Returns why the thread could not start, or nil.
    private func startThread() -> String? {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return "pipe() failed while starting the Redis publisher thread: \(String(cString: strerror(errno)))" }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        (wakeRead, wakeWrite) = (fds[0], fds[1])
        state = .running
        let thread = Thread { [self] in
            self.run()
            self.lock.withLock {
                self.state = .finished
                self.lock.broadcast()
            }
        }
        thread.name = "hive-redis-pub-\(index)"
        thread.start()
        return nil
    }

    /// One byte is enough: the thread drains the pipe whenever it wakes. A full pipe already means "wake up".
    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    func error(_ code: RedisPublishError.Code, _ channel: String, reason: String, hint: String) -> RedisPublishError {
        RedisPublishError(code: code, channel: channel, address: address, reason: reason, hint: hint)
    }
}
