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
        case channel(String, ByteBuffer, messages: Int)
        case push(ConnectionID, ByteBuffer)
    }

    /// Longer than a retired process may take to hand over (`HandOverSender.timeout`).
    static let window = TimeAmount.seconds(15)
    /// A log past this stops (and says so at the next adoption): connections adopted later miss what it dropped.
    /// Every process keeps the log for its first seconds (it cannot tell a reload's replacement from a first start),
    /// so this also bounds what a busy first start costs.
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
        case .broadcast(let frames, _), .channel(_, let frames, _), .push(_, let frames): size = frames.readableBytes
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
    func replay(to session: WebSocketSession, channels: Set<String>) -> Int {
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
            case .channel(let channel, let frames, let messages) where channels.contains(channel):
                if session.send(encodedFrames: session.compressedIfAgreed(frames), messages: messages, flush: false) {
                    sent += messages
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
