#if canImport(Glibc)
import Glibc
#endif

/// The `sockaddr_un` of a Unix socket path, for `bind` and `connect`: the control socket's server and client build
/// it the same way, and a path too long for `sun_path` is an error, never silently cut.
public enum UnixSocketAddress {
    public static func with<T>(
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
