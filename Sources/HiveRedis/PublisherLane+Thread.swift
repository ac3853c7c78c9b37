import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The lane's thread: take the queue, connect if needed, write the batch, then `poll` the connection and the wake
/// pipe until a reply, a new publish or the oldest deadline. hiredis connects and authenticates (blocking, bounded
/// by `timeout`); after that the socket is non-blocking and read through `RESPStream`, so
/// writing a batch and reading replies overlap.
extension PublisherLane {
    struct Outcome {
        let continuation: CheckedContinuation<PublishReceipt, any Error>?
        let bytes: Int
        let result: Result<PublishReceipt, RedisPublishError>
    }

    func run() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            lock.lock()
            swap(&queue, &spare)
            let done = spare.isEmpty && inFlightHead == inFlight.count && state == .stopping
            // From here on an enqueue wakes the poll below, even one made while this batch is being written.
            sleeping = !done
            lock.unlock()
            if done { break }
            if !spare.isEmpty {
                send(spare)
                spare.removeAll(keepingCapacity: true)
            }
            waitForIO(buffer)
        }
        connection = nil
    }

    // MARK: Writing

    private func send(_ batch: [Request]) {
        if connection == nil {
            let now = Monotonic.seconds()
            if now < retryAt {
                fail(batch, .unreachable, reason: "Redis is unreachable (last attempt: \(lastFailure))",
                     hint: "nothing was sent; the next connection attempt is made by a publish in \(((retryAt - now) * 1000).rounded() / 1000) s "
                        + "(back-off); check that redis-server runs there and that --redis points at it")
                return
            }
            do {
                try connect()
            } catch {
                lastFailure = (error as? RedisError)?.message ?? "\(error)"
                retryAt = Monotonic.seconds() + delay * Double.random(in: 0.8...1.2)
                delay = min(delay * 2, 5)
                if !loggedDown {
                    logger.warning("redis publisher cannot connect; publishes fail until a later one can", metadata: [
                        "redis.address": "\(address)", "error": "\(lastFailure)",
                        "hint": "publishes are retried with back-off (at most every 5 s); check that redis-server runs there",
                    ])
                    loggedDown = true
                }
                fail(batch, .unreachable, reason: "Redis is unreachable: \(lastFailure)",
                     hint: "nothing was sent; a later publish connects again (back-off, at most every 5 s); check that redis-server "
                        + "runs there and that --redis points at it")
                return
            }
        }
        let now = Monotonic.seconds()
        var expired: [Request] = []
        for request in batch {
            // Only possible after a slow connect: the call has had its time already.
            guard request.deadline > now else {
                expired.append(request)
                continue
            }
            if let history = request.history {
                if scriptSHA == nil && !scriptRequested {
                    // Pipelined like the rest: until its reply gives the SHA1, history publishes send `EVAL`.
                    output += RESPStream.encode([Array("SCRIPT".utf8), Array("LOAD".utf8), Array(ChannelHistory.script.utf8)])
                    inFlight.append(InFlight(channel: request.channel, bytes: 0, history: nil, payload: [], deadline: request.deadline,
                                             continuation: nil))
                    scriptRequested = true
                }
                Self.encodeHistory(sha: scriptSHA, channel: request.channel, payload: request.payload, history: history, into: &output)
            } else {
                Self.encodePublish(channel: request.channel, payload: request.payload, into: &output)
            }
            inFlight.append(InFlight(channel: request.channel, bytes: request.payload.count, history: request.history,
                                     payload: request.history == nil ? [] : request.payload, deadline: request.deadline,
                                     continuation: request.continuation))
        }
        if !expired.isEmpty {
            fail(expired, .timedOut, reason: "connecting to Redis took longer than \(configuration.timeout.compactText) s (--redis-timeout)",
                 hint: "nothing was sent; is Redis overloaded or unresponsive? A later publish tries again")
        }
        flush()
    }

    /// `*3 $7 PUBLISH $n channel $m payload` appended in place: no array per argument on the hot path.
    static func encodePublish(channel: String, payload: [UInt8], into output: inout [UInt8]) {
        output.append(contentsOf: "*3\r\n$7\r\nPUBLISH\r\n$".utf8)
        output.append(contentsOf: String(channel.utf8.count).utf8)
        output.append(contentsOf: [0x0D, 0x0A])
        output.append(contentsOf: channel.utf8)
        output.append(contentsOf: "\r\n$".utf8)
        output.append(contentsOf: String(payload.count).utf8)
        output.append(contentsOf: [0x0D, 0x0A])
        output.append(contentsOf: payload)
        output.append(contentsOf: [0x0D, 0x0A])
    }

    /// `EVALSHA sha 2 meta stream channel payload size ttl`, or `EVAL script …` when `sha` is nil (after a
    /// `NOSCRIPT`: Redis lost its script cache, and `EVAL` fills it again).
    static func encodeHistory(sha: [UInt8]?, channel: String, payload: [UInt8], history: HistoryTarget, into output: inout [UInt8]) {
        let command: [[UInt8]] = sha.map { [Array("EVALSHA".utf8), $0] } ?? [Array("EVAL".utf8), Array(ChannelHistory.script.utf8)]
        output += RESPStream.encode(command + ChannelHistory.arguments(keys: history.keys, redisChannel: channel, payload: payload,
                                                                      policy: history.policy))
    }

    /// Connect and AUTH, each bounded by `timeout`. The calls waiting for it were queued moments ago: a batch queued
    /// during a connection attempt either finds the connection made or fails at once (back-off), never waits for a
    /// second attempt; those whose deadline passed meanwhile fail before anything is sent.
    private func connect() throws {
        let made = try RedisConnection(url: configuration.url, timeout: configuration.timeout)
        try made.authenticate()
        let fd = made.fd
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        connection = made
        scriptSHA = nil
        scriptRequested = false
        stream = RESPStream(maxBulk: 64 * 1024)
        delay = 0.1
        retryAt = 0
        if loggedDown {
            logger.notice("redis publisher connected", metadata: ["redis.address": "\(address)", "redis.connection": "\(index)"])
            loggedDown = false
        }
    }

    /// Writes what the socket takes now; the rest waits for POLLOUT.
    private func flush() {
        guard let connection else { return }
        let fd = connection.fd
        while outputOffset < output.count {
            let n = output.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + outputOffset, $0.count - outputOffset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return }
                lost("the connection broke while sending (\(String(cString: strerror(errno))))")
                return
            }
            outputOffset += n
        }
        // A burst of large payloads must not pin its buffer for the life of the worker.
        if output.capacity > 4 << 20 { output = [] } else { output.removeAll(keepingCapacity: true) }
        outputOffset = 0
    }

    // MARK: Waiting and reading

    private func waitForIO(_ buffer: UnsafeMutableRawBufferPointer) {
        var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        if let connection {
            // POLLIN also while idle: a connection Redis closes (restart, `timeout` setting) is noticed and freed.
            let events = Int32(POLLIN) | (outputOffset < output.count ? Int32(POLLOUT) : 0)
            fds.append(pollfd(fd: connection.fd, events: Int16(events), revents: 0))
        }
        var timeout: Int32 = -1
        if inFlightHead < inFlight.count {
            let remaining = inFlight[inFlightHead].deadline - Monotonic.seconds()
            timeout = Int32(max(0, min(remaining * 1000 + 1, 60_000)))
        }
        _ = poll(&fds, nfds_t(fds.count), timeout)  // EINTR: looked at again on the next turn
        if fds[0].revents != 0 {
            var drain = [UInt8](repeating: 0, count: 64)
            while read(wakeRead, &drain, drain.count) > 0 {}
        }
        if connection != nil, fds.count > 1 {
            let revents = Int32(fds[1].revents)
            if revents & Int32(POLLOUT) != 0 { flush() }
            if connection != nil, revents & (Int32(POLLIN) | Int32(POLLHUP) | Int32(POLLERR)) != 0 { readReplies(buffer) }
        }
        if inFlightHead < inFlight.count, inFlight[inFlightHead].deadline <= Monotonic.seconds() {
            drop(.timedOut, reason: "no reply from Redis within \(configuration.timeout.compactText) s (--redis-timeout)",
                 hint: "the message may or may not have been published; is Redis overloaded or unresponsive? The connection was "
                    + "closed and a later publish reconnects",
                 log: "redis publisher timed out waiting for replies; connection closed")
        }
    }

    private func readReplies(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let fd = connection?.fd else { return }
        var replies: [RESPStream.Value] = []
        var failure: String?
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if n < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK { failure = "the connection broke (\(String(cString: strerror(errno))))" }
                break
            }
            if n == 0 {
                failure = "Redis closed the connection"
                break
            }
            do {
                try stream.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), into: &replies)
            } catch {
                failure = "Redis sent something that is not a PUBLISH reply (\(error))"
                break
            }
            if n < buffer.count { break }
        }
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(replies.count)
        var resend: [InFlight] = []
        each: for reply in replies {
            guard inFlightHead < inFlight.count else {
                failure = "Redis sent a reply to no command"
                break
            }
            let call = inFlight[inFlightHead]
            guard call.continuation != nil else {
                // Our SCRIPT LOAD: a refusal leaves `EVAL`, whose own error then reaches the callers.
                if case .string(let sha) = reply { scriptSHA = sha }
                inFlightHead += 1
                continue
            }
            let result: Result<PublishReceipt, RedisPublishError>
            switch reply {
            case .integer(let receivers) where call.history == nil:
                result = .success(PublishReceipt(receivers: receivers, position: nil))
            case .array(let values) where call.history != nil:
                guard let receipt = Self.receipt(values) else {
                    failure = "Redis answered the history script with \(reply), not {epoch, offset, receivers}"
                    break each
                }
                result = .success(receipt)
            case .error(let message) where call.history != nil && message.hasPrefix("NOSCRIPT"):
                // Redis lost its script cache (SCRIPT FLUSH, a failover): send it again with the script itself.
                inFlightHead += 1
                resend.append(call)
                scriptSHA = nil
                scriptRequested = false
                continue
            case .error(let message):
                let hint = message.hasPrefix("NOAUTH") ? "give the password (--redis-password-file)" : "see the Redis error; the message was not published"
                result = .failure(error(.rejected, call.channel, reason: "Redis answered \(message)", hint: hint))
            default:
                failure = "Redis answered PUBLISH with \(reply), not a number of receivers"
                break each
            }
            inFlightHead += 1
            outcomes.append(Outcome(continuation: call.continuation, bytes: call.bytes, result: result))
        }
        if inFlightHead == inFlight.count {
            inFlight.removeAll(keepingCapacity: true)
            inFlightHead = 0
        } else if inFlightHead > 1024 && inFlightHead * 2 > inFlight.count {
            inFlight.removeFirst(inFlightHead)
            inFlightHead = 0
        }
        resume(outcomes)
        if let failure {
            lost(failure)
            resume(resend.map {
                Outcome(continuation: $0.continuation, bytes: $0.bytes, result: .failure(error(
                    .connectionLost, $0.channel, reason: failure, hint: "the message was not published (NOSCRIPT); try again")))
            })
            return
        }
        for call in resend {
            Self.encodeHistory(sha: nil, channel: call.channel, payload: call.payload, history: call.history!, into: &output)
            inFlight.append(call)
        }
        if !resend.isEmpty { flush() }
    }

    /// The script's `{epoch, offset, receivers}`.
    static func receipt(_ values: [RESPStream.Value]) -> PublishReceipt? {
        guard values.count == 3, case .string(let epoch) = values[0], HistoryPosition.isEpoch(epoch),
            case .integer(let offset) = values[1], offset > 0, case .integer(let receivers) = values[2]
        else { return nil }
        return PublishReceipt(receivers: receivers, position: HistoryPosition(epoch: String(decoding: epoch, as: UTF8.self),
                                                                             offset: UInt64(offset)))
    }

    // MARK: Failing

    /// The connection is gone: calls waiting for a reply fail (their message may have been published), and the next
    /// publish reconnects at once.
    private func lost(_ cause: String) {
        let waiting = inFlight.count - inFlightHead
        drop(.connectionLost, reason: "\(cause) before the reply",
             hint: "the message may or may not have been published; a later publish reconnects",
             log: waiting > 0 ? "redis publisher connection lost; its waiting publishes failed" : nil)
        if waiting == 0 {
            logger.info("redis publisher connection closed while idle; the next publish reconnects", metadata: [
                "redis.address": "\(address)", "error": "\(cause)",
            ])
        }
    }

    private func drop(_ code: RedisPublishError.Code, reason: String, hint: String, log message: String?) {
        let waiting = inFlight[inFlightHead...]
        if let message {
            logger.warning("\(message)", metadata: [
                "redis.address": "\(address)", "redis.connection": "\(index)", "publishes.failed": "\(waiting.count)",
                "error": "\(reason)", "hint": "a later publish reconnects",
            ])
            loggedDown = true
        }
        let outcomes = waiting.map {
            Outcome(continuation: $0.continuation, bytes: $0.bytes, result: .failure(error(code, $0.channel, reason: reason, hint: hint)))
        }
        inFlight = []
        inFlightHead = 0
        output = []
        outputOffset = 0
        connection = nil
        stream = RESPStream(maxBulk: 64 * 1024)
        retryAt = 0
        delay = 0.1
        resume(outcomes)
    }

    private func fail(_ requests: [Request], _ code: RedisPublishError.Code, reason: String, hint: String) {
        resume(requests.map {
            Outcome(continuation: $0.continuation, bytes: $0.payload.count, result: .failure(error(code, $0.channel, reason: reason, hint: hint)))
        })
    }

    /// Gives the calls' places in the limits back, then resumes them in order.
    private func resume(_ outcomes: [Outcome]) {
        let outcomes = outcomes.filter { $0.continuation != nil }  // not our own SCRIPT LOAD
        guard !outcomes.isEmpty else { return }
        let bytes = outcomes.reduce(0) { $0 + $1.bytes }
        lock.withLock {
            pending -= outcomes.count
            pendingBytes -= bytes
        }
        for outcome in outcomes {
            switch outcome.result {
            case .success(let receipt): outcome.continuation?.resume(returning: receipt)
            case .failure(let error): outcome.continuation?.resume(throwing: error)
            }
        }
    }
}
