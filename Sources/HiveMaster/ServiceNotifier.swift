import CHiveShims
import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// systemd's `Type=notify` protocol (sd_notify(3)) without libsystemd: one datagram of `KEY=value` lines to the
/// socket `$NOTIFY_SOCKET` names. The master says READY=1 once every worker serves, RELOADING=1 … READY=1 around a
/// rolling reload, STOPPING=1 when it stops.
///
/// Only the master speaks: the variable is removed from the environment at once, so workers (spawned with this
/// environment) never see it. Sends never block (a full socket drops the datagram) and never fail the master: the
/// first failure is logged, later ones are not.
struct ServiceNotifier {
    private let target: String
    private let fd: Int32
    private var warned = false

    /// Reads and removes `$NOTIFY_SOCKET`; nil when it is not set (not run by a service manager).
    static func fromEnvironment(logger: Logger) -> ServiceNotifier? {
        guard let value = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }) else { return nil }
        unsetenv("NOTIFY_SOCKET")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | CHiveShims_SOCK_CLOEXEC | CHiveShims_SOCK_NONBLOCK, 0)
        guard fd >= 0 else {
            let error = SystemError("socket", while: "creating the socket for NOTIFY_SOCKET=\(value)")
            logger.warning("cannot notify the service manager; continuing without", metadata: ["error": "\(error)"])
            return nil
        }
        return ServiceNotifier(target: value, fd: fd)
    }

    /// Sends `fields` as one datagram (`READY=1`, `STATUS=…`).
    mutating func notify(_ fields: [String], logger: Logger) {
        let text = Array(fields.joined(separator: "\n").utf8)
        var failure: (any Error)?
        do {
            let sent = try UnixSocketAddress.withNotifyAddress(target) { address, length in
                text.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), address, length) }
            }
            if sent < 0 { failure = SystemError("sendto", while: "notifying the service manager at \(target)") }
        } catch {
            failure = error  // NOTIFY_SOCKET names no usable address
        }
        guard let error = failure, !warned else { return }
        warned = true
        logger.warning("cannot notify the service manager; the service keeps running (further failures are not logged)",
            metadata: ["notify.socket": "\(target)", "notify.message": "\(fields.first ?? "")", "error": "\(error)"])
    }

    static func monotonicMicroseconds() -> UInt64 { Clock.monotonicNanoseconds() / 1_000 }
}
