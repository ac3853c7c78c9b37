import HiveIPC

#if canImport(Glibc)
import CHiveShims
import Glibc
#endif

/// The master's listening socket: non-blocking, close-on-exec (workers never inherit it).
struct Listener {
    let fd: Int32

    init(host: String, port: Int, backlog: Int32 = 4096) throws {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let info = result else {
            let reason = String(cString: gai_strerror(rc))
            throw MasterError.cannotListen(
                address: address,
                underlying: SystemError("getaddrinfo", while: "parsing --host \"\(host)\" (\(reason)); give an IP address", errno: EINVAL)
            )
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, CHiveShims_SOCK_STREAM | CHiveShims_SOCK_CLOEXEC | CHiveShims_SOCK_NONBLOCK, 0)
        guard fd >= 0 else {
            throw MasterError.cannotListen(address: address, underlying: SystemError("socket", while: "listening on \(address)"))
        }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 {
            let err = errno
            Glibc.close(fd)
            if err == EADDRINUSE { throw MasterError.portInUse(address: address) }
            throw MasterError.cannotListen(address: address, underlying: SystemError("bind", while: "listening on \(address)", errno: err))
        }
        if Glibc.listen(fd, backlog) != 0 {
            let err = errno
            Glibc.close(fd)
            throw MasterError.cannotListen(address: address, underlying: SystemError("listen", while: "listening on \(address)", errno: err))
        }
        self.fd = fd
    }

    /// A socket already bound and listening (`--port 0`, bound before the run dir was chosen), adopted as is.
    init(adopting fd: Int32) { self.fd = fd }

    enum AcceptResult {
        case connection(Int32, RemoteAddress)
        case empty
        /// The process or system is out of descriptors (EMFILE/ENFILE) or memory: back off, do not spin.
        case exhausted(SystemError)
        case failed(SystemError)
    }

    func accept() -> AcceptResult {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { CHiveShims_accept4(self.fd, $0, &length) }
        }
        if fd >= 0 { return .connection(fd, RemoteAddress(storage)) }
        let err = errno
        switch err {
        case EAGAIN, EWOULDBLOCK: return .empty
        case EMFILE, ENFILE, ENOBUFS, ENOMEM:
            return .exhausted(SystemError("accept4", while: "accepting a connection", errno: err))
        default:
            return .failed(SystemError("accept4", while: "accepting a connection", errno: err))
        }
    }

    func close() { _ = Glibc.close(fd) }
}
