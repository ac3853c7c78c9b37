#if canImport(Glibc)
import Glibc
#endif

/// The browser's favicon connection of the story: a plain HTTP keep-alive connection that must never receive a pushed
/// or broadcast message. Opens `count` connections, sends `GET /favicon.ico` on each and reads the whole response,
/// then holds them idle while the scenario runs; afterwards, any byte that arrived on one is a failure.
final class HTTPIdleProbe {
    private var sockets: [Int32] = []
    private(set) var setupErrors: [String] = []

    init(host: String, port: Int, count: Int) {
        for _ in 0..<count {
            do {
                sockets.append(try Self.open(host: host, port: port))
            } catch {
                setupErrors.append("\(error)")
            }
        }
    }

    deinit { sockets.forEach { close($0) } }

    private static func open(host: String, port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HandshakeError(description: "socket: errno \(errno)") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let code = errno
            close(fd)
            throw HandshakeError(description: "HTTP probe connect: errno \(code)")
        }
        let request = Array("GET /favicon.ico HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: keep-alive\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // Read the head, then exactly Content-Length bytes of body: nothing of the response may be left unread, or it
        // would later look like a pushed message.
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        var headEnd: Int?
        var bodyLength = 0
        while true {
            if let end = headEnd, received.count >= end + bodyLength { break }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 {
                close(fd)
                throw HandshakeError(description: "HTTP probe: no complete response to GET /favicon.ico")
            }
            received.append(contentsOf: chunk[0..<n])
            if headEnd == nil, let end = Self.headEnd(received) {
                headEnd = end
                let head = String(decoding: received[0..<end], as: UTF8.self).lowercased()
                guard head.hasPrefix("http/1.1 200") else {
                    close(fd)
                    throw HandshakeError(description: "HTTP probe: \(head.prefix { $0 != "\r" })")
                }
                for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    bodyLength = Int(line.dropFirst("content-length:".count).trimmingCharacters()) ?? 0
                }
            }
        }
        if let end = headEnd, received.count > end + bodyLength {
            close(fd)
            throw HandshakeError(description: "HTTP probe: \(received.count - end - bodyLength) bytes after the response")
        }
        return fd
    }

    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 3..<bytes.count where bytes[i] == 10 && bytes[i - 1] == 13 && bytes[i - 2] == 10 && bytes[i - 3] == 13 {
            return i + 1
        }
        return nil
    }

    /// Reads whatever arrived since the response, without blocking. A closed connection (the server's idle timeout)
    /// is not a failure; bytes are.
    func check() -> HTTPProbeResult {
        var result = HTTPProbeResult(connections: sockets.count, setupErrors: setupErrors)
        var chunk = [UInt8](repeating: 0, count: 16_384)
        for fd in sockets {
            var got = 0
            var closed = false
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 {
                    got += n
                    if result.sample.isEmpty { result.sample = String(decoding: chunk[0..<min(n, 80)], as: UTF8.self) }
                    continue
                }
                if n == 0 { closed = true }
                break
            }
            if got > 0 { result.receivedAnything += 1 }
            result.bytes += got
            if closed { result.closedByServer += 1 }
        }
        return result
    }
}

struct HTTPProbeResult: Codable, Sendable {
    var connections = 0
    /// Connections that received any byte after their response: must be 0.
    var receivedAnything = 0
    var bytes = 0
    var closedByServer = 0
    var sample = ""
    var setupErrors: [String] = []
}
