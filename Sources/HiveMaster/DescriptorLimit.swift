#if canImport(Glibc)
import Glibc
#endif

/// The per-process descriptor limit (RLIMIT_NOFILE), raised by the master at start before any worker exists, so
/// that every worker inherits it. Each connection is one descriptor in the worker that holds it (the master closes
/// its copy once the worker has it), so a worker can hold about `soft - 100` connections: a shell's default soft
/// limit of 1,024 would stop a worker near 900 connections while the hard limit allows far more.
package struct DescriptorLimit: Equatable, Sendable {
    /// Descriptors a worker keeps besides its connections (it has no listener): its IPC sockets, Redis
    /// connections, log file, the event loop's epoll and eventfds, with room to spare.
    package static let reserve = 100

    package var soft: UInt64
    package var hard: UInt64

    package init(soft: UInt64, hard: UInt64) {
        self.soft = soft
        self.hard = hard
    }

    /// The soft limit to ask for: the hard limit. An unlimited hard limit (RLIM_INFINITY, all ones) is capped at
    /// `nrOpen`: Linux refuses a soft limit above fs.nr_open. Never lower than what is already set.
    package func raised(nrOpen: UInt64) -> DescriptorLimit {
        let ceiling = hard == UInt64.max ? nrOpen : hard
        return DescriptorLimit(soft: max(soft, min(ceiling, nrOpen)), hard: hard)
    }

    /// Connections one worker can hold under this limit.
    package var connectionsPerWorker: Int { max(0, Int(clamping: soft) - Self.reserve) }

    /// Workers needed so that `maxConnections`, spread evenly (least-connections dispatch keeps them even), fit
    /// under each worker's descriptor limit.
    package func workersNeeded(maxConnections: Int) -> Int {
        let each = max(1, connectionsPerWorker)
        return (maxConnections + each - 1) / each
    }

    /// What the operator should know when `--max-connections` over `workers` does not fit under the limit, or nil.
    package func shortfall(maxConnections: Int, workers: Int) -> String? {
        let share = (maxConnections + workers - 1) / max(1, workers)
        guard share > connectionsPerWorker else { return nil }
        return "--max-connections \(maxConnections) over \(workers) worker(s) is up to \(share) connections per worker, "
            + "but a worker may open only \(soft) descriptors (RLIMIT_NOFILE, hard limit \(hard)): a worker fails to "
            + "take connections past about \(connectionsPerWorker); start at least "
            + "\(workersNeeded(maxConnections: maxConnections)) workers, or raise the hard limit (`ulimit -Hn`, "
            + "systemd LimitNOFILE=), or lower --max-connections"
    }

    /// The current limit of this process.
    package static func current() -> DescriptorLimit {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return DescriptorLimit(soft: UInt64(limit.rlim_cur), hard: UInt64(limit.rlim_max))
    }

    /// fs.nr_open: the kernel's ceiling for RLIMIT_NOFILE (1,048,576 by default).
    package static func kernelCeiling() -> UInt64 {
        let fd = open("/proc/sys/fs/nr_open", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 1_048_576 }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 32)
        let n = read(fd, &bytes, bytes.count)
        guard n > 0 else { return 1_048_576 }
        let digits = String(decoding: bytes[0..<n].prefix { $0 >= 48 && $0 <= 57 }, as: UTF8.self)
        return UInt64(digits).flatMap { $0 > 0 ? $0 : nil } ?? 1_048_576
    }

    /// Raises this process's soft limit to its hard limit. Returns the limits before and after; `error` is set when
    /// setrlimit refused (the limit stays as it was).
    package static func raiseToHard() -> (before: DescriptorLimit, after: DescriptorLimit, error: Int32?) {
        let before = current()
        let wanted = before.raised(nrOpen: kernelCeiling())
        guard wanted.soft > before.soft else { return (before, before, nil) }
        var limit = rlimit(rlim_cur: rlim_t(wanted.soft), rlim_max: rlim_t(before.hard))
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 { return (before, before, errno) }
        return (before, current(), nil)
    }
}
