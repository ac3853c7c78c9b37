#if canImport(Glibc)
import Glibc
#endif

struct ConnectionsOptions: Sendable {
    var target = ConnectTarget()
    var redis = "redis://127.0.0.1:6379"
    var channel = "test"
    var clients = 100_000
    var processes = 10
    var broadcasts = 3
    var size = 64
    /// Clients of the reconnect storm, all connecting at once right after a worker is killed (0: no crash, no storm).
    var storm = 10_000
    var stormProcesses = 1
    var stormThreads = 1
    var hivePids: [Int32] = []
    var maxSettleSeconds = 10.0
    var drainSeconds = 30.0
    var timeoutOverride: Double?

    init() {}

    init(_ args: Arguments) throws {
        target.host = try args.loopbackHost()
        target.port = try args.int("port", default: 9501)
        target.path = args.string("path", default: "/")
        target.perAddress = try args.int("per-address", default: 10_000)
        target.concurrency = try args.int("concurrency", default: 256)
        redis = args.string("redis", default: redis)
        channel = args.string("channel", default: channel)
        clients = try args.int("clients", default: clients)
        processes = try args.int("processes", default: max(1, (clients + 9_999) / 10_000))
        broadcasts = try args.int("broadcasts", default: broadcasts)
        size = try args.int("size", default: size)
        storm = try args.int("storm", default: storm)
        stormProcesses = try args.int("storm-processes", default: max(1, (storm + 9_999) / 10_000))
        stormThreads = try args.int("storm-threads", default: stormThreads)
        hivePids = try args.pids("hive-pids")
        maxSettleSeconds = try args.double("settle", default: maxSettleSeconds)
        drainSeconds = try args.double("drain", default: drainSeconds)
        timeoutOverride = try args.optionalDouble("timeout")
        guard hivePids.count == 1 else {
            throw Arguments.UsageError(description: "connections needs --hive-pids MASTER (its workers are found through /proc)")
        }
        guard clients >= 1, broadcasts >= 1, storm >= 0, size >= Payload.minimumSize else {
            throw Arguments.UsageError(description: "--clients and --broadcasts must be >= 1, --storm >= 0, --size >= \(Payload.minimumSize)")
        }
        for (count, procs, what) in [(clients, processes, "--processes"), (storm, stormProcesses, "--storm-processes")]
        where count > 0 && (procs < 1 || (count + procs - 1) / procs > 18_000) {
            throw Arguments.UsageError(description: "\(count) clients need more \(what): 20,000 files per process")
        }
        // One source address per --per-address clients, 127.0.0.2 upwards, storm clients after the others.
        guard 2 + (clients + storm - 1) / max(1, target.perAddress) <= 254 else {
            throw Arguments.UsageError(description: "--per-address \(target.perAddress) needs more than 253 source addresses")
        }
    }

    var connectBudget: Double { 30 + Double(clients) * 0.002 }
    var stormBudget: Double { 30 + Double(storm) * 0.002 }
    var globalTimeout: Double { timeoutOverride ?? (connectBudget + maxSettleSeconds + drainSeconds + stormBudget + 90) }
}

/// `hive-bench connections`: many idle WebSocket clients at once (issue 14: 100,000 over several workers), then:
/// the time to accept them all, hive's memory per connection over master and workers, broadcasts that must reach
/// every client exactly once, and a reconnect storm: one worker killed with SIGKILL and `--storm` new clients
/// connecting at once (one lane each), with their connect times. Clients come from 127.0.0.2 upwards,
/// `--per-address` per source address, so no source address runs out of ephemeral ports towards the server.
enum Connections {
    static func run(_ o: ConnectionsOptions) throws -> ConnectionsReport {
        armGlobalTimeout(seconds: o.globalTimeout)
        var report = ConnectionsReport()
        report.clients = o.clients
        report.broadcasts = o.broadcasts
        report.sourceAddresses = (o.clients + o.target.perAddress - 1) / o.target.perAddress
        let master = o.hivePids[0]
        let pids = ProcFS.withChildren([master])
        report.hivePids = pids
        report.workers = pids.count - 1
        report.before = Idle.measure(pids)
        guard report.before.count == pids.count else { throw Arguments.UsageError(description: "a hive pid is not running: \(pids)") }

        // Hive's subscription first: the broadcasts go through Redis.
        let redis = try RedisPublisher(url: o.redis)
        let subscribedBy = Clock.now() + 10_000_000_000
        while try redis.subscribers(of: o.channel) < 1 {
            guard Clock.now() < subscribedBy else {
                throw Arguments.UsageError(description: "nobody subscribes to \"\(o.channel)\" on \(o.redis) after 10 s: is hive using this Redis?")
            }
            Clock.sleep(seconds: 0.02)
        }

        // 1. Every client connected: the time from the first connect to the last 101.
        let runID = UInt32.random(in: 1...UInt32.max)
        var shardOptions = ShardOptions()
        shardOptions.role = "fanout"
        shardOptions.target = o.target
        shardOptions.clients = o.clients
        shardOptions.messages = o.broadcasts
        shardOptions.size = o.size
        shardOptions.runID = runID
        shardOptions.timeout = o.globalTimeout
        shardOptions.hold = true
        let started = Clock.now()
        let shards = try ShardGroup(options: shardOptions, processes: o.processes)
        report.processes = shards.shards.count
        let connected = try shards.collect("connected", until: Clock.now() + UInt64(o.connectBudget * 1e9))
        report.acceptSeconds = Double(Clock.now() - started) / 1e9
        var connectErrors: [String] = []
        for c in connected {
            report.connected += c.connected ?? 0
            report.connectFailed += c.failed ?? 0
            report.connectRetried += c.retried ?? 0
            for e in c.errors ?? [] where connectErrors.count < 5 && !connectErrors.contains(e) { connectErrors.append(e) }
        }
        report.acceptPerSecond = (Double(report.connected) / max(report.acceptSeconds, 1e-9)).rounded()

        // 2. Memory once RSS stops growing (as `idle` does): at least 1 s, then two samples 250 ms apart within 0.2 %.
        let settleStart = Clock.now()
        Clock.sleep(seconds: 1)
        var previous = Idle.measure(pids).reduce(0) { $0 + $1.rssBytes }
        while Double(Clock.now() - settleStart) / 1e9 < o.maxSettleSeconds {
            Clock.sleep(seconds: 0.25)
            let current = Idle.measure(pids).reduce(0) { $0 + $1.rssBytes }
            defer { previous = current }
            if abs(current - previous) <= previous / 500 { break }
        }
        report.after = Idle.measure(pids)
        report.record(MemoryGrowth(before: report.before, after: report.after, processes: pids.count, connections: report.connected))
        report.connectionsPerWorker = report.after.dropFirst().compactMap(\.fds)

        // 3. The broadcasts, back to back through Redis: every connected client must get each once, in order.
        shards.broadcast("go")
        _ = try shards.collect("going", until: Clock.now() + 10_000_000_000)
        var publishOptions = FanoutOptions()
        publishOptions.channel = o.channel
        publishOptions.messages = o.broadcasts
        publishOptions.size = o.size
        report.publish = try Fanout.publish(publishOptions, runID: runID, on: redis)
        shards.broadcast("end \(Clock.now() + UInt64(o.drainSeconds * 1e9))")
        let completions = try shards.collect("complete", until: Clock.now() + UInt64((o.drainSeconds + 20) * 1e9))
        let results = try shards.collect("result", until: Clock.now() + 20_000_000_000)
        var tally = FanoutTally()
        for r in results { if let t = r.tally { tally.add(t) } }
        report.timedOut = completions.contains { $0.timedOut ?? false }
        report.expectedDeliveries = UInt64(report.connected) * UInt64(o.broadcasts)
        report.deliveries = tally.unique
        report.lost = report.expectedDeliveries - min(report.expectedDeliveries, tally.unique)
        report.duplicated = tally.duplicates
        report.outOfOrder = tally.outOfOrder
        report.closedDuringBroadcasts = tally.closedEarly
        report.broadcastLatency = LatencyHistogram(tally.latency).summary

        // 4. The reconnect storm: the busiest worker killed, then `storm` clients connecting at once.
        if o.storm > 0 {
            runStorm(o, pids: pids, into: &report)
        }

        shards.broadcast("exit")
        for (shard, outcome) in zip(shards.shards, shards.reapAll()) where outcome != "exit status 0" {
            report.problems.append("shard \(shard.index) \(outcome)")
        }
        judge(&report, connectErrors: connectErrors)
        return report
    }

    private static func runStorm(_ o: ConnectionsOptions, pids: [Int32], into report: inout ConnectionsReport) {
        let workers = Array(pids.dropFirst())
        guard let victim = workers.max(by: { (ProcFS.fdCount($0) ?? 0) < (ProcFS.fdCount($1) ?? 0) }) else {
            report.problems.append("storm: hive has no worker to kill")
            return
        }
        var storm = StormReport()
        storm.clients = o.storm
        storm.killedWorkerPid = victim
        storm.killedWorkerDescriptors = ProcFS.fdCount(victim) ?? 0
        var options = ShardOptions()
        options.role = "storm"
        options.target = o.target
        options.target.concurrency = o.storm  // one lane per client: every connect starts at once
        options.clients = o.storm
        options.threads = o.stormThreads
        options.timeout = o.globalTimeout
        let killedAt = Clock.now()
        kill(victim, SIGKILL)
        do {
            // Global indices after the held clients': source addresses of their own.
            let group = try ShardGroup(options: options, processes: o.stormProcesses, first: o.clients)
            let connected = try group.collect("connected", until: Clock.now() + UInt64(o.stormBudget * 1e9))
            storm.seconds = Double(Clock.now() - killedAt) / 1e9
            var times = LatencyHistogram()
            for c in connected {
                storm.connected += c.connected ?? 0
                storm.failed += c.failed ?? 0
                storm.retried += c.retried ?? 0
                for e in c.errors ?? [] where storm.errors.count < 5 && !storm.errors.contains(e) { storm.errors.append(e) }
                if let wire = c.connectTimes { times.merge(LatencyHistogram(wire)) }
                for e in c.retryReasons ?? [] where storm.retryReasons.count < 3 && !storm.retryReasons.contains(e) {
                    storm.retryReasons.append(e)
                }
            }
            storm.connectTime = times.summary
            storm.connectionsPerSecond = (Double(storm.connected) / max(storm.seconds, 1e-9)).rounded()
            // The master restarts the killed worker: a new child in its place (bounded wait).
            let restartBy = Clock.now() + 15_000_000_000
            while Clock.now() < restartBy {
                let now = ProcFS.withChildren([pids[0]])
                if now.count == pids.count && !now.contains(victim) {
                    storm.workerRestartedWithinSeconds = Double(Clock.now() - killedAt) / 1e9
                    break
                }
                Clock.sleep(seconds: 0.01)
            }
            group.broadcast("go")
            _ = try group.collect("going", until: Clock.now() + 10_000_000_000)
            group.broadcast("end \(Clock.now())")
            _ = try group.collect("result", until: Clock.now() + 20_000_000_000)
            for (shard, outcome) in zip(group.shards, group.reapAll()) where outcome != "exit status 0" {
                report.problems.append("storm shard \(shard.index) \(outcome)")
            }
        } catch {
            report.problems.append("storm: \(error)")
        }
        report.storm = storm
    }

    static func judge(_ r: inout ConnectionsReport, connectErrors: [String]) {
        if r.connectFailed > 0 { r.problems.append("\(r.connectFailed) clients could not connect: \(connectErrors.joined(separator: " | "))") }
        if r.lost > 0 { r.problems.append("\(r.lost) deliveries lost") }
        if r.duplicated > 0 { r.problems.append("\(r.duplicated) deliveries duplicated") }
        if r.outOfOrder > 0 { r.problems.append("\(r.outOfOrder) deliveries out of order") }
        if r.closedDuringBroadcasts > 0 { r.problems.append("\(r.closedDuringBroadcasts) clients closed by the server during the broadcasts") }
        if r.timedOut { r.problems.append("the broadcasts did not reach every client within the drain time") }
        if r.publish.errors > 0 || r.publish.receiversMin != 1 || r.publish.receiversMax != 1 {
            r.problems.append("PUBLISH reached \(r.publish.receiversMin)...\(r.publish.receiversMax) subscribers (expected 1), \(r.publish.errors) errors")
        }
        if let s = r.storm {
            if s.failed > 0 { r.problems.append("storm: \(s.failed) of \(s.clients) clients could not connect: \(s.errors.joined(separator: " | "))") }
            if s.workerRestartedWithinSeconds == nil { r.problems.append("storm: the killed worker \(s.killedWorkerPid) was not replaced within 15 s") }
        }
        r.ok = r.problems.isEmpty
    }

    static func text(_ r: ConnectionsReport) -> String {
        var lines = [
            "connections: \(r.connected)/\(r.clients) WebSocket clients from \(r.processes) process(es) over \(r.sourceAddresses) source address(es); hive: master + \(r.workers) workers",
            String(format: "  accepted all in %.2f s (%.0f connections/s), %d retried", r.acceptSeconds, r.acceptPerSecond, r.connectRetried),
            "  " + r.memoryLine + "; worker descriptors \(r.connectionsPerWorker.map(String.init).joined(separator: ", "))",
            "  broadcasts: \(r.deliveries)/\(r.expectedDeliveries) deliveries, lost \(r.lost), duplicated \(r.duplicated), out of order \(r.outOfOrder); \(Output.latencyLine(r.broadcastLatency))",
        ]
        if let s = r.storm {
            lines.append(String(format: "  storm: worker pid %d (%d descriptors) killed; %d/%d clients connected in %.2f s = %.0f connections/s, %d retried",
                                s.killedWorkerPid, s.killedWorkerDescriptors, s.connected, s.clients, s.seconds, s.connectionsPerSecond, s.retried)
                         + "; worker replaced within " + (s.workerRestartedWithinSeconds.map { String(format: "%.2f s", $0) } ?? "-")
                         + " (looked for after the storm)")
            lines.append("  storm connect time: \(Output.latencyLine(s.connectTime))")
            if !s.retryReasons.isEmpty { lines.append("  storm retried after: " + s.retryReasons.joined(separator: " | ")) }
        }
        lines.append("  " + (r.ok ? "OK" : "PROBLEMS: " + r.problems.joined(separator: "; ")))
        return lines.joined(separator: "\n")
    }
}

struct StormReport: Codable, Sendable {
    var clients = 0
    var connected = 0
    var failed = 0
    var retried = 0
    var errors: [String] = []
    /// Why attempts were retried (each client retries twice, 100 ms apart).
    var retryReasons: [String] = []
    var killedWorkerPid: Int32 = 0
    /// Descriptors of the killed worker just before: its connections, plus ~40 of its own.
    var killedWorkerDescriptors = 0
    /// From the SIGKILL to the last storm client's 101.
    var seconds = 0.0
    var connectionsPerSecond = 0.0
    /// Per client: first connect attempt to its 101.
    var connectTime = LatencyHistogram().summary
    /// From the SIGKILL to the first look that found a new worker in its place: an upper bound, looked for only once
    /// the storm is over (the master's log has the restart's own time).
    var workerRestartedWithinSeconds: Double?
}

struct ConnectionsReport: Codable, Sendable, MemoryReport {
    var scenario = "connections"
    var clients = 0
    var connected = 0
    var connectFailed = 0
    var connectRetried = 0
    var processes = 0
    var sourceAddresses = 0
    var workers = 0
    var hivePids: [Int32] = []
    /// From spawning the generator processes to the last client's 101.
    var acceptSeconds = 0.0
    var acceptPerSecond = 0.0
    var before: [ProcessMemory] = []
    var after: [ProcessMemory] = []
    var rssBeforeBytes = 0
    var rssAfterBytes = 0
    var rssPerConnectionBytes = 0.0
    var pssPerConnectionBytes: Double?
    var anonPerConnectionBytes: Double?
    var connectionsPerWorker: [Int] = []
    var broadcasts = 0
    var publish = PublishStats()
    var expectedDeliveries: UInt64 = 0
    var deliveries: UInt64 = 0
    var lost: UInt64 = 0
    var duplicated: UInt64 = 0
    var outOfOrder: UInt64 = 0
    var closedDuringBroadcasts = 0
    var timedOut = false
    var broadcastLatency = LatencyHistogram().summary
    var storm: StormReport?
    var ok = false
    var problems: [String] = []
}
