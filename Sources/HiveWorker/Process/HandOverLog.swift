import HiveIPC
import Logging
import NIOCore

/// Reload, replacement side: what this process delivered to its own clients, or could not deliver, during its first
/// `window` (broadcasts, channel messages, pushes to connections it does not hold), kept so that a connection handed
/// over later gets them too. On the event loop.
///
/// Why this makes a hand-over exactly-once: the retired process stops reading the inbox at `retire`, so every
/// record after that is read by the replacement, and the retired process delivers none of them. A handed-over
/// connection therefore got everything up to `retire` from the retired process, gets this log (everything after
/// `retire` until its adoption) replayed at adoption, in order, and everything after from the live path.
final class HandOverLog {
    enum Entry {
        case broadcast(ByteBuffer, messages: Int)
        case channel(ChannelBatch)
        case push(ConnectionID, ByteBuffer)
    }

    /// A channel's batch: the plain frames for a connection without envelopes, the entries (with their
    /// positions) for one with them, whose cursor decides what it has not had yet.
    final class ChannelBatch {
        let channel: String
        let frames: ByteBuffer
        let entries: [ChannelEntry]
        /// Encoded at the first replay to an enveloped connection, then shared by the others.
        private(set) lazy var envelopes = ChannelEnvelope.frames(channel: channel, entries: entries)

        init(channel: String, frames: ByteBuffer, entries: [ChannelEntry]) {
            self.channel = channel
            self.frames = frames
            self.entries = entries
        }

        var size: Int { frames.readableBytes + entries.reduce(0) { $0 + $1.payload.count + 32 } }
    }

    /// Longer than a retired process may take to hand over (`HandOverSender.timeout`).
    static let window = TimeAmount.seconds(15)
    /// A log past this stops (and says so at the next adoption): connections adopted later miss what it dropped.
    /// Only a replacement keeps one (the master says so at its start: `WorkerConfiguration.replacesRetiredProcess`).
    static let maxBytes = 32 << 20

    private var entries: [Entry] = []
    private var bytes = 0
    private(set) var overflowed = false
    private var overflowReported = false
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func record(_ entry: Entry) {
        guard !overflowed else { return }
        let size: Int
        switch entry {
        case .broadcast(let frames, _), .push(_, let frames): size = frames.readableBytes
        case .channel(let batch): size = batch.size
        }
        guard bytes + size <= Self.maxBytes else {
            overflowed = true
            entries = []
            return
        }
        bytes += size
        entries.append(entry)
    }

    /// Writes what `session` missed since `retire` (without a flush: the caller flushes). Returns the messages.
    @discardableResult
    func replay(to session: WebSocketSession, channels: Set<String>, hive: HiveServer) -> Int {
        if overflowed && !overflowReported {
            overflowReported = true
            logger.warning(
                "connections handed over by the retired worker miss what was published while they moved (too much)",
                metadata: ["connection.id": "\(session.id)", "limit.bytes": "\(Self.maxBytes)"]
            )
        }
        var sent = 0
        for entry in entries {
            switch entry {
            case .broadcast(let frames, let messages):
                if session.send(encodedFrames: session.compressedIfAgreed(frames), messages: messages, flush: false) {
                    sent += messages
                }
            case .channel(let batch) where channels.contains(batch.channel):
                if let cursor = hive.channelIndex.cursor(session.id, in: batch.channel) {
                    sent += hive.deliverLogged(batch.entries, envelopes: batch.envelopes, to: session, cursor: cursor,
                                               channel: batch.channel)
                } else if session.send(
                    encodedFrames: session.compressedIfAgreed(batch.frames), messages: batch.entries.count, flush: false
                ) {
                    sent += batch.entries.count
                }
            case .push(let id, let frames) where id == session.id:
                if session.send(encodedFrames: session.compressedIfAgreed(frames), messages: 1, flush: false) {
                    sent += 1
                }
            default:
                continue
            }
        }
        return sent
    }
}

@available(*, unavailable)
extension HandOverLog: Sendable {}
