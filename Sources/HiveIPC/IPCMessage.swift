/// The records processes exchange over their Unix sockets (SOCK_SEQPACKET: one message per record).
///
/// master -> worker: `connection` (with the socket attached), `retire`, `healthCheck`. (Stopping is SIGTERM: it
/// must reach a worker that no longer reads its inbox, too.)
/// worker -> worker: `push`, `broadcast`, `disconnect`, `channelMessage`, `subscription`, `binding`, `userMessage`
/// (routed straight to the owner, never via the master). master -> worker: `userPush` (`hive push --user`) too.
/// worker -> master: `ready`, `retired`, `healthy`.
package enum IPCMessage: Sendable, Equatable {
    /// A new connection; the socket travels as SCM_RIGHTS with the record.
    case connection(ConnectionID)
    /// Deliver one WebSocket message to one connection owned by the receiving worker.
    case push(ConnectionID, opcode: UInt8, payload: [UInt8])
    /// Deliver `messages` WebSocket messages to every established WebSocket connection of the receiving worker.
    /// `frames` are the server frames already encoded (by the sender, once for every worker), back to back: the
    /// receiver writes this one buffer to each of its connections.
    case broadcast(frames: [UInt8], messages: Int)
    /// Close one connection owned by the receiving worker with a WebSocket close code (HTTP: just close).
    case disconnect(ConnectionID, code: UInt16, reason: String)
    /// The worker can serve (sent once, after its event loop runs).
    case ready(worker: Int, pid: Int32)
    /// Reload, step 1: stop reading the inbox and stop worker-wide duties (the application's `workerStop`), keep
    /// serving the connections already held until SIGTERM. Its replacement will read the same inbox.
    case retire
    /// Reload, step 2: the worker process has let go of its inbox; the master may start its replacement.
    case retired(worker: Int, pid: Int32)
    /// Is the event loop running? `sequence` is the master's monotonic clock when it sent the check.
    case healthCheck(sequence: UInt64)
    /// The answer to `healthCheck`, sent from the worker's event loop (never from its inbox thread).
    case healthy(worker: Int, pid: Int32, sequence: UInt64)
    /// Deliver `messages` messages to the receiving worker's subscribers of `channel` (a valid channel name).
    /// `entries` are the messages with their history positions (HiveWorker's `ChannelEntryCodec`): the receiver
    /// encodes once what its subscribers need, plain frames or envelopes.
    case channelMessage(channel: String, entries: [UInt8], messages: Int)
    /// Subscribe (or unsubscribe) one connection owned by the receiving worker to `channel`.
    case subscription(ConnectionID, channel: String, subscribe: Bool)
    /// Bind one connection owned by the receiving worker to `user` (a valid user id), or unbind it (nil).
    case binding(ConnectionID, user: String?)
    /// Deliver `messages` WebSocket messages to the receiving worker's connections bound to `user`: `frames` as
    /// in `broadcast`.
    case userMessage(user: String, frames: [UInt8], messages: Int)
    /// Send one message to `user` on every host, as `HiveServer.send(toUser:_:)` does (through Redis when it is
    /// configured): the master's way to have `hive push --user` sent by a worker.
    case userPush(user: String, opcode: UInt8, payload: [UInt8])

    /// Reload hand-over, from a retired process to its replacement (through the inbox they share): one WebSocket
    /// connection, with a copy of its socket as SCM_RIGHTS and its state (`HandOverState`, encoded), whose
    /// beginning may have come ahead in `handOverChunk` records. `to` is the replacement's pid: a later
    /// process reading the inbox (the replacement died) refuses it, so the retired process takes the connection back.
    case handOver(ConnectionID, to: Int32, state: [UInt8])
    /// Part of a hand-over state too big for one record: the receiver keeps the chunks of `id` in order until its
    /// `handOver` record comes.
    case handOverChunk(ConnectionID, state: [UInt8])

    enum Kind: UInt8 {
        case connection = 1, push, broadcast, disconnect, ready = 6, retire, retired, healthCheck, healthy
        case channelMessage = 16, subscription, handOver, handOverChunk
        case binding = 24, userMessage, userPush
    }

    /// Payloads above this travel in a memfd attached to the record, so one record never exceeds the socket's
    /// buffer (about 212 KB by default) and big messages cost one copy into shared memory instead of a stall.
    package static let maxInlinePayload = 60 * 1024
    /// The fixed fields before a payload: at most 11 bytes and a channel name (`channelMessage`).
    static let headerCapacity = 12 + ChannelName.maxLength
    package static let maxRecordSize = maxInlinePayload + headerCapacity
}

/// Byte-level codec for `IPCMessage`. Little-endian fixed fields; payloads last.
enum IPCCodec {
    enum DecodeError: Error, CustomStringConvertible {
        case truncated(kind: UInt8, length: Int)
        case unknownKind(UInt8)
        case missingDescriptor(String)
        case outOfRange(kind: UInt8, field: String, value: UInt64)
        case invalidChannel(kind: UInt8, problem: String)
        case invalidUser(kind: UInt8, bytes: Int)

        var description: String {
            switch self {
            case .truncated(let kind, let length): "IPC record of kind \(kind) is truncated (\(length) bytes)"
            case .unknownKind(let kind): "IPC record has unknown kind \(kind)"
            case .missingDescriptor(let what): "IPC record \(what) arrived without its file descriptor"
            case .outOfRange(let kind, let field, let value): "IPC record of kind \(kind) has \(field) \(value), out of range"
            case .invalidChannel(let kind, let problem): "IPC record of kind \(kind) names a bad channel: \(problem)"
            case .invalidUser(let kind, let bytes):
                "IPC record of kind \(kind) names a bad user id (\(bytes) bytes; 1 to \(UserID.maxLength) of UTF-8 without control characters)"
            }
        }
    }

    /// Encodes everything but an external payload. `payloadInline` false means the payload goes in a memfd.
    static func encode(_ message: IPCMessage, payloadInline: Bool) -> [UInt8] {
        var out: [UInt8] = []
        switch message {
        case .connection(let id):
            out.append(IPCMessage.Kind.connection.rawValue)
            append(id.rawValue, to: &out)
        case .push(let id, let opcode, let payload):
            out.append(IPCMessage.Kind.push.rawValue)
            out.append(payloadInline ? 0 : 1)
            out.append(opcode)
            append(id.rawValue, to: &out)
            if payloadInline { out += payload }
        case .broadcast(let frames, let messages):
            out.reserveCapacity(payloadInline ? frames.count + 10 : 10)
            out.append(IPCMessage.Kind.broadcast.rawValue)
            out.append(payloadInline ? 0 : 1)
            append(UInt64(messages), to: &out)
            if payloadInline { out += frames }
        case .disconnect(let id, let code, let reason):
            out.append(IPCMessage.Kind.disconnect.rawValue)
            append(id.rawValue, to: &out)
            append(UInt64(code), to: &out)
            out += utf8Prefix(reason, maxBytes: 123)
        case .ready(let worker, let pid), .retired(let worker, let pid):
            if case .ready = message {
                out.append(IPCMessage.Kind.ready.rawValue)
            } else {
                out.append(IPCMessage.Kind.retired.rawValue)
            }
            append(UInt64(worker), to: &out)
            append(UInt64(UInt32(bitPattern: pid)), to: &out)
        case .retire:
            out.append(IPCMessage.Kind.retire.rawValue)
        case .healthCheck(let sequence):
            out.append(IPCMessage.Kind.healthCheck.rawValue)
            append(sequence, to: &out)
        case .healthy(let worker, let pid, let sequence):
            out.append(IPCMessage.Kind.healthy.rawValue)
            append(UInt64(worker), to: &out)
            append(UInt64(UInt32(bitPattern: pid)), to: &out)
            append(sequence, to: &out)
        case .channelMessage(let channel, let frames, let messages):  // frames: the entries
            appendNamedFrames(.channelMessage, name: channel.utf8.prefix(ChannelName.maxLength), frames: frames,
                              messages: messages, payloadInline: payloadInline, to: &out)
        case .subscription(let id, let channel, let subscribe):
            out.append(IPCMessage.Kind.subscription.rawValue)
            out.append(subscribe ? 1 : 0)
            append(id.rawValue, to: &out)
            out += channel.utf8.prefix(ChannelName.maxLength)
        case .binding(let id, let user):
            out.append(IPCMessage.Kind.binding.rawValue)
            out.append(user == nil ? 0 : 1)
            append(id.rawValue, to: &out)
            out += (user ?? "").utf8.prefix(UserID.maxLength)
        case .userMessage(let user, let frames, let messages):
            appendNamedFrames(.userMessage, name: user.utf8.prefix(UserID.maxLength), frames: frames,
                              messages: messages, payloadInline: payloadInline, to: &out)
        case .userPush(let user, let opcode, let payload):
            let name = Array(user.utf8.prefix(UserID.maxLength))
            out.reserveCapacity(payloadInline ? payload.count + 4 + name.count : 4 + name.count)
            out.append(IPCMessage.Kind.userPush.rawValue)
            out.append(payloadInline ? 0 : 1)
            out.append(opcode)
            out.append(UInt8(name.count))
            out += name
            if payloadInline { out += payload }
        case .handOver(let id, let pid, let state):
            out.append(IPCMessage.Kind.handOver.rawValue)
            append(id.rawValue, to: &out)
            withUnsafeBytes(of: UInt32(bitPattern: pid).littleEndian) { out.append(contentsOf: $0) }
            out += state
        case .handOverChunk(let id, let state):
            out.append(IPCMessage.Kind.handOverChunk.rawValue)
            append(id.rawValue, to: &out)
            out += state
        }
        return out
    }

    /// Whether the record's payload lives in the attached descriptor (push/broadcast with the external flag).
    static func hasExternalPayload(_ record: UnsafeRawBufferPointer) -> Bool {
        guard record.count >= 2, let kind = IPCMessage.Kind(rawValue: record[0]) else { return false }
        switch kind {
        case .push, .broadcast, .channelMessage, .userMessage, .userPush: return record[1] == 1
        default: return false
        }
    }

    /// Decodes a record; `external` supplies the payload when it travelled in a memfd.
    static func decode(_ record: UnsafeRawBufferPointer, external: [UInt8]?) throws -> IPCMessage {
        guard let first = record.first else { throw DecodeError.truncated(kind: 0, length: 0) }
        guard let kind = IPCMessage.Kind(rawValue: first) else { throw DecodeError.unknownKind(first) }
        func need(_ count: Int) throws {
            if record.count < count { throw DecodeError.truncated(kind: first, length: record.count) }
        }
        // Words come from another process: one above Int.max must fail the record, not trap the reader.
        func int(_ value: UInt64, field: String) throws -> Int {
            guard let int = Int(exactly: value) else { throw DecodeError.outOfRange(kind: first, field: field, value: value) }
            return int
        }
        /// Channel names come from another process: only a valid one is passed on.
        func channelName(_ bytes: Slice<UnsafeRawBufferPointer>) throws -> String {
            let name = String(decoding: bytes, as: UTF8.self)
            if let problem = ChannelName.problem(name) { throw DecodeError.invalidChannel(kind: first, problem: problem) }
            return name
        }
        /// User ids come from another process: only a valid one is passed on.
        func userID(_ bytes: Slice<UnsafeRawBufferPointer>) throws -> String {
            guard let user = UserID.validated(bytes) else {
                throw DecodeError.invalidUser(kind: first, bytes: bytes.count)
            }
            return user
        }
        /// `channelMessage` and `userMessage`: the name's bytes, the message count, where the frames start.
        func namedFrames() throws -> (name: Slice<UnsafeRawBufferPointer>, messages: Int, payloadStart: Int) {
            try need(11)
            let messages = try int(word(record, at: 2), field: "message count")
            let length = Int(record[10])
            try need(11 + length)
            return (record[11..<11 + length], messages, 11 + length)
        }
        switch kind {
        case .connection:
            try need(9)
            return .connection(ConnectionID(rawValue: word(record, at: 1)))
        case .push:
            try need(11)
            let payload = external ?? Array(record[11...])
            return .push(ConnectionID(rawValue: word(record, at: 3)), opcode: record[2], payload: payload)
        case .broadcast:
            try need(10)
            let messages = try int(word(record, at: 2), field: "message count")
            return .broadcast(frames: external ?? Array(record[10...]), messages: messages)
        case .disconnect:
            try need(17)
            let reason = String(decoding: record[17...], as: UTF8.self)
            return .disconnect(
                ConnectionID(rawValue: word(record, at: 1)), code: UInt16(truncatingIfNeeded: word(record, at: 9)),
                reason: reason
            )
        case .ready, .retired:
            try need(17)
            let worker = try int(word(record, at: 1), field: "worker id")
            let pid = Int32(bitPattern: UInt32(truncatingIfNeeded: word(record, at: 9)))
            return kind == .ready ? .ready(worker: worker, pid: pid) : .retired(worker: worker, pid: pid)
        case .retire:
            return .retire
        case .healthCheck:
            try need(9)
            return .healthCheck(sequence: word(record, at: 1))
        case .healthy:
            try need(25)
            let pid = Int32(bitPattern: UInt32(truncatingIfNeeded: word(record, at: 9)))
            let worker = try int(word(record, at: 1), field: "worker id")
            return .healthy(worker: worker, pid: pid, sequence: word(record, at: 17))
        case .channelMessage:
            let (name, messages, payloadStart) = try namedFrames()
            return .channelMessage(channel: try channelName(name), entries: external ?? Array(record[payloadStart...]),
                                   messages: messages)
        case .subscription:
            try need(10)
            guard record[1] <= 1 else { throw DecodeError.outOfRange(kind: first, field: "subscribe flag", value: UInt64(record[1])) }
            let channel = try channelName(record[10...])
            return .subscription(ConnectionID(rawValue: word(record, at: 2)), channel: channel, subscribe: record[1] == 1)
        case .binding:
            try need(10)
            guard record[1] <= 1 else { throw DecodeError.outOfRange(kind: first, field: "bind flag", value: UInt64(record[1])) }
            let id = ConnectionID(rawValue: word(record, at: 2))
            guard record[1] == 1 else { return .binding(id, user: nil) }
            return .binding(id, user: try userID(record[10...]))
        case .userMessage:
            let (name, messages, payloadStart) = try namedFrames()
            return .userMessage(user: try userID(name), frames: external ?? Array(record[payloadStart...]), messages: messages)
        case .userPush:
            try need(4)
            let length = Int(record[3])
            try need(4 + length)
            let user = try userID(record[4..<4 + length])
            return .userPush(user: user, opcode: record[2], payload: external ?? Array(record[(4 + length)...]))
        case .handOver:
            try need(13)
            let pid = Int32(bitPattern: UInt32(truncatingIfNeeded: word(record, at: 5) >> 32))
            return .handOver(ConnectionID(rawValue: word(record, at: 1)), to: pid, state: Array(record[13...]))
        case .handOverChunk:
            try need(9)
            return .handOverChunk(ConnectionID(rawValue: word(record, at: 1)), state: Array(record[9...]))
        }
    }

    /// The first bytes of `text`, at most `maxBytes`, ending on a character boundary: a cut inside a character
    /// would reach the receiver as U+FFFD.
    private static func utf8Prefix(_ text: String, maxBytes: Int) -> [UInt8] {
        let utf8 = Array(text.utf8)
        guard utf8.count > maxBytes else { return utf8 }
        var end = maxBytes
        while end > 0 && utf8[end] & 0xC0 == 0x80 { end -= 1 }  // the first byte left out continues a character
        return Array(utf8[..<end])
    }

    /// `channelMessage` and `userMessage`: kind, external flag, message count, a name of at most 255 bytes, frames.
    private static func appendNamedFrames(_ kind: IPCMessage.Kind, name: Substring.UTF8View,
                                          frames: [UInt8], messages: Int, payloadInline: Bool, to out: inout [UInt8]) {
        out.reserveCapacity(11 + name.count + (payloadInline ? frames.count : 0))
        out.append(kind.rawValue)
        out.append(payloadInline ? 0 : 1)
        append(UInt64(messages), to: &out)
        out.append(UInt8(name.count))
        out += name
        if payloadInline { out += frames }
    }

    private static func append(_ value: UInt64, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func word(_ record: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: record[offset..<offset + 8])) }
        return UInt64(littleEndian: value)
    }
}
