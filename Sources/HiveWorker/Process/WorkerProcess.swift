import CHiveShims
import Foundation
import HiveIPC
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket

/// A worker: one NIO event loop serving the connections the master hands it, plus the main thread reading the
/// worker's inbox (NIO cannot receive SCM_RIGHTS, so the inbox is read with recvmsg outside NIO).
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

    /// Serves until the master says stop (or dies). Never returns normally: the process exits.
    public func run() throws -> Never {
        // Die with the master, even on kill -9, so no worker is ever orphaned.
        _ = CHiveShims_setParentDeathSignal(SIGTERM)
        signal(SIGPIPE, SIG_IGN)
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
        let inbox = RecordChannel(fd: configuration.inboxFD)
        let master = RecordChannel(fd: configuration.masterFD)

        try loop.submit { hive.application.workerStart(hive) }.wait()
        try master.send(.ready(worker: configuration.workerID, pid: getpid()), blocking: true)
        logger.info("worker serving")

        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IPCMessage.maxRecordSize, alignment: 8)
        while true {
            let received: (IPCMessage, descriptor: Int32)?
            do {
                received = try inbox.receive(blocking: true, buffer: buffer)
            } catch let lost as RecordChannel.DescriptorLost {
                if case .connection(let id) = lost.message { registry.abandon(id) }
                logger.warning("a connection was lost on its way to this worker", metadata: ["error": "\(lost)"])
                continue
            } catch {
                logger.warning("unreadable record in the inbox; skipped", metadata: ["error": "\(error)"])
                continue
            }
            guard let (message, descriptor) = received else {
                logger.notice("inbox closed; exiting")
                exit(0)
            }
            switch message {
            case .connection(let id):
                adopt(descriptor, id: id, hive: hive, group: group)
            case .push, .broadcast, .disconnect:
                loop.execute { hive.deliver(message) }
            case .stop(let closeCode):
                loop.execute { Self.stop(hive: hive, closeCode: closeCode) }
            case .ready:
                logger.warning("unexpected ready record in a worker inbox; ignored")
            }
        }
    }

    private func adopt(_ fd: Int32, id: ConnectionID, hive: Hive, group: EventLoopGroup) {
        let logger = self.logger
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

    /// Graceful stop: WebSocket clients get `closeCode` (1001 Going Away), idle HTTP connections close now, busy
    /// ones after their response; the process exits when the last connection is gone (the master kills it after
    /// the grace period otherwise).
    private static func stop(hive: Hive, closeCode: UInt16) {
        hive.logger.info("stopping", metadata: ["connections": "\(hive.table.channels.count)"])
        hive.table.onEmpty = { exit(0) }
        if hive.table.channels.isEmpty { exit(0) }
        for session in hive.table.sessions.values {
            session.close(code: WebSocketErrorCode(codeNumber: Int(closeCode)), reason: "server stopping")
        }
        for (id, channel) in hive.table.channels where hive.table.sessions[id] == nil {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            channel.close(promise: nil)
        }
    }
}
