import CHiveShims
import HiveIPC
import HiveMaster

#if canImport(Glibc)
import Glibc
#endif

/// One request to a master's control socket and its reply (see `ControlServer` for the protocol).
struct ControlClient {
    let runDirectory: RunDirectory

    struct Reply {
        var text: String
        /// A descriptor the master attached (the registry, for `hello`), or -1.
        var descriptor: Int32
    }

    func request(_ line: String, body: [UInt8] = [], timeout: Int = 2) throws -> Reply {
        let path = runDirectory.controlSocket
        // Whoever answers on this socket gets the request (a push carries the operator's payload): it must be ours.
        try runDirectory.check()
        try runDirectory.checkControlSocket()
        let fd = socket(AF_UNIX, CHiveShims_SOCK_STREAM | CHiveShims_SOCK_CLOEXEC, 0)
        guard fd >= 0 else { throw SystemError("socket", while: "connecting to \(path)") }
        defer { close(fd) }
        var wait = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        let connected = try UnixSocketAddress.with(path: path, for: "connect", while: "connecting to the control socket") {
            connect(fd, $0, $1)
        }
        guard connected == 0 else {
            throw OperatorError("cannot reach the master's control socket \(path): \(String(cString: strerror(errno))); "
                + "is the master running, and are you its user?")
        }
        // The path was ours a moment ago; the process listening on it must be too (it could have been swapped since).
        let peer = CHiveShims_peerUID(fd)
        guard peer == Int64(geteuid()) else {
            throw OperatorError("the control socket \(path) is served by uid \(peer), not by you (uid \(geteuid())); "
                + "nothing was sent: stop that master, remove the socket, and start it again")
        }
        let request = Array((line + "\n").utf8) + body
        var offset = 0
        while offset < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + offset, request.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw SystemError("send", while: "sending a request to \(path)") }
            offset += n
        }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var descriptor: Int32 = -1
        var text: [UInt8] = []
        let first = chunk.withUnsafeMutableBytes { CHiveShims_recvRecord(fd, $0.baseAddress, $0.count, &descriptor, 0) }
        guard first >= 0 else { throw SystemError("recvmsg", while: "reading the master's reply on \(path)") }
        text += chunk[0..<first]
        while first > 0 {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            text += chunk[0..<n]
        }
        return Reply(text: String(decoding: text, as: UTF8.self), descriptor: descriptor)
    }
}

/// What `hello` tells about a master; the registry comes with it.
struct MasterFacts {
    var fields: [String: String]
    var registry: SharedRegistry

    init(client: ControlClient) throws {
        let reply = try client.request("hello")
        guard reply.descriptor >= 0 else {
            throw OperatorError("the master did not send its registry: \(reply.text.prefix(200))")
        }
        fields = [:]
        for line in reply.text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        registry = try SharedRegistry.attach(fd: reply.descriptor)
    }

    subscript(_ key: String) -> String { fields[key] ?? "?" }
}
