#if canImport(Glibc)
import Glibc
#endif

struct IdleOptions: Sendable {
    var target = ConnectTarget()
    var clients = 10_000
    var processes = 1
    var hivePids: [Int32] = []
    /// Longest wait for the server's RSS to stop growing after the last connection.
    var maxSettleSeconds = 10.0
    /// Extra time to hold the connections after measuring (0: release at once).
    var holdSeconds = 0.0

    init(_ args: Arguments) throws {
        target.host = try args.loopbackHost()
        target.port = try args.int("port", default: 9501)
        target.path = args.string("path", default: "/")
        target.perAddress = try args.int("per-address", default: 10_000)
        target.concurrency = try args.int("concurrency", default: 256)
        target.compression = args.flag("compression")
        clients = try args.int("clients", default: clients)
        processes = try args.int("processes", default: max(1, (clients + 9_999) / 10_000))
        hivePids = try args.pids("hive-pids")
        maxSettleSeconds = try args.double("settle", default: maxSettleSeconds)
        holdSeconds = try args.double("hold", default: holdSeconds)
        guard !hivePids.isEmpty else { throw Arguments.UsageError(description: "idle needs --hive-pids (the master's pid is enough)") }
        guard clients >= 1, (clients + processes - 1) / processes <= 18_000 else {
            throw Arguments.UsageError(description: "\(clients) clients need more processes: 20,000 files per process")
        }
    }

    var connectBudget: Double { 30 + Double(clients) * 0.002 }
    var globalTimeout: Double { connectBudget + maxSettleSeconds + holdSeconds + 60 }
}

/// `hive-bench idle`: the memory an idle WebSocket connection costs the server, summed over master and workers.
enum Idle {
    /// RSS growth less file-backed growth, per connection; nil when a process's RssFile could not be read.
    static func withoutFilePages(_ before: [ProcessMemory], _ after: [ProcessMemory], processes: Int, over n: Double) -> Double? {
        let files = (before.compactMap(\.rssFileBytes), after.compactMap(\.rssFileBytes))
        guard files.0.count == processes, files.1.count == processes else { return nil }
        let rss = after.reduce(0) { $0 + $1.rssBytes } - before.reduce(0) { $0 + $1.rssBytes }
        return (Double(rss - (files.1.reduce(0, +) - files.0.reduce(0, +))) / n).rounded()
    }

    static func measure(_ pids: [Int32]) -> [ProcessMemory] {
        pids.compactMap { pid in
            ProcFS.rss(pid).map { ProcessMemory(
                    pid: pid, rssBytes: $0, pssBytes: ProcFS.pss(pid), rssFileBytes: ProcFS.rssFile(pid),
                    fds: ProcFS.fdCount(pid)) }
        }
    }

    static func run(_ o: IdleOptions) throws -> IdleReport {
        armGlobalTimeout(seconds: o.globalTimeout)
        var report = IdleReport()
        report.clients = o.clients
        // The master's workers are found through /proc, so the master's pid alone is enough.
        let pids = ProcFS.withChildren(o.hivePids)
        report.hivePids = pids
        report.before = measure(pids)
        guard report.before.count == pids.count else { throw Arguments.UsageError(description: "a hive pid is not running: \(pids)") }

        var shardOptions = ShardOptions()
        shardOptions.role = "idle"
        shardOptions.target = o.target
        shardOptions.clients = o.clients
        shardOptions.messages = 0
        shardOptions.timeout = o.globalTimeout
        let shards = try ShardGroup(options: shardOptions, processes: o.processes)
        report.processes = shards.shards.count
        let connected = try shards.collect("connected", until: Clock.now() + UInt64(o.connectBudget * 1e9))
        for c in connected {
            report.connected += c.connected ?? 0
            report.connectFailed += c.failed ?? 0
            report.connectSeconds = max(report.connectSeconds, c.connectSeconds ?? 0)
            for e in c.errors ?? [] where report.connectErrors.count < 5 && !report.connectErrors.contains(e) {
                report.connectErrors.append(e)
            }
        }

        // Settle: at least 1 s, then until two samples 250 ms apart differ by under 0.2 % (or the limit).
        let settleStart = Clock.now()
        Clock.sleep(seconds: 1)
        var previous = measure(pids).reduce(0) { $0 + $1.rssBytes }
        while Double(Clock.now() - settleStart) / 1e9 < o.maxSettleSeconds {
            Clock.sleep(seconds: 0.25)
            let current = measure(pids).reduce(0) { $0 + $1.rssBytes }
            defer { previous = current }
            if abs(current - previous) <= previous / 500 { break }
        }
        report.settleSeconds = Double(Clock.now() - settleStart) / 1e9
        report.after = measure(pids)
        if o.holdSeconds > 0 { Clock.sleep(seconds: o.holdSeconds) }

        shards.broadcast("go")
        _ = try shards.collect("going", until: Clock.now() + 10_000_000_000)
        shards.broadcast("end \(Clock.now())")
        _ = try shards.collect("complete", until: Clock.now() + 20_000_000_000)
        let results = try shards.collect("result", until: Clock.now() + 20_000_000_000)
        var generatorRSS = 0
        for r in results {
            report.closedWhileIdle += r.tally?.closed ?? 0
            generatorRSS += r.rss ?? 0
        }
        for (shard, outcome) in zip(shards.shards, shards.reapAll()) where outcome != "exit status 0" {
            report.problems.append("shard \(shard.index) \(outcome)")
        }

        report.record(MemoryGrowth(before: report.before, after: report.after, processes: pids.count, connections: report.connected))
        let n = Double(max(1, report.connected))
        let fdsBefore = report.before.compactMap(\.fds)
        let fdsAfter = report.after.compactMap(\.fds)
        if fdsBefore.count == pids.count { report.fdsBefore = fdsBefore.reduce(0, +) }
        if fdsAfter.count == pids.count { report.fdsAfter = fdsAfter.reduce(0, +) }
        report.generatorRSSPerConnectionBytes = (Double(generatorRSS) / n).rounded()

        if report.connectFailed > 0 { report.problems.append("\(report.connectFailed) clients could not connect: \(report.connectErrors.joined(separator: " | "))") }
        if report.closedWhileIdle > 0 { report.problems.append("\(report.closedWhileIdle) idle connections were closed by the server") }
        report.ok = report.problems.isEmpty
        return report
    }
}
