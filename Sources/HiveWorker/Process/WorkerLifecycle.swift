import CHiveShims
import Foundation
import HiveIPC
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket

/// Stopping, on the event loop: WebSocket clients get the close code (1001 Going Away on stop, 1012 Service Restart
/// after a reload), idle HTTP connections close, and the process exits when the last connection is gone, or after
/// the grace period if the master is not there to kill it.
final class WorkerLifecycle: @unchecked Sendable {
    // @unchecked: `retired` is written by the inbox thread and read by others under `lock`; the rest is touched on
    // the event loop only.
    private let hive: HiveServer
    private let grace: TimeAmount
    private let redis: RedisFanOut?
    private let lock = NSLock()
    private var retired = false
    private var stopping = false
    private var dutiesStopped = false

    init(hive: HiveServer, grace: TimeAmount, redis: RedisFanOut?) {
        self.hive = hive
        self.grace = grace
        self.redis = redis
    }

    var isRetired: Bool { lock.withLock { retired } }

    /// The send end of this worker id's inbox (set once by `WorkerProcess`), for a reload's hand-over.
    var ownInbox: RecordChannel?
    private var handOver: HandOverSender?

    /// Reload step 3 (SIGUSR2 from the master once the replacement is ready), on the event loop: hand every
    /// WebSocket connection to the replacement, then stop as after a reload (whatever stayed gets 1012).
    func handOverConnections() {
        hive.eventLoop.preconditionInEventLoop()
        guard isRetired, !stopping, handOver == nil, let ownInbox else {
            hive.logger.warning("hand-over signal ignored: this process is not a retired worker waiting to hand over")
            return
        }
        let sender = HandOverSender(hive: hive, inbox: ownInbox) { [unowned self] in self.stop(closeCode: 1012) }
        handOver = sender
        sender.start()
    }

    /// Reload step 1, on the inbox thread: stop worker-wide duties; the inbox thread stops reading after this. The
    /// Redis subscription stays: it ends at the replacement's splice marker (`RedisSplice`), so no message
    /// published during the reload is lost or delivered twice.
    func retire() {
        lock.withLock { retired = true }
        hive.retired.store(true, ordering: .relaxed)
        redis?.allowSuccessor()
        let stopped = hive.eventLoop.makePromise(of: Void.self)
        hive.eventLoop.execute { self.stopDuties(then: stopped) }
        try? stopped.futureResult.wait()
    }

    func stop(closeCode: UInt16) {
        hive.eventLoop.preconditionInEventLoop()
        guard !stopping else { return }
        stopping = true
        redis?.stop()  // closes the socket and joins the subscriber thread; bounded by --redis-timeout
        stopDuties(then: nil)
        // Subscriptions end now: connections that outlive the grace period must not stay counted in the registry.
        hive.channelIndex.leaveEverything()
        let table = hive.table
        hive.logger.info("stopping", metadata: ["connections": "\(table.count)", "close.code": "\(closeCode)"])
        table.onEmpty = { exit(0) }
        if table.isEmpty { exit(0) }
        hive.eventLoop.scheduleTask(in: grace + .seconds(1)) { exit(0) }
        for session in table.sessions.values {
            session.close(code: WebSocketErrorCode(codeNumber: Int(closeCode)), reason: closeCode == 1012 ? "server restarting" : "server stopping")
        }
        for channel in table.plainChannels.values {
            channel.close(promise: nil)
        }
    }

    /// Runs the application's workerStop once; `done` succeeds when it has returned (or at once if it already ran).
    private func stopDuties(then done: EventLoopPromise<Void>?) {
        guard !dutiesStopped else {
            done?.succeed()
            return
        }
        dutiesStopped = true
        let hive = self.hive
        hive.executor.run {
            await hive.hooks.workerStop(hive)
            done?.succeed()
        }
    }
}
