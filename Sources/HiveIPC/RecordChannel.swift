#if canImport(Glibc)
import CHiveShims
import Glibc
#endif

/// One end of a SOCK_SEQPACKET Unix socket carrying `IPCMessage` records, with file descriptors as SCM_RIGHTS.
/// It does not own the descriptor's lifetime decisions beyond `close()`: processes share the sending ends of
/// every worker's inbox, and SEQPACKET keeps each record whole even with many writers.
package struct RecordChannel: Sendable {
    package let fd: Int32

    package init(fd: Int32) { self.fd = fd }

    /// A connected pair, both ends close-on-exec. Buffers are raised so an inbox absorbs bursts.
    package static func pair(while doing: String) throws -> (RecordChannel, RecordChannel) {
        var fds: [Int32] = [-1, -1]
        try syscall("socketpair", while: doing) {
            socketpair(AF_UNIX, CHiveShims_SOCK_SEQPACKET | CHiveShims_SOCK_CLOEXEC, 0, &fds)
        }
        let ends = (RecordChannel(fd: fds[0]), RecordChannel(fd: fds[1]))
        ends.0.raiseBuffers()
        ends.1.raiseBuffers()
        return ends
    }

    /// 4 MiB of queue per direction. Root may force it past the system maximum (SO_SNDBUFFORCE); others get what
    /// the system allows, which only means an earlier "inbox full".
    private func raiseBuffers() {
        var size: Int32 = 4 << 20
        let length = socklen_t(MemoryLayout<Int32>.size)
        if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, length) != 0 {
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, length)
        }
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, length) != 0 {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, length)
        }
    }

    package func close() { _ = Glibc.close(fd) }

    package enum SendResult: Equatable, Sendable {
        case sent
        /// The receiver's queue is full (only with `blocking: false`).
        case wouldBlock
    }

    /// Sends one message. `attach` is the socket of a `.connection` message. Non-blocking sends return
    /// `.wouldBlock` instead of waiting: the master must never block on a worker.
    @discardableResult
    package func send(_ message: IPCMessage, attach: Int32 = -1, blocking: Bool) throws -> SendResult {
        let payload: [UInt8]?
        switch message {
        case .push(_, _, let bytes), .broadcast(let bytes, _), .channelMessage(_, let bytes, _),
            .userMessage(_, let bytes, _), .userPush(_, _, let bytes):
            payload = bytes
        default: payload = nil
        }
        let inline = (payload?.count ?? 0) <= IPCMessage.maxInlinePayload
        var descriptor = attach
        var memfd: Int32 = -1
        if let payload, !inline {
            memfd = try Self.makePayloadFile(payload)
            descriptor = memfd
        }
        defer { if memfd >= 0 { _ = Glibc.close(memfd) } }
        let record = IPCCodec.encode(message, payloadInline: inline)
        let sent = record.withUnsafeBytes { bytes in
            CHiveShims_sendRecord(fd, bytes.baseAddress, bytes.count, descriptor, blocking ? 0 : Int32(MSG_DONTWAIT))
        }
        if sent < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
            throw SystemError("sendmsg", while: "sending \(Self.name(of: message)) on IPC socket \(fd)")
        }
        return .sent
    }

    /// A record arrived but the descriptor sent with it could not be received: the receiving process is at its
    /// open-file limit (the kernel closed the descriptor). For a connection, the slot must be given back.
    package struct DescriptorLost: Error, CustomStringConvertible {
        package let message: IPCMessage
        package var description: String {
            "the descriptor of \(RecordChannel.name(of: message)) was lost: this process is at its open-file limit "
                + "(raise `ulimit -n`, or lower --max-connections)"
        }
    }

    /// Receives one message. Returns nil at end of stream (every sender closed), or when non-blocking and
    /// nothing is queued. A `.connection` message comes with its socket in `descriptor`.
    /// - Throws: `DescriptorLost` when the record's descriptor could not be received.
    package func receive(blocking: Bool, buffer: UnsafeMutableRawBufferPointer) throws -> (IPCMessage, descriptor: Int32)? {
        var descriptor: Int32 = -1
        let length = CHiveShims_recvRecord(fd, buffer.baseAddress, buffer.count, &descriptor, blocking ? 0 : Int32(MSG_DONTWAIT))
        if length < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            throw SystemError("recvmsg", while: "reading IPC socket \(fd)")
        }
        if length == 0 { return nil }
        let record = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
        if descriptor == CHiveShims_DESCRIPTOR_LOST {
            throw DescriptorLost(message: try IPCCodec.decode(record, external: []))
        }
        do {
            if IPCCodec.hasExternalPayload(record) {
                guard descriptor >= 0 else { throw IPCCodec.DecodeError.missingDescriptor("with an external payload") }
                let payload = try Self.readPayloadFile(descriptor)
                _ = Glibc.close(descriptor)
                descriptor = -1
                return (try IPCCodec.decode(record, external: payload), -1)
            }
            let message = try IPCCodec.decode(record, external: nil)
            if case .connection = message {
                guard descriptor >= 0 else { throw IPCCodec.DecodeError.missingDescriptor("for a new connection") }
            } else if case .handOver = message {
                guard descriptor >= 0 else { throw IPCCodec.DecodeError.missingDescriptor("for a handed-over connection") }
            } else if descriptor >= 0 {
                _ = Glibc.close(descriptor)  // nobody asked for it: don't leak it
                descriptor = -1
            }
            return (message, descriptor)
        } catch {
            if descriptor >= 0 { _ = Glibc.close(descriptor) }
            throw error
        }
    }

    private static func makePayloadFile(_ payload: [UInt8]) throws -> Int32 {
        let memfd = try syscall("memfd_create", while: "storing a \(payload.count)-byte message for another worker") {
            CHiveShims_memfd_create("hive-payload", UInt32(CHiveShims_MFD_CLOEXEC))
        }
        var offset = 0
        while offset < payload.count {
            let n = payload.withUnsafeBytes { write(memfd, $0.baseAddress! + offset, payload.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let error = SystemError("write", while: "storing a \(payload.count)-byte message for another worker")
                _ = Glibc.close(memfd)
                throw error
            }
            offset += n
        }
        return memfd
    }

    private static func readPayloadFile(_ memfd: Int32) throws -> [UInt8] {
        var st = stat()
        try syscall("fstat", while: "reading a message from another worker") { fstat(memfd, &st) }
        let size = Int(st.st_size)
        var payload = [UInt8](repeating: 0, count: size)
        var offset = 0
        while offset < size {
            let n = payload.withUnsafeMutableBytes { pread(memfd, $0.baseAddress! + offset, size - offset, off_t(offset)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("pread", while: "reading a \(size)-byte message from another worker")
            }
            if n == 0 { break }
            offset += n
        }
        return payload
    }

    static func name(of message: IPCMessage) -> String {
        switch message {
        case .connection(let id): "connection \(id)"
        case .push(let id, _, let payload): "a \(payload.count)-byte push to connection \(id)"
        case .broadcast(let frames, let messages): "a broadcast of \(messages) messages (\(frames.count) bytes)"
        case .disconnect(let id, _, _): "a disconnect of connection \(id)"
        case .ready(let worker, _): "worker \(worker)'s ready signal"
        case .retire: "a retire request"
        case .retired(let worker, _): "worker \(worker)'s retired signal"
        case .healthCheck: "a health check"
        case .healthy(let worker, _, _): "worker \(worker)'s answer to a health check"
        case .channelMessage(let channel, let frames, let messages):
            "\(messages) messages (\(frames.count) bytes) to the subscribers of channel \(channel)"
        case .subscription(let id, let channel, let subscribe):
            "\(subscribe ? "a subscription" : "an unsubscription") of connection \(id) to channel \(channel)"
        case .binding(let id, let user): user == nil ? "an unbinding of connection \(id)" : "a binding of connection \(id) to a user"
        case .userMessage(_, let frames, let messages): "\(messages) messages (\(frames.count) bytes) to a user's connections"
        case .userPush(_, _, let payload): "a \(payload.count)-byte message to a user"
        case .handOver(let id, _, let state): "the hand-over of connection \(id) (\(state.count) bytes of state)"
        case .handOverChunk(let id, let state): "\(state.count) bytes of connection \(id)'s hand-over state"
        }
    }
}
