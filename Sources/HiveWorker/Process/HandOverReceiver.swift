import CHiveShims
import Foundation
import HiveIPC
import HiveRedis
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket

/// Reload, replacement side: adopts a WebSocket connection the retired process of this worker id handed over
/// (`HandOverSender`), straight into WebSocket mode: no handshake, the parser and a fragmented message continue
/// where they were, the slot keeps its id and counters, the channels their counts. The application's `open` hook
/// does not run again (the connection did not open again), nor `close` in the retired process.
///
/// A state this binary cannot read (another `HandOverState.version`), a record addressed to another process or a
/// stale slot is refused: this process closes its copy of the socket (the retired process still holds one, so the
/// client notices nothing) and writes pid 0 into the slot, and the retired process serves the connection on and
/// closes it with 1012, as a reload without hand-over does.
final class HandOverReceiver: @unchecked Sendable {
    // @unchecked: `chunks` is touched by the inbox thread only; `versionRefusalLogged` on the event loop only.
    private let hive: HiveServer
    private let group: EventLoopGroup
    private let logger: Logger
    /// State chunks that came ahead of their `handOver` record, by connection.
    private var chunks: [ConnectionID: [UInt8]] = [:]
    private var versionRefusalLogged = false

    init(hive: HiveServer, group: EventLoopGroup, logger: Logger) {
        self.hive = hive
        self.group = group
        self.logger = logger
    }

    /// The most state one connection can need (`HandOverState.maxSize`): chunks past it are dropped, and the
    /// connection is refused when its record comes.
    private var maxStateSize: Int { HandOverState.maxSize(maxMessageSize: hive.limits.maxMessageSize) }
    /// Connections whose chunks went past `maxStateSize` (on the inbox thread).
    private var oversized: Set<ConnectionID> = []

    /// On the inbox thread.
    func addChunk(_ id: ConnectionID, _ bytes: [UInt8]) {
        guard !oversized.contains(id) else { return }
        if chunks[id, default: []].count + bytes.count > maxStateSize {
            chunks[id] = nil
            oversized.insert(id)
            return
        }
        chunks[id, default: []] += bytes
    }

    /// On the inbox thread: the whole state; the adoption itself runs on the event loop, after the records read
    /// before it.
    func receive(_ id: ConnectionID, to pid: Int32, state last: [UInt8], socket: Int32) {
        let state = (chunks.removeValue(forKey: id) ?? []) + last
        let limit = maxStateSize
        if oversized.remove(id) != nil || state.count > limit {
            let size = max(state.count, limit + 1)
            hive.eventLoop.execute { self.refuseOversized(id, bytes: size, limit: limit, socket: socket) }
            return
        }
        hive.eventLoop.execute { self.adopt(id, to: pid, state: state, socket: socket) }
    }

    private func refuseOversized(_ id: ConnectionID, bytes: Int, limit: Int, socket: Int32) {
        logger.warning(
            "a handed-over connection's state is larger than any connection can need; refused (the retired worker closes it with 1012)",
            metadata: ["connection.id": "\(id)", "error": "\(HandOverState.DecodeError.tooLarge(bytes: bytes, limit: limit))"]
        )
        refuse(id, socket: socket)
    }

    /// The record came without its socket (this process is at its descriptor limit): the retired process keeps it.
    func lost(_ id: ConnectionID) {
        chunks[id] = nil
        oversized.remove(id)
        refuse(id, socket: -1)
    }

    private func refuse(_ id: ConnectionID, socket: Int32) {
        if socket >= 0 { close(socket) }
        hive.registry.refuseHandOver(id)
    }

    private func adopt(_ id: ConnectionID, to pid: Int32, state bytes: [UInt8], socket: Int32) {
        guard pid == getpid() else {
            logger.info("a hand-over addressed to another process; refused", metadata: ["connection.id": "\(id)"])
            return refuse(id, socket: socket)
        }
        let state: HandOverState
        do {
            state = try HandOverState(decoding: bytes)
        } catch .unsupportedVersion(let version) {
            if !versionRefusalLogged {
                versionRefusalLogged = true
                logger.warning(
                    "the retired worker hands connections over in another format; they are closed with 1012 instead",
                    metadata: [
                        "connection.id": "\(id)", "handOver.version": "\(version)",
                        "handOver.expected": "\(HandOverState.version)",
                    ]
                )
            }
            return refuse(id, socket: socket)
        } catch {
            logger.warning("unreadable hand-over state; refused", metadata: ["connection.id": "\(id)", "error": "\(error)"])
            return refuse(id, socket: socket)
        }
        let hive = self.hive
        let compression = state.deflateWindowBits == 0
            ? nil : PerMessageDeflate.Agreement(serverMaxWindowBits: Int(state.deflateWindowBits))
        let inflater = compression.flatMap { _ in hive.table.compression(minSize: hive.limits.compressionMinSize) }
        let frameHandler = WebSocketFrameHandler(sharedLimits: hive.sharedWebSocketLimits, delegate: nil, inflater: inflater)
        let allocator = ByteBufferAllocator()
        let snapshot = HandOverSnapshot(
            leftover: state.frameLeftover.isEmpty ? nil : allocator.buffer(bytes: state.frameLeftover),
            partial: state.partialKind == .none
                ? nil
                : (state.partialKind == .text ? .text : .binary, allocator.buffer(bytes: state.partialMessage),
                    state.partialCompressed),
            nextPingIn: state.nextPingIn, pongDeadlineIn: state.pongDeadlineIn
        )
        guard (compression == nil || inflater != nil), frameHandler.restore(snapshot, now: .now()) else {
            logger.warning("a handed-over connection's state cannot be continued; refused", metadata: ["connection.id": "\(id)"])
            return refuse(id, socket: socket)
        }
        guard hive.registry.takeOver(id) else {
            logger.info("a handed-over connection ended meanwhile", metadata: ["connection.id": "\(id)"])
            close(socket)
            return
        }
        let logger = self.logger
        // On the event loop, `withConnectedSocket` builds the channel at once: the session is in the table before
        // the next inbox record is delivered.
        ClientBootstrap(group: group)
            .channelOption(
                ChannelOptions.writeBufferWaterMark,
                value: ChannelOptions.Types.WriteBufferWaterMark(
                    low: hive.limits.maxOutputBuffer / 2, high: hive.limits.maxOutputBuffer)
            )
            .channelOption(
                ChannelOptions.recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65536)
            )
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    hive.table.add(id, channel: channel)
                    let pipeline = channel.pipeline.syncOperations
                    // The frame handler keeps the record: head | frame handler | tail, as after an upgrade.
                    let record = ConnectionRecord(id: id, hive: hive)
                    frameHandler.record = record
                    // The user record stays in the slot (same id, same worker id): only this process's index learns it.
                    let found = hive.registry.lookup(id, withUser: true)
                    if let user = found?.user { _ = hive.userIndex.bind(id, to: user) }
                    var connection = HiveConnection(
                        id: id, path: state.path, remote: found?.remote ?? .unknown, user: found?.user)
                    // The claims the handshake verified: the token itself is not checked again (it may have
                    // expired since, and a connection stays open after its `exp`, as without a reload).
                    connection.token = state.token.map {
                        HiveToken(subject: $0.subject, channels: $0.channels,
                                  expiresAt: $0.expiresAt.map(Date.init(timeIntervalSince1970:)))
                    }
                    let session = WebSocketSession(
                        connection: connection, channel: channel, socket: socket, frameHandler: frameHandler,
                        hooks: record.hooks, hive: hive, compression: compression
                    )
                    frameHandler.delegate = session
                    try pipeline.addHandler(frameHandler)
                    hive.table.addSession(session)
                    record.hooks.waitingBeforeHold = HiveServer.messagesBeforeHold
                    hive.channelIndex.adopt(
                        session, channels: state.channels, envelopes: state.envelopes,
                        positions: state.positions.mapValues { HistoryPosition(epoch: $0.epoch, offset: $0.offset) }
                    )
                    // What was published since the retired process stopped reading the inbox, before anything newer.
                    if let log = hive.handOverLog, log.replay(to: session, channels: Set(state.channels), hive: hive) > 0 {
                        hive.deferFlush()
                    }
                }
            }
            .withConnectedSocket(socket)
            .whenFailure { error in
                logger.warning("cannot adopt a handed-over connection", metadata: ["connection.id": "\(id)", "error": "\(error)"])
            }
    }
}
