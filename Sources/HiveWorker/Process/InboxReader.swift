import CHiveShims
import Foundation
import HiveIPC
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket

/// Reads the worker's inbox on its own thread and hands every record to the event loop.
final class InboxReader: @unchecked Sendable {
    // @unchecked: only the thread that runs `run()` touches `deliveries` and reads `inbox`; the rest is immutable.
    private let inbox: RecordChannel
    private let master: RecordChannel
    private let hive: HiveServer
    private let group: EventLoopGroup
    private let lifecycle: WorkerLifecycle
    private let logger: Logger
    private let handOvers: HandOverReceiver

    init(inbox: RecordChannel, master: RecordChannel, hive: HiveServer, group: EventLoopGroup, lifecycle: WorkerLifecycle,
         logger: Logger) {
        self.inbox = inbox
        self.master = master
        self.hive = hive
        self.group = group
        self.lifecycle = lifecycle
        self.logger = logger
        self.handOvers = HandOverReceiver(hive: hive, group: group, logger: logger)
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
            if case .handOver(let id, _, _) = lost.message { handOvers.lost(id) }
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
        case .push, .broadcast, .disconnect, .channelMessage, .subscription, .binding, .userMessage, .userPush:
            deliveries.append(message)
        case .handOverChunk(let id, let bytes):
            handOvers.addChunk(id, bytes)
        case .handOver(let id, let pid, let state):
            // After the records read before it: they reach the loop first, and the connection joins after them.
            handOffDeliveries()
            handOvers.receive(id, to: pid, state: state, socket: descriptor)
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
        case .healthCheck(let sequence):
            answerHealthCheck(sequence)
        case .ready, .retired, .healthy:
            logger.warning("unexpected \(message) record in a worker inbox; ignored")
        }
        return true
    }

    /// Answered from the event loop, after the records already handed to it: a loop that is blocked (a hook
    /// stuck, a busy loop, SIGSTOP) stays silent, and the master stops sending it connections, then restarts it.
    private func answerHealthCheck(_ sequence: UInt64) {
        handOffDeliveries()
        let master = self.master
        let logger = self.logger
        let workerID = hive.workerID
        hive.eventLoop.execute {
            let answer = IPCMessage.healthy(worker: workerID, pid: getpid(), sequence: sequence)
            // Never block the loop on the master: a lost answer only makes the next check count.
            if (try? master.send(answer, blocking: false)) != .sent {
                logger.debug("cannot answer the master's health check now (its inbox is full); the next one will")
            }
        }
    }

    private func adopt(_ fd: Int32, id: ConnectionID) {
        let logger = self.logger
        let hive = self.hive
        ClientBootstrap(group: group)
            .channelOption(
                ChannelOptions.writeBufferWaterMark,
                value: ChannelOptions.Types.WriteBufferWaterMark(
                    low: hive.limits.maxOutputBuffer / 2,
                    high: hive.limits.maxOutputBuffer
                )
            )
            // NIO keeps a connection's receive buffer for its whole life. Its default first size, 2 KiB, was
            // the largest single cost of an idle WebSocket (~1.7 KB of RSS per connection). 256 B holds a small
            // upgrade request; the size doubles after every read that fills the buffer (up to 64 KiB), so a
            // browser's ~500-byte request takes two reads and leaves a 512-byte buffer.
            .channelOption(
                ChannelOptions.recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65536)
            )
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard hive.registry.activate(id) else {
                        throw SystemError("adopt", while: "adopting connection \(id): its slot was reclaimed", errno: ESTALE)
                    }
                    hive.table.add(id, channel: channel)
                    try WorkerPipeline.configure(channel, id: id, socket: fd, hive: hive)
                }
            }
            .withConnectedSocket(fd)
            .whenFailure { error in
                logger.warning("cannot adopt a connection", metadata: ["connection.id": "\(id)", "error": "\(error)"])
            }
    }
}
