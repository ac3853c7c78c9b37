#if canImport(Glibc)
import Glibc
#endif

/// A peer address in a fixed-size form that fits the shared registry (16 address bytes, port, family).
///
/// What an application reads is ``host``, ``port`` and ``description`` ("127.0.0.1:40000", "[::1]:40000"): the
/// address the master accepted the connection from (a proxy's, behind one).
public struct RemoteAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address family.
    public enum Family: UInt8, Sendable {
        /// No address is known (``RemoteAddress/unknown``).
        case none = 0
        /// IPv4.
        case ipv4 = 4
        /// IPv6.
        case ipv6 = 6
    }

    /// The address family.
    public var family: Family
    /// The address bytes in network order, as they lie in memory: IPv4 uses the first 4 bytes.
    public var bytes: (UInt64, UInt64)
    /// The peer's port.
    public var port: UInt16

    /// No address: a connection whose peer address could not be read.
    public static let unknown = RemoteAddress(family: .none, bytes: (0, 0), port: 0)

    /// An address from its raw parts (tests of an application's hooks make their own `HiveConnection` with it).
    public init(family: Family, bytes: (UInt64, UInt64), port: UInt16) {
        self.family = family
        self.bytes = bytes
        self.port = port
    }

    /// Reads a `sockaddr_in` / `sockaddr_in6` as filled by accept().
    package init(_ storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            self = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var raw: (UInt64, UInt64) = (0, 0)
                    withUnsafeMutableBytes(of: &raw) { dst in
                        withUnsafeBytes(of: sin.pointee.sin_addr) { dst.copyMemory(from: $0) }
                    }
                    return RemoteAddress(family: .ipv4, bytes: raw, port: UInt16(bigEndian: sin.pointee.sin_port))
                }
            }
        case AF_INET6:
            self = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    var raw: (UInt64, UInt64) = (0, 0)
                    withUnsafeMutableBytes(of: &raw) { dst in
                        withUnsafeBytes(of: sin6.pointee.sin6_addr) { dst.copyMemory(from: $0) }
                    }
                    return RemoteAddress(family: .ipv6, bytes: raw, port: UInt16(bigEndian: sin6.pointee.sin6_port))
                }
            }
        default:
            self = .unknown
        }
    }

    /// The address without the port: "127.0.0.1" or "::1".
    public var host: String {
        var raw = bytes
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok: Bool = withUnsafeBytes(of: &raw) { src in
            switch family {
            case .ipv4: return inet_ntop(AF_INET, src.baseAddress, &text, socklen_t(text.count)) != nil
            case .ipv6: return inet_ntop(AF_INET6, src.baseAddress, &text, socklen_t(text.count)) != nil
            case .none: return false
            }
        }
        guard ok else { return "unknown" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The host and port: "127.0.0.1:40000", "[::1]:40000", or "unknown".
    public var description: String {
        switch family {
        case .ipv4: return "\(host):\(port)"
        case .ipv6: return "[\(host)]:\(port)"
        case .none: return "unknown"
        }
    }

    /// A stable hash of the address without the port, for `--dispatch ip-hash` (FNV-1a).
    package var hostHash: UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var raw = bytes
        withUnsafeBytes(of: &raw) { src in
            for byte in src.prefix(family == .ipv4 ? 4 : 16) {
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            }
        }
        return hash
    }

    /// Equal when family, address bytes and port are.
    public static func == (lhs: RemoteAddress, rhs: RemoteAddress) -> Bool {
        lhs.family == rhs.family && lhs.bytes == rhs.bytes && lhs.port == rhs.port
    }

    /// Hashes what ``==(_:_:)`` compares.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(family)
        hasher.combine(bytes.0)
        hasher.combine(bytes.1)
        hasher.combine(port)
    }
}
