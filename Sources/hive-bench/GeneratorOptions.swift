#if canImport(Glibc)
import Glibc
#endif

/// What `fanout` and `channels` share: where the clients connect and how many, the messages' size and pace, the
/// generator processes, and the hive processes whose CPU a run measures. Each scenario's options hold one and
/// forward its fields (`o.clients`), so the two parse and check them the same way.
struct GeneratorOptions: Sendable {
    var target = ConnectTarget()
    var redis = "redis://127.0.0.1:6379"
    var clients: Int
    var size = 64
    /// Messages per second; nil publishes back to back.
    var rate: Double?
    var processes = 1
    var threads = 1
    /// After the last publish, how long clients may take to receive everything.
    var drainSeconds = 30.0
    /// Pause between "everything is in place" and the first publish.
    var settleSeconds = 0.1
    var hivePids: [Int32] = []
    /// Replaces the computed global timeout (a smoke test's hard bound).
    var timeoutOverride: Double?
    /// A check of the checker: the scenario publishes wrong on purpose and its clients must notice.
    var injectFaults = false
    /// Subscribers of a channel each PUBLISH must reach: Hive's worker 0 alone holds the subscription (1); the C
    /// reference subscribes in each of its processes (2).
    var expectedSubscribers = 1

    init(clients: Int) {
        self.clients = clients
    }

    init(_ args: Arguments, clients defaultClients: Int) throws {
        clients = defaultClients
        target.host = try args.loopbackHost()
        target.port = try args.int("port", default: 9501)
        target.path = args.string("path", default: "/")
        target.perAddress = try args.int("per-address", default: 10_000)
        target.concurrency = try args.int("concurrency", default: 256)
        redis = args.string("redis", default: redis)
        clients = try args.int("clients", default: clients)
        size = try args.int("size", default: size)
        rate = try args.optionalDouble("rate")
        // At most 10,000 connections per generator process: the hard limit is 20,000 descriptors per process.
        processes = try args.int("processes", default: max(1, (clients + 9_999) / 10_000))
        threads = try args.int("threads", default: 1)
        drainSeconds = try args.double("drain", default: drainSeconds)
        settleSeconds = try args.double("settle", default: settleSeconds)
        hivePids = try args.pids("hive-pids")
        timeoutOverride = try args.optionalDouble("timeout")
        injectFaults = args.flag("inject-faults")
        expectedSubscribers = try args.int("expect-subscribers", default: expectedSubscribers)
    }

    func validate() throws {
        guard expectedSubscribers >= 1 else { throw Arguments.UsageError(description: "--expect-subscribers must be >= 1") }
        guard size >= Payload.minimumSize else {
            throw Arguments.UsageError(
                description: "--size must be at least \(Payload.minimumSize) (sequence + timestamp)")
        }
        if let rate, rate <= 0 { throw Arguments.UsageError(description: "--rate must be > 0") }
        guard processes >= 1, (clients + processes - 1) / processes <= 18_000 else {
            throw Arguments.UsageError(
                description: "\(clients) clients need more than \(processes) process(es): 20,000 files per process")
        }
    }

    /// Connecting is the slow part of a big run: budget 30 s plus 2 ms per client.
    var connectBudget: Double { 30 + Double(clients) * 0.002 }

    /// The shard processes' options for these clients.
    func shardOptions(role: String, messages: Int, runID: UInt32, timeout: Double) -> ShardOptions {
        var shard = ShardOptions()
        shard.role = role
        shard.target = target
        shard.clients = clients
        shard.messages = messages
        shard.size = size
        shard.runID = runID
        shard.threads = threads
        shard.timeout = timeout
        return shard
    }
}

/// The connection outcome both reports carry, added up from the shards' `connected` messages.
protocol ConnectOutcome {
    var connected: Int { get set }
    var connectFailed: Int { get set }
    var connectRetried: Int { get set }
    var connectErrors: [String] { get set }
    var connectSeconds: Double { get set }
}

extension ConnectOutcome {
    mutating func add(connections replies: [ShardMessage]) {
        for c in replies {
            connected += c.connected ?? 0
            connectFailed += c.failed ?? 0
            connectRetried += c.retried ?? 0
            connectSeconds = max(connectSeconds, c.connectSeconds ?? 0)
            for e in c.errors ?? [] where connectErrors.count < 5 && !connectErrors.contains(e) {
                connectErrors.append(e)
            }
        }
    }
}

/// The CPU of a measured window: hive's (every thread of the given processes), redis-server's, the machine's and
/// the generator's. `init` reads the counters before the shards are told to go; `start` marks the window's start
/// (the shards are going); `finish`, once every shard has completed, gives the shares.
struct CPUWindow {
    let hivePids: [Int32]
    private let hiveBefore: Double
    private let hiveSwitchesBefore: UInt64
    private let machineBefore: Double?
    private let redisBefore: Double?
    private var start: UInt64 = 0
    private var selfBefore = CPUTime.zero

    init(hivePids: [Int32], redis: RedisPublisher) {
        self.hivePids = hivePids
        let usage = hivePids.compactMap(ProcFS.usage)
        hiveBefore = usage.reduce(0) { $0 + $1.seconds }
        hiveSwitchesBefore = usage.reduce(0) { $0 + $1.switches }
        machineBefore = ProcFS.machineBusy()
        redisBefore = redis.serverCPU()
    }

    mutating func startClock() {
        start = Clock.now()
        selfBefore = CPUTime.ofSelf()
    }

    /// The shares over the window, and hive's CPU seconds and context switches in it (nil without hive pids).
    func finish(completions: [ShardMessage], threads: Int, redis: RedisPublisher)
        -> (cpu: CPUShare, hiveSeconds: Double?, hiveSwitches: UInt64?)
    {
        let windowSeconds = Double(Clock.now() - start) / 1e9
        let selfWindow = CPUTime.ofSelf() - selfBefore
        let usage = hivePids.compactMap(ProcFS.usage)
        let hiveAfter = usage.reduce(0) { $0 + $1.seconds }
        let hiveSwitchesAfter = usage.reduce(0) { $0 + $1.switches }
        let machineAfter = ProcFS.machineBusy()
        let redisAfter = redis.serverCPU()
        var cpu = CPUShare()
        cpu.windowSeconds = windowSeconds
        var shardCPU = 0.0
        var busiest = selfWindow.total / windowSeconds
        for c in completions {
            let used = c.cpuWindow?.total ?? 0
            shardCPU += used
            busiest = max(busiest, used / max(c.windowSeconds ?? windowSeconds, 1e-9))
        }
        cpu.generatorCores = (shardCPU + selfWindow.total) / windowSeconds
        cpu.busiestGeneratorProcessCores = busiest
        cpu.generatorThreadsPerProcess = threads
        let hiveSeconds = hivePids.isEmpty ? nil : hiveAfter - hiveBefore
        if let hiveSeconds { cpu.hiveCores = hiveSeconds / windowSeconds }
        if let a = redisAfter, let b = redisBefore { cpu.redisCores = (a - b) / windowSeconds }
        cpu.machineCores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        if let a = machineAfter, let b = machineBefore { cpu.machineBusyCores = (a - b) / windowSeconds }
        return (cpu, hiveSeconds, hivePids.isEmpty ? nil : hiveSwitchesAfter &- hiveSwitchesBefore)
    }
}
