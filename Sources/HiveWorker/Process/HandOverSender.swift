import CHiveShims
import Foundation
import HiveIPC
import Logging
import NIOCore

/// Reload, retired side: hands every WebSocket connection of this process to the replacement that now reads this
/// worker id's inbox (SIGUSR2 from the master once the replacement is ready). Runs on the event loop.
///
/// Per connection: reads stop (what NIO read already reached the frame handler); once its hooks are idle and its
/// queued frames are written, its state (`HandOverState`) and a `dup` of its socket go to the inbox as a
/// `handOver` record (after `handOverChunk`s when the state is larger than one record). This process keeps its own
/// copy of the socket until the replacement writes its pid into the slot (`SharedRegistry.takeOver`); only then
/// does it let go, by closing its copy, which sends nothing to the client while the replacement holds one. So a
/// replacement that refuses a connection (another hand-over version) or dies before adopting it leaves the
/// connection here, still served, and closed with 1012 at the end as a reload without hand-over does.
///
/// Bounded: a connection whose hooks or writes do not finish within `flushTimeout` stays here (and gets 1012), and
/// the whole hand-over ends after `timeout`. Then the process stops as a retired process does (`WorkerLifecycle.stop`)
/// and exits once its last connection is gone.
final class HandOverSender {
    private let hive: HiveServer
    /// The send end of this worker id's inbox, which the replacement reads.
    private let inbox: RecordChannel
    private let finish: () -> Void
    private let version: UInt16
    private var started: NIODeadline?
    private var task: RepeatedTask?
    /// Paused, not sent yet, in the order they were paused.
    private var waiting: [ConnectionID] = []
    /// Bytes of a connection's state already sent in chunks (a full inbox interrupted it).
    private var chunked: [ConnectionID: Int] = [:]
    /// Sent, not acknowledged yet: the replacement pid it was sent to.
    private var inTransit: [ConnectionID: Int32] = [:]
    /// Connections that stay here (refused, or not flushed in time).
    private var staying = 0
    private var handedOver = 0

    static let flushTimeout = TimeAmount.seconds(5)
    static let timeout = TimeAmount.seconds(10)
    static let tickInterval = TimeAmount.milliseconds(2)

    /// - Parameter finish: Stops this process (the connections still here get 1012), called once at the end.
    init(hive: HiveServer, inbox: RecordChannel, finish: @escaping () -> Void) {
        self.hive = hive
        self.inbox = inbox
        self.finish = finish
        // Tests only: a sender that writes another version checks the replacement's fallback.
        self.version = ProcessInfo.processInfo.environment["HIVE_TEST_HANDOVER_VERSION"].flatMap(UInt16.init)
            ?? HandOverState.version
    }

    func start() {
        hive.eventLoop.preconditionInEventLoop()
        guard started == nil else { return }
        started = .now()
        for (id, session) in hive.table.sessions {
            guard let keeper = recordKeeper(of: session) else { continue }
            keeper.pauseForHandOver()
            waiting.append(id)
        }
        hive.logger.notice("handing connections over to the replacement", metadata: ["connections": "\(waiting.count)"])
        let sender = NIOLoopBound(self, eventLoop: hive.eventLoop)
        task = hive.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: Self.tickInterval) { _ in
            sender.value.tick()
        }
    }

    /// The replacement that reads the inbox now: running, and not this process.
    private var target: Int32? {
        let registry = hive.registry
        let pid = Int32(truncatingIfNeeded: registry.worker(hive.workerID, .pid).load(ordering: .relaxed))
        let state = registry.worker(hive.workerID, .state).load(ordering: .relaxed)
        guard pid > 0, pid != getpid(), state == WorkerState.running.rawValue else { return nil }
        return pid
    }

    private func tick() {
        guard let started else { return }
        let now = NIODeadline.now()
        let target = self.target
        settleInTransit(target: target)
        if let target { send(to: target, now: now) }
        let timedOut = now - started >= Self.timeout
        if (waiting.isEmpty && inTransit.isEmpty) || timedOut {
            end(timedOut: timedOut)
        }
    }

    /// Sends every connection that is ready; the others wait for a later tick (a connection whose hook runs does
    /// not hold up the rest). A full inbox ends this tick's sending.
    private func send(to target: Int32, now: NIODeadline) {
        var later: [ConnectionID] = []
        var index = 0
        sending: while index < waiting.count {
            let id = waiting[index]
            index += 1
            guard let session = hive.table.sessions[id], let record = recordKeeper(of: session)?.record else {
                continue  // it ended meanwhile
            }
            if !session.isFlushed { session.flushIfNeeded() }  // what the next deferred flush would write anyway
            // An enveloped subscriber reading history has no settled position yet: it waits for the page.
            let positions = hive.channelIndex.handOverPositions(of: id)
            guard session.isFlushed, record.hooks.isIdle, let positions else {
                if now - started! >= Self.flushTimeout {
                    stay(session, why: "its hooks, writes or history read did not finish in time")
                } else {
                    later.append(id)
                }
                continue
            }
            guard let snapshot = session.frameHandler.handOverSnapshot(now: now) else {
                stay(session, why: "it is closing")
                continue
            }
            let state = HandOverState(
                path: session.connection.path, deflateWindowBits: session.deflateWindowBits,
                partialKind: snapshot.partial.map { $0.kind == .text ? .text : .binary } ?? .none,
                partialCompressed: snapshot.partial?.compressed ?? false,
                partialMessage: snapshot.partial.map { Array(buffer: $0.data) } ?? [],
                frameLeftover: snapshot.leftover.map { Array(buffer: $0) } ?? [],
                nextPingIn: snapshot.nextPingIn, pongDeadlineIn: snapshot.pongDeadlineIn,
                channels: hive.channelIndex.channels(of: id), envelopes: hive.channelIndex.usesEnvelopes(id),
                positions: positions.mapValues { HandOverState.Position(epoch: $0.epoch, offset: $0.offset) },
                token: session.connection.token.map {
                    HandOverState.Token(subject: $0.subject, channels: $0.channels, expiresAt: $0.expiresAt?.timeIntervalSince1970)
                }
            ).encoded(version: version)
            switch transmit(id, state: state, socket: session.socket, to: target) {
            case .sent:
                session.stopWriting()
                session.frameHandler.suspendKeepAlive()
                inTransit[id] = target
            case .full:
                later.append(contentsOf: waiting[(index - 1)...])
                break sending
            case .failed(let error):
                stay(session, why: "it cannot be sent: \(error)")
            }
        }
        waiting = later
    }

    private enum Transmission {
        case sent, full
        case failed(Error)
    }

    /// The state in chunks of at most one record, then the last part with a copy of the socket. Never blocks: a
    /// full inbox is tried again at the next tick, from the first chunk not sent.
    private func transmit(_ id: ConnectionID, state: [UInt8], socket: Int32, to target: Int32) -> Transmission {
        let chunk = IPCMessage.maxInlinePayload
        var offset = chunked[id] ?? 0
        do {
            while state.count - offset > chunk {
                let part = Array(state[offset..<offset + chunk])
                guard try inbox.send(.handOverChunk(id, state: part), blocking: false) == .sent else { return .full }
                offset += chunk
                chunked[id] = offset
            }
            let copy = dup(socket)
            guard copy >= 0 else { throw SystemError("dup", while: "handing connection \(id) over") }
            defer { close(copy) }  // the record holds its own reference while in flight
            let record = IPCMessage.handOver(id, to: target, state: Array(state[offset...]))
            guard try inbox.send(record, attach: copy, blocking: false) == .sent else { return .full }
            chunked[id] = nil
            return .sent
        } catch {
            return .failed(error)
        }
    }

    /// Acknowledgements: the replacement's pid in the slot lets this process close its copy; a refusal, or a
    /// replacement that died (its records are drained or refused by the next one), gives the connection back.
    private func settleInTransit(target: Int32?) {
        for (id, sentTo) in inTransit {
            switch hive.registry.handOverProgress(of: id) {
            case .adopted, .gone:
                inTransit[id] = nil
                release(id)
            case .refused:
                inTransit[id] = nil
                resume(id, why: "the replacement refused it")
            case .inTransit:
                // Its addressee is gone and a successor runs: the record was drained by the master or is refused.
                if let target, target != sentTo {
                    inTransit[id] = nil
                    resume(id, why: "the replacement it was sent to is gone")
                }
            }
        }
    }

    /// The replacement owns the connection: forget it here without a close frame, a FIN or a slot change.
    private func release(_ id: ConnectionID) {
        guard let session = hive.table.sessions[id], let keeper = recordKeeper(of: session) else { return }
        handedOver += 1
        hive.channelIndex.forget(id)
        keeper.record?.handedOver = true
        session.channel.close(promise: nil)
    }

    private func resume(_ id: ConnectionID, why: String) {
        guard let session = hive.table.sessions[id], recordKeeper(of: session) != nil else { return }
        _ = hive.registry.takeOver(id)  // ownerPID back to this process (a refusal wrote 0)
        session.resumeWriting()
        stay(session, why: why)
    }

    private func stay(_ session: WebSocketSession, why: String) {
        staying += 1
        session.frameHandler.resumeKeepAlive()
        recordKeeper(of: session)?.resumeAfterHandOver()
        hive.logger.warning(
            "connection not handed over; it stays with the retired process and is closed with 1012",
            metadata: ["connection.id": "\(session.id)", "reason": "\(why)"]
        )
    }

    private func end(timedOut: Bool) {
        task?.cancel()
        task = nil
        for id in waiting {
            if let session = hive.table.sessions[id], recordKeeper(of: session) != nil {
                stay(session, why: "the hand-over timed out")
            }
        }
        waiting.removeAll()
        // Still in transit at the timeout: the replacement may yet adopt them, so this process lets go of them
        // silently rather than close them under it.
        for id in inTransit.keys { release(id) }
        inTransit.removeAll()
        let elapsed = started.map { (NIODeadline.now() - $0).nanoseconds / 1_000_000 } ?? 0
        hive.logger.notice(
            "hand-over finished",
            metadata: [
                "handedOver": "\(handedOver)", "staying": "\(staying)", "timedOut": "\(timedOut)",
                "elapsed.ms": "\(elapsed)",
            ]
        )
        finish()
    }

    /// The handler keeping the connection's record: its frame handler, or in the tick of its upgrade still its
    /// record handler (see `WorkerPipeline.upgradeToWebSocket`).
    private func recordKeeper(of session: WebSocketSession) -> (any ConnectionRecordKeeper)? {
        if session.frameHandler.record != nil { return session.frameHandler }
        return try? session.channel.pipeline.syncOperations.handler(type: ConnectionRecordHandler.self)
    }
}

@available(*, unavailable)
extension HandOverSender: Sendable {}
