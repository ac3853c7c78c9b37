import HiveIPC
import Logging
import NIOCore
import NIOWebSocket

/// One established WebSocket connection of this worker: the write side (pushes, broadcasts, replies) and the
/// events of its frame handler. Lives on the worker's event loop.
final class WebSocketSession: WebSocketFrameHandlerDelegate {
    let connection: HiveConnection
    let channel: Channel
    let writer: WebSocketRawWriter
    weak var frameHandler: WebSocketFrameHandler?
    private let hive: Hive
    private var isClosing = false
    private var needsFlush = false

    init(connection: HiveConnection, channel: Channel, writer: WebSocketRawWriter, hive: Hive) {
        self.connection = connection
        self.channel = channel
        self.writer = writer
        self.hive = hive
    }

    var id: ConnectionID { connection.id }

    /// Writes pre-encoded frames (`messages` of them). A client whose queue is already past --max-output-buffer is
    /// a slow consumer: it is closed with 1008 instead of growing the queue, so it never slows the other clients of
    /// this worker. Without `flush`, the table flushes it at the end of the batch. Returns whether it was queued.
    @discardableResult
    func send(encodedFrames: ByteBuffer, messages: Int, flush: Bool = true) -> Bool {
        guard !isClosing else { return false }
        guard channel.isWritable else {
            hive.registry.increment(worker: hive.workerID, .slowConsumers)
            hive.logger.info(
                "closing a slow WebSocket consumer",
                metadata: ["connection.id": "\(id)", "queued.limit": "\(hive.limits.maxOutputBuffer)"]
            )
            close(code: .policyViolation, reason: "output queue over \(hive.limits.maxOutputBuffer) bytes")
            return false
        }
        writer.write(encodedFrames, promise: nil)
        if flush {
            writer.flush()
        } else if !needsFlush {
            needsFlush = true
            hive.table.markUnflushed(self)
        }
        hive.registry.add(messages, to: .framesOut, of: id)
        hive.registry.increment(worker: hive.workerID, .messagesOut, by: UInt64(messages))
        return true
    }

    func flushIfNeeded() {
        guard needsFlush else { return }
        needsFlush = false
        writer.flush()
    }

    func close(code: WebSocketErrorCode, reason: String) {
        guard !isClosing else { return }
        isClosing = true
        hive.registry.setProtocol(id, .closing)
        if let frameHandler {
            frameHandler.initiateClose(code: code, reason: reason)
        } else {
            channel.close(promise: nil)
        }
    }

    // MARK: WebSocketFrameHandlerDelegate

    func webSocketReceived(_ message: WebSocketMessage) {
        hive.registry.increment(worker: hive.workerID, .messagesIn)
        let hiveMessage: HiveMessage
        switch message.kind {
        case .text: hiveMessage = .text(String(buffer: message.data))
        case .binary: hiveMessage = .binary(Array(buffer: message.data))
        }
        do {
            try hive.application.message(hiveMessage, from: connection, hive: hive)
        } catch {
            hive.logger.error(
                "message hook failed; closing the connection",
                metadata: ["connection.id": "\(id)", "error": "\(error)"]
            )
            close(code: .unexpectedServerError, reason: "application error")
        }
    }

    func webSocketFrameRead(bytes: Int) {
        hive.registry.add(1, to: .framesIn, of: id)
    }

    func webSocketFrameWritten(bytes: Int) {
        hive.registry.add(1, to: .framesOut, of: id)
    }

    func webSocketClosing(code: WebSocketErrorCode, initiatedByPeer: Bool) {
        isClosing = true
        hive.registry.setProtocol(id, .closing)
        switch code {
        case .protocolError, .dataInconsistentWithMessage, .messageTooLarge:
            hive.registry.increment(worker: hive.workerID, .protocolErrors)
        default:
            break
        }
    }
}

@available(*, unavailable)
extension WebSocketSession: Sendable {}
