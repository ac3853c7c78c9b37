import HiveIPC
import NIOCore
import NIOWebSocket

// Delivery of records addressed to this worker's connections: from its own hooks, or from other workers' inbox
// records. Always on the event loop.
extension Hive {
    func deliver(_ record: IPCMessage) {
        eventLoop.preconditionInEventLoop()
        switch record {
        case .push(let id, let opcode, let payload):
            // The registry said websocket when the push was made; the connection may have closed since.
            guard let session = table.sessions[id] else {
                registry.worker(workerID, .pushesFailed).wrappingIncrement(ordering: .relaxed)
                return
            }
            session.send(encodedFrame: encode(opcode: opcode, payload: payload))
        case .broadcast(let opcode, let payload):
            guard !table.sessions.isEmpty else { return }
            registry.increment(worker: workerID, .broadcasts)
            table.broadcast(encodedFrame: encode(opcode: opcode, payload: payload))
        case .disconnect(let id, let code, let reason):
            if let session = table.sessions[id] {
                session.close(code: WebSocketErrorCode(codeNumber: Int(code)), reason: reason)
            } else {
                table.channels[id]?.close(promise: nil)
            }
        case .connection, .stop, .ready, .retire, .retired:
            preconditionFailure("\(record) is not a delivery")
        }
    }

    private func encode(opcode: UInt8, payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: payload.count)
        buffer.writeBytes(payload)
        return WebSocketFrameCodec.encode(
            opcode: WebSocketOpcode(encodedWebSocketOpcode: opcode) ?? .binary,
            payload: buffer,
            allocator: ByteBufferAllocator()
        )
    }
}
