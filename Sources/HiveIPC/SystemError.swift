#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, what Hive was doing, and the errno text, in nginx's shape:
/// `socketpair() failed while spawning worker 2: Too many open files (errno 24)`.
package struct SystemError: Error, CustomStringConvertible, Equatable {
    package let call: String
    package let doing: String
    package let errno: Int32

    package init(_ call: String, while doing: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.doing = doing
        self.errno = errno
    }

    package var description: String {
        "\(call)() failed while \(doing): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Runs a system call, retrying on EINTR, and throws `SystemError` when it returns -1.
@discardableResult
package func syscall<T: FixedWidthInteger>(
    _ call: String,
    while doing: @autoclosure () -> String,
    _ body: () -> T
) throws -> T {
    while true {
        let result = body()
        if result == -1 {
            let err = Glibc.errno
            if err == EINTR { continue }
            throw SystemError(call, while: doing(), errno: err)
        }
        return result
    }
}

/// Monotonic and wall clocks in nanoseconds; the registry stores both as plain UInt64.
package enum Clock {
    package static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    package static func wallNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// Writes a whole string to a file descriptor (stdout/stderr): Swift 6 rejects the C `stdout` global.
package func writeLine(_ line: String, to fd: Int32 = 1) {
    var text = line
    if !text.hasSuffix("\n") { text += "\n" }
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += n
        }
    }
}
