import Foundation

/// The conversation between the coordinator and its generator processes ("shards").
///
/// A shard is this executable re-run as `hive-bench shard …` (posix_spawn of /proc/self/exe): its own process, so its
/// own 20,000-descriptor limit and its own event loops. The coordinator writes one-word commands on the shard's stdin;
/// the shard answers with one JSON object per line on its stdout. When the coordinator dies, the shard's stdin closes
/// and the shard exits at once: a shard never outlives its run.
///
///     shard -> {"type":"connected",...}   every client attempted (connected or given up)
///     coord -> go                          the measurement window starts (shard notes its CPU time)
///     shard -> {"type":"going"}
///     coord -> end <deadline ns>           publishing is over: report when every client has every message, or at the
///                                          deadline (CLOCK_MONOTONIC)
///     shard -> {"type":"complete",...}     every client has every message (or the deadline passed): the end of
///                                          the window, with the shard's CPU time over it
///     shard -> {"type":"result",...}       the tally, 250 ms later (late duplicates still count), and exits
///     coord -> exit                        (only with --hold-connections) the shard exits only now, its clients connected till then
struct ShardMessage: Codable, Sendable {
    var type: String
    var shard: Int
    var clients: Int?
    var connected: Int?
    var failed: Int?
    var retried: Int?
    var errors: [String]?
    var connectSeconds: Double?
    var tally: FanoutTally?
    /// CPU from `go` to the result: the generator's cost during the measurement window.
    var cpuWindow: CPUTime?
    var cpuTotal: CPUTime?
    var windowSeconds: Double?
    var rss: Int?
    var timedOut: Bool?
    /// The channels scenario's result: per phase, and the clients that got exactly what they were meant to.
    var channels: ChannelsShardResult?
    /// Role "storm": each connected client's time from its first connect attempt to its 101.
    var connectTimes: WireHistogram?
    var retryReasons: [String]?
}

/// Options of one shard, passed on its command line.
struct ShardOptions: Sendable {
    var role = "fanout"
    var shard = 0
    var target = ConnectTarget()
    var first = 0
    var clients = 0
    var messages = 0
    var size = 64
    var runID: UInt32 = 0
    var threads = 1
    var timeout = 60.0
    /// Channels role: messages 0..<channelMessages go to channels, the rest are broadcasts.
    var channelMessages = 0
    /// After its result, the shard keeps its connections open until the coordinator says `exit` (the connections
    /// scenario crashes a worker and runs a reconnect storm while they are held).
    var hold = false

    var arguments: [String] {
        [
            "shard", "--role", role, "--shard", String(shard), "--host", target.host, "--port", String(target.port),
            "--path", target.path, "--per-address", String(target.perAddress), "--concurrency", String(target.concurrency),
            "--first", String(first), "--clients", String(clients), "--messages", String(messages), "--size", String(size),
            "--run-id", String(runID), "--threads", String(threads), "--timeout", String(timeout),
            "--channels", String(target.channels), "--channel-messages", String(channelMessages),
        ] + (target.compression ? ["--compression"] : []) + (hold ? ["--hold-connections"] : [])
    }

    init() {}

    init(_ args: Arguments) throws {
        role = args.string("role", default: "fanout")
        shard = try args.int("shard", default: 0)
        target.host = try args.loopbackHost()
        target.port = try args.int("port", default: 9501)
        target.path = args.string("path", default: "/")
        target.perAddress = try args.int("per-address", default: 10_000)
        target.concurrency = try args.int("concurrency", default: 256)
        target.compression = args.flag("compression")
        first = try args.int("first", default: 0)
        clients = try args.int("clients", default: 0)
        messages = try args.int("messages", default: 0)
        size = try args.int("size", default: 64)
        runID = UInt32(try args.int("run-id", default: 0))
        threads = try args.int("threads", default: 1)
        timeout = try args.double("timeout", default: 60)
        target.channels = try args.int("channels", default: 0)
        channelMessages = try args.int("channel-messages", default: 0)
        hold = args.flag("hold-connections")
    }
}

/// The coordinator's handle on one shard process.
final class ShardProcess {
    let index: Int
    let pid: pid_t
    private let commands: Int32
    private let output: Int32
    private var buffer: [UInt8] = []

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init(index: Int, arguments: [String]) throws {
        self.index = index
        var toChild: [Int32] = [-1, -1]
        var fromChild: [Int32] = [-1, -1]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw Failure(description: "pipe: errno \(errno)") }
        // Our ends are close-on-exec so a later shard does not inherit an earlier shard's pipes (it would keep that
        // shard's stdin open after the coordinator died).
        for fd in [toChild[1], fromChild[0]] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addclose(&actions, toChild[0])
        posix_spawn_file_actions_addclose(&actions, fromChild[1])
        let executable = Self.executable()
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw Failure(description: "posix_spawn \(executable): error \(rc)")
        }
        self.pid = pid
        commands = toChild[1]
        output = fromChild[0]
    }

    deinit {
        close(commands)
        close(output)
    }

    static func executable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return CommandLine.arguments[0] }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.hasSuffix(" (deleted)") ? String(path.dropLast(" (deleted)".count)) : path
    }

    func send(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(10)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(commands, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }

    /// The next message of the given type, waiting at most until `deadline` (monotonic ns).
    func read(_ type: String, until deadline: UInt64) throws -> ShardMessage {
        while true {
            if let newline = buffer.firstIndex(of: 10) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                let message = try JSONDecoder().decode(ShardMessage.self, from: Data(line))
                if message.type == type { return message }
                continue
            }
            let now = Clock.now()
            guard now < deadline else { throw Failure(description: "shard \(index) (pid \(pid)): no \"\(type)\" in time") }
            var poller = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            let waitMs = Int32(min(1000, (deadline - now) / 1_000_000 + 1))
            let ready = poll(&poller, 1, waitMs)
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { Glibc.read(output, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                throw Failure(description: "shard \(index) (pid \(pid)) exited before sending \"\(type)\" (\(reap()))")
            }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// Waits for the shard to exit (so RUSAGE_CHILDREN includes it) and describes how it ended.
    @discardableResult
    func reap(timeout: Double = 5) -> String {
        let deadline = Clock.now() + UInt64(timeout * 1e9)
        var status: Int32 = 0
        while true {
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid { break }
            if rc < 0 { return "already reaped" }
            if Clock.now() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                return "killed after \(timeout) s"
            }
            Clock.sleep(seconds: 0.005)
        }
        if status & 0x7F == 0 { return "exit status \((status >> 8) & 0xFF)" }
        return "killed by signal \(status & 0x7F)"
    }
}

/// K shards that share the clients of a run, driven in lock step.
final class ShardGroup {
    let shards: [ShardProcess]

    /// Splits `clients` evenly; shard k gets the global client indices that decide its source addresses.
    /// `first`: the global index of the group's first client (a second group after the first one's clients).
    init(options: ShardOptions, processes: Int, first: Int = 0) throws {
        var made: [ShardProcess] = []
        let total = options.clients
        let count = max(1, min(processes, max(1, total)))
        for k in 0..<count {
            var mine = options
            mine.shard = k
            mine.first = first + total * k / count
            mine.clients = total * (k + 1) / count - total * k / count
            made.append(try ShardProcess(index: k, arguments: mine.arguments))
        }
        shards = made
    }

    func broadcast(_ line: String) { shards.forEach { $0.send(line) } }

    func collect(_ type: String, until deadline: UInt64) throws -> [ShardMessage] {
        try shards.map { try $0.read(type, until: deadline) }
    }

    func reapAll() -> [String] { shards.map { $0.reap() } }
}
