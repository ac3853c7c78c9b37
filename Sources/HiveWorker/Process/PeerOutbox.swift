import Foundation
import HiveIPC
import Logging

/// Sends records to other workers' inboxes without ever blocking the event loop: the loop enqueues, one thread
/// sends. The queue is bounded; what does not fit is dropped and counted (a worker that cannot keep up must not
/// take its peers down with it).
final class PeerOutbox: @unchecked Sendable {
    // @unchecked: `queue`, `queuedBytes` and `stopped` are guarded by `condition`; `peers` is immutable.
    private let peers: [RecordChannel]
    private let condition = NSCondition()
    private var queue: [(target: Int, message: IPCMessage)] = []
    private var queuedBytes = 0
    private var stopped = false
    private let maxQueuedBytes = 64 << 20
    private let logger: Logger
    private let onDrop: @Sendable (IPCMessage, Int) -> Void

    init(peers: [RecordChannel], logger: Logger, onDrop: @escaping @Sendable (IPCMessage, Int) -> Void) {
        self.peers = peers
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
        let size = Self.size(of: message)
        condition.lock()
        defer { condition.unlock() }
        guard queuedBytes + size <= maxQueuedBytes else { return false }
        queue.append((target, message))
        queuedBytes += size
        condition.signal()
        return true
    }

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
            condition.unlock()
            for (target, message) in batch {
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

    private static func size(of message: IPCMessage) -> Int {
        switch message {
        case .push(_, _, let payload), .broadcast(let payload, _): payload.count + 16
        default: 32
        }
    }
}
