#if canImport(Glibc)
import Glibc
#endif

/// The blocking TCP connection the generator's own clients use (the Redis publisher, the HTTP publisher): to an
/// IPv4 address, Nagle off, sends and receives that give up after `timeoutSeconds`.
enum LoopbackTCP {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Returns the connected socket. `peer` names what is connected to in the error ("Redis at 127.0.0.1:6379").
    static func connect(host: String, port: UInt16, timeoutSeconds: Int, peer: String) throws -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw Failure(description: "bad address \(host) for \(peer)")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let code = errno
            Glibc.close(fd)
            throw Failure(description: "cannot connect to \(peer): errno \(code)")
        }
        return fd
    }
}
