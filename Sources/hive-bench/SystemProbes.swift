#if canImport(Glibc)
import Glibc
#endif

/// Clocks, CPU accounting and /proc readers: everything the generator learns from the kernel.
///
/// Times are CLOCK_MONOTONIC nanoseconds. Every generator process and the coordinator run on one machine (in one time
/// namespace), so a timestamp written into a payload by the publisher can be subtracted from a receive time taken in
/// another process: that is how publish->receive latency is measured without any clock sync.
enum Clock {
    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Sleeps until the absolute monotonic time `deadline` (pacing publishes without drift).
    static func sleep(until deadline: UInt64) {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
    }

    static func sleep(seconds: Double) {
        sleep(until: now() + UInt64(max(0, seconds) * 1e9))
    }
}

/// User + system CPU seconds, from getrusage.
struct CPUTime: Codable, Sendable {
    var user: Double
    var system: Double
    var total: Double { user + system }

    static let zero = CPUTime(user: 0, system: 0)

    /// This process (all its threads).
    static func ofSelf() -> CPUTime { usage(RUSAGE_SELF.rawValue) }
    /// Children that have been waited for (the generator's shard processes, once reaped).
    static func ofChildren() -> CPUTime { usage(RUSAGE_CHILDREN.rawValue) }

    private static func usage(_ who: __rusage_who_t) -> CPUTime {
        var ru = rusage()
        getrusage(who, &ru)
        return CPUTime(
            user: Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6,
            system: Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
        )
    }

    static func - (a: CPUTime, b: CPUTime) -> CPUTime { CPUTime(user: a.user - b.user, system: a.system - b.system) }
    static func + (a: CPUTime, b: CPUTime) -> CPUTime { CPUTime(user: a.user + b.user, system: a.system + b.system) }
}

/// Reads other processes through /proc: the hive master and workers (RSS, fds, CPU) and our own RSS.
enum ProcFS {
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A "Key:   123 kB" field of /proc/<pid>/status or smaps_rollup, in bytes.
    static func kilobyteField(_ key: String, in text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            let number = line.dropFirst(key.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
            return number.map { $0 * 1024 }
        }
        return nil
    }

    /// Resident set size (VmRSS) of one process in bytes; nil when it is gone.
    static func rss(_ pid: Int32) -> Int? {
        read("/proc/\(pid)/status").flatMap { kilobyteField("VmRSS", in: $0) }
    }

    /// The file-backed part of the RSS (RssFile: mostly the binary's and libraries' code). The first connections
    /// page in the code of the accept, HTTP and WebSocket paths (~2.5 MB per worker): a fixed cost, which the
    /// idle figures would otherwise spread over the connections.
    static func rssFile(_ pid: Int32) -> Int? {
        read("/proc/\(pid)/status").flatMap { kilobyteField("RssFile", in: $0) }
    }

    /// Proportional set size: shared pages (the registry memfd, the binary) counted once across processes.
    static func pss(_ pid: Int32) -> Int? {
        read("/proc/\(pid)/smaps_rollup").flatMap { kilobyteField("Pss", in: $0) }
    }

    static func selfRSS() -> Int { read("/proc/self/status").flatMap { kilobyteField("VmRSS", in: $0) } ?? 0 }

    /// Open descriptors of a process (needs the same user or root); nil when unreadable.
    static func fdCount(_ pid: Int32) -> Int? {
        guard let dir = opendir("/proc/\(pid)/fd") else { return nil }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { count += 1 }
        }
        return count
    }

    /// CPU seconds of a process, all its threads: the first field of /proc/<pid>/task/*/schedstat is nanoseconds on
    /// a CPU (exact, where /proc/<pid>/stat counts 10 ms ticks, too coarse for a 0.2 s window). Falls back to stat.
    static func cpu(_ pid: Int32) -> Double? { usage(pid)?.seconds }

    /// CPU seconds as `cpu`, and the times the threads were switched onto a CPU (the third field of schedstat: a
    /// wake-up or a return after a preemption each count one; 0 where only stat is readable), in one read.
    static func usage(_ pid: Int32) -> (seconds: Double, switches: UInt64)? {
        if let counts = schedstat(pid) { return (Double(counts.nanoseconds) / 1e9, counts.switches) }
        return statCPU(pid).map { ($0, 0) }
    }

    /// Every thread's schedstat summed: nanoseconds on a CPU, times switched in.
    private static func schedstat(_ pid: Int32) -> (nanoseconds: UInt64, switches: UInt64)? {
        guard let dir = opendir("/proc/\(pid)/task") else { return nil }
        defer { closedir(dir) }
        var total: (nanoseconds: UInt64, switches: UInt64)?
        while let entry = readdir(dir) {
            let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard Int32(tid) != nil, let text = read("/proc/\(pid)/task/\(tid)/schedstat") else { continue }
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { UInt64($0) }
            guard fields.count >= 3 else { continue }
            total = ((total?.nanoseconds ?? 0) + fields[0], (total?.switches ?? 0) + fields[2])
        }
        return total
    }

    /// utime + stime of a process in seconds (field 14 and 15 of /proc/<pid>/stat).
    static func statCPU(_ pid: Int32) -> Double? {
        guard let stat = read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may contain spaces) start at field 3 (state).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// CPU seconds the whole machine spent busy (everything but idle and iowait, softirq included), from /proc/stat:
    /// loopback TCP work done in softirq is charged to no process, so per-process sums under-state a saturated box.
    static func machineBusy() -> Double? {
        guard let line = read("/proc/stat")?.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        let ticks = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard ticks.count >= 5 else { return nil }
        // user nice system idle iowait irq softirq steal (guest time is already inside user).
        let busy = ticks.prefix(8).enumerated().filter { $0.offset != 3 && $0.offset != 4 }.reduce(0) { $0 + $1.element }
        return busy / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Direct children of a process, from /proc/<pid>/task/*/children.
    static func children(of pid: Int32) -> [Int32] {
        guard let dir = opendir("/proc/\(pid)/task") else { return [] }
        defer { closedir(dir) }
        var result: [Int32] = []
        while let entry = readdir(dir) {
            let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard Int32(tid) != nil, let text = read("/proc/\(pid)/task/\(tid)/children") else { continue }
            result += text.split(separator: " ").compactMap { Int32($0.trimmingCharacters()) }
        }
        return result
    }

    /// The given pids plus their children (the hive master's workers), without duplicates, in a stable order.
    static func withChildren(_ pids: [Int32]) -> [Int32] {
        var seen = Set<Int32>()
        var result: [Int32] = []
        for pid in pids + pids.flatMap(children(of:)) where seen.insert(pid).inserted { result.append(pid) }
        return result
    }
}

extension Substring {
    func trimmingCharacters() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\n" || c == "\t" || c == "\r" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\n" || c == "\t" || c == "\r" { s.removeLast() }
        return s
    }
}

/// Writes all of `bytes` to a descriptor (stdout of a shard, stderr for diagnostics).
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += n
    }
}

/// Diagnostics go to fd 2: Swift 6 rejects the C `stderr` global, and stdout carries results.
func logLine(_ text: String) {
    writeAll(2, Array(("hive-bench: " + text + "\n").utf8))
}

/// A hard wall-clock limit for the whole process: the benchmark must never hang a test suite or a script. SIGALRM's
/// handler only writes a constant and calls _exit (async-signal-safe). Shards die too: their stdin pipe closes.
func armGlobalTimeout(seconds: Double) {
    signal(SIGALRM) { _ in
        let message: StaticString = "hive-bench: global timeout reached; giving up\n"
        _ = Glibc.write(2, message.utf8Start, message.utf8CodeUnitCount)
        _exit(124)
    }
    alarm(UInt32(max(1, seconds.rounded(.up))))
}
