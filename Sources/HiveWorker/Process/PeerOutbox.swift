import Foundation
import HiveIPC
import Logging

/// Sends records to other workers' inboxes without ever blocking the event loop: a record with nothing queued ahead
/// of it is sent at once without waiting; the rest (a full peer inbox, a payload that needs a memfd, records behind
/// them) is queued, and one thread sends it, in order per peer. The queue is bounded; what does not fit is dropped, counted and logged (a worker that cannot keep up must
/// not take its peers down with it). A record is always taken when the queue is empty, whatever its size: one
/// message the limits allow must reach every worker, however large the bound.
final class PeerOutbox: @unchecked Sendable {
    // @unchecked: `queue`, `queuedBytes`, `stopped` and `refusedLoggedAt` are guarded by `condition`; `peers` and
    // `maxQueuedBytes` are immutable.
    private let peers: [RecordChannel]
    private let condition = NSCondition()
    /// A broadcast is queued once for all its targets: its payload is one shared buffer, counted once.
    private var queue: [(targets: [Int], message: IPCMessage)] = []
    private var queuedBytes = 0
    private var stopped = false
    private var refusedLoggedAt: ContinuousClock.Instant?
    let maxQueuedBytes: Int
    private let logger: Logger
    private let onDrop: @Sendable (IPCMessage, Int) -> Void

    /// - Parameter maxQueuedBytes: payload bytes that may wait; make it a few times the largest message a worker
    ///   may forward, so a burst of them fits.
    init(peers: [RecordChannel], maxQueuedBytes: Int = 64 << 20, logger: Logger,
         onDrop: @escaping @Sendable (IPCMessage, Int) -> Void) {
        self.peers = peers
        self.maxQueuedBytes = maxQueuedBytes
        self.logger = logger
        self.onDrop = onDrop
        // A full peer inbox makes a send wait at most this long before the record counts as dropped.
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        for peer in peers {
            setsockopt(peer.fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        let thread = Thread { [self] in self.run() }
        thread.name = "hive-outbox"
        thread.start()
    }

    /// Queues a record for worker `target`. Returns false (and counts nothing) when the queue is full.
    @discardableResult
    func send(_ message: IPCMessage, to target: Int) -> Bool {
        send(message, to: [target])
    }

    /// Queues one record for several workers. Returns false (and counts nothing) when the queue is full.
    @discardableResult
    func send(_ message: IPCMessage, to targets: [Int]) -> Bool {
        guard !targets.isEmpty else { return true }
        let size = Self.size(of: message)
        condition.lock()
        defer { condition.unlock() }
        var targets = targets
        if queue.isEmpty && !sending && !stopped && Self.fitsInline(message) {
            // Nothing is ahead of it: send it now, without waking the sender thread (one thread hop less per
            // message to the other workers). A peer whose inbox is full gets it through the thread, which waits.
            targets = targets.filter { !sendNow(message, to: $0) }
            if targets.isEmpty { return true }
        }
        guard queue.isEmpty || queuedBytes + size <= maxQueuedBytes else {
            let now = ContinuousClock.now
            if refusedLoggedAt.map({ now - $0 >= .seconds(60) }) ?? true {
                refusedLoggedAt = now
                logger.warning("queue to other workers full; record dropped", metadata: [
                    "record.bytes": "\(size)", "queued.bytes": "\(queuedBytes)", "limit.bytes": "\(maxQueuedBytes)",
                    "target.workers": "\(targets)",
                    "hint": "other workers read their inboxes too slowly; counted in pushesFailed (logged at most once a minute)",
                ])
            }
            return false
        }
        queue.append((targets, message))
        queuedBytes += size
        condition.signal()
        return true
    }

    /// Calls `body` (on the sender thread, or here if nothing is queued) once every record queued so far was sent.
    func whenDrained(_ body: @escaping @Sendable () -> Void) {
        condition.lock()
        if queue.isEmpty && !sending {
            condition.unlock()
            body()
            return
        }
        drainWaiters.append(body)
        condition.unlock()
    }

    /// Guarded by `condition`: the sender thread is writing a batch; callers of `whenDrained` waiting for the queue.
    private var sending = false
    private var drainWaiters: [@Sendable () -> Void] = []

    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopped { condition.wait() }
            if stopped && queue.isEmpty {
                condition.unlock()
                return
            }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            queuedBytes = 0
            sending = true
            condition.unlock()
            defer {
                condition.lock()
                sending = false
                let drained = queue.isEmpty ? drainWaiters : []
                if queue.isEmpty { drainWaiters.removeAll() }
                condition.unlock()
                for waiter in drained { waiter() }
            }
            for (targets, message) in batch {
                for target in targets {
                    do {
                        if try peers[target].send(message, blocking: true) != .sent { onDrop(message, target) }
                    } catch {
                        logger.warning(
                            "cannot send to another worker",
                            metadata: ["target.worker": "\(target)", "error": "\(error)"]
                        )
                        onDrop(message, target)
                    }
                }
            }
        }
    }

    /// Sends without waiting; false when the peer's inbox is full (the record must then be queued).
    private func sendNow(_ message: IPCMessage, to target: Int) -> Bool {
        do {
            return try peers[target].send(message, blocking: false) == .sent
        } catch {
            logger.warning("cannot send to another worker", metadata: ["target.worker": "\(target)", "error": "\(error)"])
            onDrop(message, target)
            return true  // dropped and counted, as the sender thread would
        }
    }

    /// Whether the record goes without a payload file: making one (a memfd) is left to the sender thread.
    private static func fitsInline(_ message: IPCMessage) -> Bool {
        switch message {
        case .push(_, _, let payload), .broadcast(let payload, _), .channelMessage(_, let payload, _),
            .userMessage(_, let payload, _), .userPush(_, _, let payload):
            payload.count <= IPCMessage.maxInlinePayload
        default: true
        }
    }

    private static func size(of message: IPCMessage) -> Int {
        switch message {
        case .push(_, _, let payload), .broadcast(let payload, _): payload.count + 16
        default: 32
        }
    }
}
