#if canImport(Glibc)
import Glibc
#endif

/// The `sockaddr_un` of a Unix socket path, for `bind` and `connect`: the control socket's server and client build
/// it the same way, and a path too long for `sun_path` is an error, never silently cut.
package enum UnixSocketAddress {
    package static func with<T>(
        path: String, for call: String, while doing: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T
    ) throws -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SystemError(
                call, while: "\(doing): path \(path) is too long for a Unix socket; use a shorter --run-dir",
                errno: ENAMETOOLONG
            )
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}

extension UnixSocketAddress {
    /// The address of a service manager's notification socket, as `$NOTIFY_SOCKET` names it (sd_notify(3)): an
    /// absolute path, or `@name` for a socket in the abstract namespace (a leading NUL byte, and a length that
    /// counts exactly the name: the kernel compares every byte). Anything else is refused, never guessed at.
    package static func withNotifyAddress<T>(
        _ name: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T
    ) throws -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(name.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        guard abstract || bytes.first == UInt8(ascii: "/"), bytes.count > 1 else {
            throw SystemError(
                "sendto", while: "reading NOTIFY_SOCKET=\"\(name.prefix(80))\": it is neither an absolute path nor an "
                    + "@abstract socket name", errno: EAFNOSUPPORT
            )
        }
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SystemError("sendto", while: "reading NOTIFY_SOCKET: \(name.prefix(80))… is too long for a Unix socket",
                errno: ENAMETOOLONG)
        }
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        // A path keeps its terminating NUL (already zero in the buffer); an abstract name must not have one.
        let length = socklen_t(offset + bytes.count + (abstract ? 0 : 1))
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
