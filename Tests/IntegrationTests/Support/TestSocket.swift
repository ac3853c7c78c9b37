#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A point in time on the monotonic clock; every read takes one so that a whole response (many `recv`s) shares a
/// single budget instead of each `recv` getting the full timeout.
struct TestDeadline {
    let seconds: TimeInterval
    private let end: ContinuousClock.Instant

    init(seconds: TimeInterval) {
        self.seconds = seconds
        self.end = .now + .nanoseconds(Int64(max(0, seconds) * 1e9))
    }

    var remaining: TimeInterval {
        let left = (self.end - .now).components
        return max(0, TimeInterval(left.seconds) + TimeInterval(left.attoseconds) / 1e18)
    }
}

/// One blocking TCP connection to 127.0.0.1 plus the bytes received but not yet consumed.
///
/// Shared by HTTPTestClient and WebSocketTestClient (the WebSocket upgrade is an HTTP exchange on the same
/// bytes). Blocking I/O with SO_RCVTIMEO, re-armed before every `recv` with what is left of the caller's deadline,
/// keeps tests free of event loops while still never hanging forever.
final class TestSocket {
    let port: Int
    private var fd: Int32
    /// Received and not yet consumed by a parser. Survives a peer close so a test can still parse the last reply.
    private(set) var buffer: [UInt8] = []
    /// Set once `recv` returned 0 or ECONNRESET; after that reads only drain `buffer`.
    private(set) var peerClosed = false

    enum ReadResult {
        case data
        case timedOut
        case closed
    }

    /// Connects to 127.0.0.1:`port`. `timeout` bounds the connect and every later `send` (via SO_SNDTIMEO) so a
    /// server that stops reading fails the test instead of blocking it.
    init(port: Int, timeout: TimeInterval) throws {
        self.port = port
        #if canImport(Glibc)
        self.fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        self.fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard self.fd >= 0 else {
            throw TestClientError.syscall(call: "socket()", doing: "opening a client socket", errno: errno)
        }
        do {
            try self.setTimeout(SO_SNDTIMEO, seconds: timeout)
            var address = Self.loopback(port: port)
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(self.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard result == 0 else {
                throw TestClientError.syscall(call: "connect()", doing: "connecting to 127.0.0.1:\(port)", errno: errno)
            }
            // Tests send small requests and expect them on the wire at once; Nagle would only add latency.
            var one: Int32 = 1
            _ = setsockopt(self.fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        } catch {
            systemClose(self.fd)
            self.fd = -1
            throw error
        }
    }

    deinit {
        self.close()
    }

    var isOpen: Bool { self.fd >= 0 }

    func close() {
        if self.fd >= 0 {
            systemClose(self.fd)
            self.fd = -1
        }
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    // MARK: Writing

    /// Writes all of `bytes`, looping over short writes. MSG_NOSIGNAL turns a write to a closed peer into EPIPE
    /// instead of a SIGPIPE that would kill the whole test runner.
    func send(_ bytes: [UInt8]) throws {
        guard self.fd >= 0 else { throw TestClientError.misuse("send on a closed test client (port \(self.port))") }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                systemSend(self.fd, raw.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK {
                    throw TestClientError.timedOut(
                        seconds: self.timeout(SO_SNDTIMEO),
                        waitingFor: "the server to read \(bytes.count - offset) more bytes on port \(self.port)"
                    )
                }
                throw TestClientError.syscall(
                    call: "send()", doing: "writing \(bytes.count) bytes to 127.0.0.1:\(self.port)", errno: code)
            }
            offset += written
        }
    }

    /// One non-blocking `send` of `bytes[offset...]`: the count the kernel took, 0 when its buffer is full, nil once
    /// the peer is gone (EPIPE, ECONNRESET). For floods that must never block the test.
    func sendSome(_ bytes: [UInt8], from offset: Int) -> Int? {
        guard self.fd >= 0, offset < bytes.count else { return self.fd >= 0 ? 0 : nil }
        let written = bytes.withUnsafeBytes { raw in
            systemSend(self.fd, raw.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
        }
        if written >= 0 { return written }
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : nil
    }

    /// Shrinks the kernel's receive buffer, so a client that reads little is noticed as slow after a small backlog
    /// instead of the several MiB loopback TCP would otherwise absorb.
    func setReceiveBuffer(bytes: Int) {
        var size = Int32(bytes)
        _ = setsockopt(self.fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    // MARK: Reading

    /// One `recv` of whatever is available, appended to `buffer`. A deadline that has already passed still polls
    /// once without blocking, so `within: 0` means "is anything there right now".
    func readSome(deadline: TestDeadline) throws -> ReadResult {
        guard !self.peerClosed, self.fd >= 0 else { return .closed }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let remaining = deadline.remaining
            var flags: Int32 = 0
            if remaining > 0 {
                try self.setTimeout(SO_RCVTIMEO, seconds: remaining)
            } else {
                flags = Int32(MSG_DONTWAIT)
            }
            let count = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress!, $0.count, flags) }
            if count > 0 {
                self.buffer.append(contentsOf: chunk[0..<count])
                return .data
            }
            if count == 0 {
                self.peerClosed = true
                return .closed
            }
            let code = errno
            switch code {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                // SO_RCVTIMEO may round down; only report a timeout once the deadline really passed.
                if deadline.remaining > 0 { continue }
                return .timedOut
            case ECONNRESET:
                self.peerClosed = true
                return .closed
            default:
                throw TestClientError.syscall(call: "recv()", doing: "reading from 127.0.0.1:\(self.port)", errno: code)
            }
        }
    }

    /// Reads until `buffer` holds at least `count` bytes, or throws.
    func fill(to count: Int, deadline: TestDeadline, waitingFor what: String) throws {
        while self.buffer.count < count {
            try self.readMore(deadline: deadline, waitingFor: what)
        }
    }

    /// Consumes and returns everything up to `delimiter`; the delimiter itself is consumed but not returned.
    func read(until delimiter: [UInt8], deadline: TestDeadline, waitingFor what: String) throws -> [UInt8] {
        var searchFrom = 0
        while true {
            if let index = Self.find(delimiter, in: self.buffer, from: searchFrom) {
                let result = Array(self.buffer[0..<index])
                self.buffer.removeFirst(index + delimiter.count)
                return result
            }
            // A delimiter can straddle two reads, so resume the search just before the old end.
            searchFrom = max(0, self.buffer.count - delimiter.count + 1)
            try self.readMore(deadline: deadline, waitingFor: what)
        }
    }

    func read(exactly count: Int, deadline: TestDeadline, waitingFor what: String) throws -> [UInt8] {
        try self.fill(to: count, deadline: deadline, waitingFor: what)
        return self.consume(count)
    }

    /// Everything until the peer closes: the body of a response delimited by connection close.
    func readToEnd(deadline: TestDeadline, waitingFor what: String) throws -> [UInt8] {
        while true {
            switch try self.readSome(deadline: deadline) {
            case .data: continue
            case .closed: return self.consume(self.buffer.count)
            case .timedOut: throw TestClientError.timedOut(seconds: deadline.seconds, waitingFor: what)
            }
        }
    }

    func consume(_ count: Int) -> [UInt8] {
        let result = Array(self.buffer[0..<count])
        self.buffer.removeFirst(count)
        return result
    }

    /// Waits up to the deadline for the peer to close, keeping any data that arrives first in `buffer`.
    func waitForClose(deadline: TestDeadline) throws -> Bool {
        while true {
            switch try self.readSome(deadline: deadline) {
            case .data: continue
            case .closed: return true
            case .timedOut: return false
            }
        }
    }

    /// True if at least one byte is buffered or arrives before the deadline. A close without data is not
    /// "anything": callers that care about closes ask `waitForClose`.
    func receivedAnything(deadline: TestDeadline) throws -> Bool {
        if !self.buffer.isEmpty { return true }
        return try self.readSome(deadline: deadline) == .data
    }

    private func readMore(deadline: TestDeadline, waitingFor what: String) throws {
        switch try self.readSome(deadline: deadline) {
        case .data:
            return
        case .closed:
            throw TestClientError.connectionClosed(waitingFor: what, bufferedBytes: self.buffer)
        case .timedOut:
            throw TestClientError.timedOut(seconds: deadline.seconds, waitingFor: what)
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else {
            return nil
        }
        outer: for index in start...(haystack.count - needle.count) {
            for offset in 0..<needle.count where haystack[index + offset] != needle[offset] {
                continue outer
            }
            return index
        }
        return nil
    }

    // MARK: Socket options

    private func setTimeout(_ option: Int32, seconds: TimeInterval) throws {
        // A zero timeval means "block forever"; clamp to 1 µs so a tiny remainder still times out.
        let micros = max(1, Int(seconds * 1_000_000))
        var value = timeval(tv_sec: micros / 1_000_000, tv_usec: .init(micros % 1_000_000))
        guard setsockopt(self.fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            throw TestClientError.syscall(call: "setsockopt()", doing: "setting a socket timeout", errno: errno)
        }
    }

    private func timeout(_ option: Int32) -> TimeInterval {
        var value = timeval()
        var length = socklen_t(MemoryLayout<timeval>.size)
        _ = getsockopt(self.fd, SOL_SOCKET, option, &value, &length)
        return TimeInterval(value.tv_sec) + TimeInterval(value.tv_usec) / 1e6
    }
}

@available(*, unavailable)
extension TestSocket: Sendable {}   // one owner: its buffer and fd are unguarded

// File-scope forwarders: inside TestSocket the names `close` and `send` mean its own methods.
private func systemClose(_ fd: Int32) {
    _ = close(fd)
}

private func systemSend(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int, _ flags: Int32) -> Int {
    send(fd, bytes, count, flags)
}
