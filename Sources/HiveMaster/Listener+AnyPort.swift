import HiveIPC

#if canImport(Glibc)
import Glibc
#endif

extension Listener {
    /// The port the kernel gave this socket (`getsockname`): for `--port 0`, the one the `ready` line names.
    func boundPort() throws -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { throw SystemError("getsockname", while: "reading the port the kernel chose for --port 0") }
        // sin_port and sin6_port sit at the same offset, in network byte order.
        return withUnsafeBytes(of: &storage) { Int(UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self))) }
    }
}

extension MasterConfiguration {
    /// `--port 0`: binds the client port now, on a free port the kernel picks, and returns the listening socket
    /// and its port. Bound before anything is named after the port (the default run dir `hive-<port>`, a daemon's
    /// log in it, the `ready` line), so all of them name the real one; set `listenerDescriptor` to it and `port`
    /// to the port, and the master serves on this socket instead of binding again. A fixed port is not bound here:
    /// the master claims its run dir first, so a second `hive start` on the port of a running Hive is refused by
    /// the run dir, naming the master's pid, before it touches the port.
    /// - Throws: `MasterError.cannotListen` (e.g. `--host` is not an address of this machine).
    package static func bindAnyPort(host: String) throws -> (descriptor: Int32, port: Int) {
        let listener = try Listener(host: host, port: 0)
        do {
            return (listener.fd, try listener.boundPort())
        } catch {
            listener.close()
            let address = host.contains(":") ? "[\(host)]:0" : "\(host):0"
            throw MasterError.cannotListen(address: address, underlying: error)
        }
    }
}
