import CHiveShims
import Foundation
import HiveIPC
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket

/// A worker: one NIO event loop serving the connections the master hands it, an inbox thread reading the worker's
/// Unix socket (NIO cannot receive SCM_RIGHTS, so it is read with recvmsg outside NIO), and the main thread
/// waiting for SIGTERM/SIGINT with sigwait (no handler runs asynchronously).
public final class WorkerProcess {
    private let configuration: WorkerConfiguration
    private let application: HiveApplication
    private var logger: Logger

    public init(configuration: WorkerConfiguration, application: HiveApplication, logger: Logger) {
        self.configuration = configuration
        self.application = application
        self.logger = logger
        self.logger[metadataKey: "process.role"] = "worker"
        self.logger[metadataKey: "worker.id"] = "\(configuration.workerID)"
        self.logger[metadataKey: "pid"] = "\(getpid())"
    }

    /// Serves until told to stop. Never returns: the process exits.
    public func run() throws -> Never {
        // Blocked before any thread exists, so every thread inherits the mask and only sigwait below sees them.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
        signal(SIGPIPE, SIG_IGN)
        // Die with the master, even on kill -9, so no worker is ever orphaned: SIGTERM is a graceful stop.
        _ = CHiveShims_setParentDeathSignal(SIGTERM)
        if getppid() == 1 { exit(1) }  // the master died before we set the death signal

        let registry = try SharedRegistry.attach(fd: configuration.registryFD)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let hive = Hive(
            workerID: configuration.workerID, eventLoop: loop, registry: registry, limits: configuration.limits,
            application: application, logger: logger
        )
        let workerID = configuration.workerID
        hive.outbox = PeerOutbox(
            peers: configuration.peerFDs.map(RecordChannel.init(fd:)), logger: logger,
            onDrop: { _, _ in registry.worker(workerID, .pushesFailed).wrappingIncrement(ordering: .relaxed) }
        )
        let master = RecordChannel(fd: configuration.masterFD)
        // Worker 0 alone holds the Redis subscription (Swoole's story: worker 0 subscribes in onWorkerStart).
        let redis = workerID == 0 ? configuration.redis.map { RedisFanOut(configuration: $0, hive: hive) } : nil
        let lifecycle = WorkerLifecycle(hive: hive, grace: configuration.grace, redis: redis)

        try loop.submit { hive.application.workerStart(hive) }.wait()
        redis?.start()
        let inbox = InboxReader(
            inbox: RecordChannel(fd: configuration.inboxFD), master: master, hive: hive, group: group,
            lifecycle: lifecycle, logger: logger
        )
        let thread = Thread { inbox.run() }
        thread.name = "hive-inbox"
        thread.start()
        try master.send(.ready(worker: workerID, pid: getpid()), blocking: true)
        logger.info("worker serving")

        while true {
            var sig: Int32 = 0
            sigwait(&stopSignals, &sig)
            logger.info("stop signal received", metadata: ["signal": "\(sig)"])
            loop.execute { lifecycle.stop(closeCode: lifecycle.isRetired ? 1012 : 1001) }
        }
    }
}

/// Stopping, on the event loop: WebSocket clients get the close code (1001 Going Away on stop, 1012 Service Restart
/// after a reload), idle HTTP connections close, and the process exits when the last connection is gone, or after
/// the grace period if the master is not there to kill it.
final class WorkerLifecycle: @unchecked Sendable {
    // @unchecked: `retired` is written by the inbox thread and read by others under `lock`; the rest is touched on
    // the event loop only.
    private let hive: Hive
    private let grace: TimeAmount
    private let redis: RedisFanOut?
    private let lock = NSLock()
    private var retired = false
    private var stopping = false
    private var dutiesStopped = false

    init(hive: Hive, grace: TimeAmount, redis: RedisFanOut?) {
        self.hive = hive
        self.grace = grace
        self.redis = redis
    }

    var isRetired: Bool { lock.withLock { retired } }

    /// Reload step 1, on the inbox thread: stop worker-wide duties (the Redis subscription is closed before this
    /// returns, so the replacement's subscription never overlaps it); the inbox thread stops reading after this.
    func retire() {
        lock.withLock { retired = true }
        redis?.stop()
        try? hive.eventLoop.submit { self.stopDuties() }.wait()
    }

    func stop(closeCode: UInt16) {
        hive.eventLoop.preconditionInEventLoop()
        guard !stopping else { return }
        stopping = true
        redis?.stop()  // closes the socket and joins the subscriber thread; bounded by a connect timeout
        stopDuties()
        let table = hive.table
        hive.logger.info("stopping", metadata: ["connections": "\(table.channels.count)", "close.code": "\(closeCode)"])
        table.onEmpty = { exit(0) }
        if table.channels.isEmpty { exit(0) }
        hive.eventLoop.scheduleTask(in: grace + .seconds(1)) { exit(0) }
        for session in table.sessions.values {
            session.close(code: WebSocketErrorCode(codeNumber: Int(closeCode)), reason: closeCode == 1012 ? "server restarting" : "server stopping")
        }
        for (id, channel) in table.channels where table.sessions[id] == nil {
            channel.close(promise: nil)
        }
    }

    private func stopDuties() {
        guard !dutiesStopped else { return }
        dutiesStopped = true
        hive.application.workerStop(hive)
    }
}

/// Reads the worker's inbox on its own thread and hands every record to the event loop.
final class InboxReader: @unchecked Sendable {
    // @unchecked: only the thread that runs `run()` touches `deliveries` and reads `inbox`; the rest is immutable.
    private let inbox: RecordChannel
    private let master: RecordChannel
    private let hive: Hive
    private let group: EventLoopGroup
    private let lifecycle: WorkerLifecycle
    private let logger: Logger

    init(inbox: RecordChannel, master: RecordChannel, hive: Hive, group: EventLoopGroup, lifecycle: WorkerLifecycle,
         logger: Logger) {
        self.inbox = inbox
        self.master = master
        self.hive = hive
        self.group = group
        self.lifecycle = lifecycle
        self.logger = logger
    }

    private enum Received {
        case record(IPCMessage, descriptor: Int32)
        case nothing
        case closed
    }

    /// Records waiting to be handed to the event loop as one batch.
    private var deliveries: [IPCMessage] = []
    static let maxBatch = 256

    func run() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IPCMessage.maxRecordSize, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            // Block for one record, then take what else is already queued without blocking: a burst of
            // broadcasts reaches the event loop as one batch, and each connection is flushed once for it.
            var next = receive(blocking: true, buffer: buffer)
            while true {
                switch next {
                case .closed:
                    handOffDeliveries()
                    logger.notice("inbox closed; stopping")
                    let lifecycle = self.lifecycle
                    hive.eventLoop.execute { lifecycle.stop(closeCode: 1001) }
                    return
                case .nothing:
                    break
                case .record(let message, let descriptor):
                    if !handle(message, descriptor: descriptor) { return }
                }
                if case .nothing = next { break }
                if deliveries.count >= Self.maxBatch { break }
                next = receive(blocking: false, buffer: buffer)
            }
            handOffDeliveries()
        }
    }

    private func receive(blocking: Bool, buffer: UnsafeMutableRawBufferPointer) -> Received {
        do {
            guard let (message, descriptor) = try inbox.receive(blocking: blocking, buffer: buffer) else {
                return blocking ? .closed : .nothing
            }
            return .record(message, descriptor: descriptor)
        } catch let lost as RecordChannel.DescriptorLost {
            if case .connection(let id) = lost.message { hive.registry.abandon(id) }
            logger.warning("a connection was lost on its way to this worker", metadata: ["error": "\(lost)"])
        } catch {
            logger.warning("unreadable record in the inbox; skipped", metadata: ["error": "\(error)"])
        }
        return blocking ? receive(blocking: true, buffer: buffer) : .nothing
    }

    private func handOffDeliveries() {
        guard !deliveries.isEmpty else { return }
        let batch = deliveries
        deliveries.removeAll(keepingCapacity: true)
        let hive = self.hive
        hive.eventLoop.execute { hive.deliver(batch) }
    }

    /// Returns false when this thread must stop reading the inbox (the worker retired).
    private func handle(_ message: IPCMessage, descriptor: Int32) -> Bool {
        let hive = self.hive
        let lifecycle = self.lifecycle
        switch message {
        case .connection(let id):
            adopt(descriptor, id: id)
        case .push, .broadcast, .disconnect:
            deliveries.append(message)
        case .retire:
            // Let go of the inbox: everything after this record belongs to the replacement.
            handOffDeliveries()
            lifecycle.retire()
            do {
                try master.send(.retired(worker: hive.workerID, pid: getpid()), blocking: true)
            } catch {
                logger.error("cannot tell the master this worker retired", metadata: ["error": "\(error)"])
            }
            logger.info("retired; serving held connections until told to stop")
            return false
        case .ready, .retired:
            logger.warning("unexpected \(message) record in a worker inbox; ignored")
        }
        return true
    }

    private func adopt(_ fd: Int32, id: ConnectionID) {
        let logger = self.logger
        let hive = self.hive
        ClientBootstrap(group: group)
            .channelOption(
                ChannelOptions.writeBufferWaterMark,
                value: WriteBufferWaterMark(low: hive.limits.maxOutputBuffer / 2, high: hive.limits.maxOutputBuffer)
            )
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard hive.registry.activate(id) else {
                        throw SystemError("adopt", while: "adopting connection \(id): its slot was reclaimed", errno: ESTALE)
                    }
                    hive.table.add(id, channel: channel)
                    try WorkerPipeline.configure(channel, id: id, hive: hive)
                }
            }
            .withConnectedSocket(fd)
            .whenFailure { error in
                logger.warning("cannot adopt a connection", metadata: ["connection.id": "\(id)", "error": "\(error)"])
            }
    }
}
