import CHiveShims
import Foundation
import HiveIPC
import HiveRedis
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket

/// A worker: one NIO event loop serving the connections the master hands it, an inbox thread reading the worker's
/// Unix socket (NIO cannot receive SCM_RIGHTS, so it is read with recvmsg outside NIO), and the main thread
/// waiting for SIGTERM/SIGINT with sigwait (no handler runs asynchronously).
package final class WorkerProcess<Application: HiveApplication> {
    private let configuration: WorkerConfiguration
    private let application: Application
    private var logger: Logger

    package init(configuration: WorkerConfiguration, application: Application, logger: Logger) {
        self.configuration = configuration
        self.application = application
        self.logger = logger
        self.logger[metadataKey: "process.role"] = "worker"
        self.logger[metadataKey: "worker.id"] = "\(configuration.workerID)"
        self.logger[metadataKey: "pid"] = "\(getpid())"
    }

    /// Serves until told to stop. Never returns: the process exits.
    package func run() throws -> Never {
        // Blocked before any thread exists, so every thread inherits the mask and only sigwait below sees them.
        // (SIGHUP is blocked from the spawn on: see WorkerSpawner.)
        var waitedSignals = sigset_t()
        sigemptyset(&waitedSignals)
        sigaddset(&waitedSignals, SIGTERM)
        sigaddset(&waitedSignals, SIGINT)
        sigaddset(&waitedSignals, SIGHUP)
        sigaddset(&waitedSignals, SIGUSR2)  // reload: hand the connections to the replacement
        pthread_sigmask(SIG_BLOCK, &waitedSignals, nil)
        signal(SIGPIPE, SIG_IGN)
        // Die with the master, even on kill -9, so no worker is ever orphaned: SIGTERM is a graceful stop.
        _ = CHiveShims_setParentDeathSignal(SIGTERM)
        if getppid() == 1 { exit(1) }  // the master died before we set the death signal

        let registry = try SharedRegistry.attach(fd: configuration.registryFD)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        // Before the server (its hook executor asks whether the loop is the global executor).
        if !LoopGlobalExecutor.install(on: loop) {
            logger.debug("the event loop could not become the global executor; hooks run with an executor preference")
        }
        let hive = HiveServer(
            workerID: configuration.workerID, eventLoop: loop, registry: registry, limits: configuration.limits,
            application: application, logger: logger
        )
        let workerID = configuration.workerID
        hive.publishAPIKey = configuration.apiKey.flatMap(APIKey.init)
        if let key = configuration.tokenKey {
            hive.tokens = try loop.makeFutureWithTask { try await TokenVerifier.make(key) }.wait()
        }
        if let redis = configuration.redis {
            // Before the event loop runs anything of this server's.
            hive.redisRouting = RedisRouting(broadcastChannels: Set(redis.channels), prefix: redis.channelPrefix)
            // Every worker may publish (`HiveServer.publish`): lazily, one connection on its own thread.
            hive.publisher = RedisPublisher(
                configuration: .init(url: redis.url, timeout: redis.timeout, maxMessageSize: redis.maxMessageSize),
                logger: logger
            )
            // Any worker reads history for its own recovering clients, on a thread of its own (lazily).
            hive.historyReader = HistoryReader(url: redis.url, timeout: redis.timeout, logger: logger)
        }
        hive.history = configuration.history
        // Room for a burst of the largest messages this worker may forward (a client's, or a Redis message).
        let largest = max(configuration.limits.maxMessageSize, configuration.redis?.maxMessageSize ?? 0)
        hive.outbox = PeerOutbox(
            peers: configuration.peerFDs.map(RecordChannel.init(fd:)), maxQueuedBytes: max(64 << 20, 4 * largest),
            logger: logger,
            onDrop: { _, _ in registry.worker(workerID, .pushesFailed).wrappingIncrement(ordering: .relaxed) }
        )
        let master = RecordChannel(fd: configuration.masterFD)
        // Worker 0 alone holds the Redis subscription (Swoole's story: worker 0 subscribes in onWorkerStart).
        let redis = workerID == 0 ? configuration.redis.map { RedisFanOut(configuration: $0, hive: hive) } : nil
        let lifecycle = WorkerLifecycle(hive: hive, grace: configuration.grace, redis: redis)
        lifecycle.ownInbox = configuration.peerFDs.indices.contains(workerID)
            ? RecordChannel(fd: configuration.peerFDs[workerID]) : nil

        // No connection is served before the application's workerStart returns: the inbox is read only after it.
        let started = loop.makePromise(of: Void.self)
        let replacing = configuration.replacesRetiredProcess
        loop.execute {
            // A retired process of this worker id may hand this one connections during its first seconds: they get
            // what it delivers now. A first start, or a restart after a crash, has nobody to take over from.
            if replacing {
                hive.logger.info("replacing a retired worker: keeping a hand-over log", metadata: [
                    "window.s": "\(HandOverLog.window.nanoseconds / 1_000_000_000)", "limit.bytes": "\(HandOverLog.maxBytes)",
                ])
                hive.handOverLog = HandOverLog(logger: hive.logger)
                loop.scheduleTask(in: HandOverLog.window) { hive.handOverLog = nil }
            }
            hive.startKeepAlive()
            hive.executor.run {
                do {
                    try await hive.hooks.workerStart(hive)
                    started.succeed()
                } catch {
                    started.fail(error)
                }
            }
        }
        do {
            try started.futureResult.wait()
        } catch {
            throw WorkerStartError(workerID: workerID, underlying: error)
        }
        redis?.start()
        // A reload's new worker 0 is ready once it has taken the Redis stream over from the old one (bounded).
        if let redis, redis.hasPredecessor, let timeout = configuration.redis?.timeout,
            !redis.waitUntilLive(timeout: 2 * timeout)
        {
            logger.warning("redis subscription not taken over in time; serving anyway")
        }
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
            sigwait(&waitedSignals, &sig)
            if sig == SIGHUP {
                reopenLog()
                continue
            }
            if sig == SIGUSR2 {
                logger.info("hand-over signal received")
                loop.execute { lifecycle.handOverConnections() }
                continue
            }
            logger.info("stop signal received", metadata: ["signal": "\(sig)"])
            loop.execute { lifecycle.stop(closeCode: lifecycle.isRetired ? 1012 : 1001) }
        }
    }

    /// SIGHUP from the master after a log rotation: this thread only waits for signals, so reopening here races
    /// nothing (a log line written meanwhile by another thread lands in the old file or the new one, whole).
    private func reopenLog() {
        guard let path = configuration.logFile else {
            logger.info("SIGHUP ignored: this worker has no log file to reopen")
            return
        }
        do {
            try LogFile.reopen(path)
            logger.info("log file reopened", metadata: ["path": "\(path)"])
        } catch {
            logger.error("cannot reopen the log file; still writing to the old one", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}

/// The application's workerStart threw: the worker exits, and the master starts it again (with back-off).
struct WorkerStartError: Error, CustomStringConvertible {
    var workerID: Int
    var underlying: Error

    var description: String {
        "the application's workerStart failed on worker \(workerID): \(underlying); the worker exits and the master "
            + "starts it again (with back-off): fix what workerStart needs (a database, a file) and it recovers"
    }
}
