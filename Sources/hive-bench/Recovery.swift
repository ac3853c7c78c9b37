import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

struct RecoveryOptions: Sendable {
    var host = "127.0.0.1"
    var port = 9501
    var redis = "redis://127.0.0.1:6379"
    /// Hive's `--api-key` (or `$HIVE_API_KEY`): messages are published with `POST /api/publish`.
    var apiKey = ""
    var channel = "news"
    /// hive's `--channel-prefix`, to find the channel's Redis subscription.
    var channelPrefix = ""
    var clients = 1000
    var messages = 600
    var rate = 100.0
    /// SIGKILL this pid (a hive worker) right after message `killAfter` was answered.
    var killPid: Int32?
    var killAfter = 200
    var threads = 1
    /// A check of the checker: clients reconnect without `since=`, so what was published while they were away is
    /// lost for them and must be reported.
    var resume = true
    /// With K > 0, client i connects without `envelope=json` when i % K == K - 1 (2: every other client): the
    /// latency of the same messages with and without envelopes, side by side.
    var plainEvery = 0
    var drainSeconds = 20.0
    /// After every client is complete, how long to keep listening for a late duplicate.
    var lingerSeconds = 0.5
    var timeoutOverride: Double?

    init(_ args: Arguments) throws {
        host = try args.loopbackHost()
        port = try args.int("port", default: port)
        redis = args.string("redis", default: redis)
        let environment = getenv("HIVE_API_KEY").map { String(cString: $0) } ?? ""
        apiKey = args.string("api-key", default: environment)
        channel = args.string("channel", default: channel)
        channelPrefix = args.string("channel-prefix", default: channelPrefix)
        clients = try args.int("clients", default: clients)
        messages = try args.int("messages", default: messages)
        rate = try args.double("rate", default: rate)
        if args.has("kill-pid") { killPid = try args.pids("kill-pid").first }
        killAfter = try args.int("kill-after", default: messages / 3)
        threads = try args.int("threads", default: threads)
        resume = !args.flag("no-resume")
        plainEvery = try args.int("plain-every", default: 0)
        drainSeconds = try args.double("drain", default: drainSeconds)
        lingerSeconds = try args.double("linger", default: lingerSeconds)
        timeoutOverride = try args.optionalDouble("timeout")
        guard !apiKey.isEmpty else {
            throw Arguments.UsageError(description: "recovery publishes with POST /api/publish: give hive's key with --api-key or HIVE_API_KEY")
        }
        guard clients >= 1, clients <= 18_000 else { throw Arguments.UsageError(description: "--clients must be 1...18000, got \(clients)") }
        guard messages >= 1, rate > 0 else { throw Arguments.UsageError(description: "--messages and --rate must be > 0") }
        guard killAfter >= 1, killAfter < messages else {
            throw Arguments.UsageError(description: "--kill-after must be between 1 and --messages - 1, got \(killAfter)")
        }
        guard plainEvery == 0 || (plainEvery >= 2 && killPid == nil) else {
            throw Arguments.UsageError(description: "--plain-every must be >= 2, and without --kill-pid (a client without envelopes cannot resume)")
        }
        guard channel.allSatisfy({ $0.isLetter || $0.isNumber || "_-.:@".contains($0) }) else {
            throw Arguments.UsageError(description: "--channel must be letters, digits and _ - . : @, got \(channel)")
        }
    }

    var globalTimeout: Double { timeoutOverride ?? (30 + Double(clients) * 0.01 + Double(messages) / rate + drainSeconds + 15) }
}

struct RecoveryReport: Codable, Sendable {
    var scenario = "recovery"
    var clients = 0
    /// Clients whose first connection opened before the first publish.
    var connected = 0
    var connectSeconds = 0.0
    var channel = ""
    var messages = 0
    var targetRate = 0.0
    var published = 0
    var publishSeconds = 0.0
    var achievedRate = 0.0
    /// Requests sent again on a new connection after the old one failed without an answer.
    var publishRetries = 0
    var publishErrors: [String] = []
    var killedPid: Int32?
    var killedAfter: Int?
    /// From the SIGKILL to the process being gone (reaped or a zombie), and to the last client being complete.
    var killSeconds: Double?
    var recoverySeconds: Double?
    /// Clients that lost their connection and opened another, and the total of such reconnects.
    var reconnectedClients = 0
    var reconnects = 0
    /// Connect or handshake attempts that failed (each retried after the back-off).
    var failedAttempts = 0
    var attemptErrors: [String] = []
    /// Clients that ended with every message exactly once, in order, with a position, and no recovered:false.
    var exactClients = 0
    var completeClients = 0
    var received: UInt64 = 0
    var lost: UInt64 = 0
    var duplicated: UInt64 = 0
    var outOfOrder: UInt64 = 0
    var recoveredFalse: UInt64 = 0
    var withoutOffset: UInt64 = 0
    var offsetRegressions: UInt64 = 0
    var corrupt: UInt64 = 0
    /// Publish (just before the request is written) to receive, for clients with envelopes and without
    /// (`--plain-every`); messages a client got from history after a reconnect count too.
    var envelopeClients = 0
    var envelopeLatency = LatencySummary(samples: 0, negative: 0)
    var plainClients = 0
    var plainLatency = LatencySummary(samples: 0, negative: 0)
    var ok = false
    var problems: [String] = []
}

/// `hive-bench recovery`: N clients behaving like the demo page on one channel with envelopes; M messages published
/// through hive (`POST /api/publish`) at R/s; optionally a worker killed with SIGKILL after message K. Every client
/// must end with every message exactly once, in order: the issue 13 proof at 1,000 clients.
enum Recovery {
    static func run(_ o: RecoveryOptions) throws -> RecoveryReport {
        armGlobalTimeout(seconds: o.globalTimeout)
        var report = RecoveryReport()
        report.clients = o.clients
        report.channel = o.channel
        report.messages = o.messages
        report.targetRate = o.rate

        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, o.threads))
        defer { try? group.syncShutdownGracefully() }
        var setup = RecoveryClient.Setup()
        setup.host = o.host
        setup.port = o.port
        setup.channel = o.channel
        setup.messages = o.messages
        setup.resume = o.resume
        var latencies: [ObjectIdentifier: RecoveryClient.Latencies] = [:]
        var loops: [EventLoop] = []
        for loop in group.makeIterator() {
            loops.append(loop)
            latencies[ObjectIdentifier(loop)] = RecoveryClient.Latencies()
        }
        let clients = (0..<o.clients).map { index -> RecoveryClient in
            let loop = loops[index % loops.count]
            var own = setup
            own.plain = o.plainEvery > 0 && index % o.plainEvery == o.plainEvery - 1
            return RecoveryClient(index: index, loop: loop, setup: own, latencies: latencies[ObjectIdentifier(loop)]!)
        }
        report.plainClients = clients.filter(\.setup.plain).count
        report.envelopeClients = o.clients - report.plainClients

        func tally() -> RecoveryClient.Tally {
            var total = RecoveryClient.Tally()
            for client in clients { total.add((try? client.loop.submit { client.snapshot }.wait()) ?? RecoveryClient.Tally()) }
            return total
        }

        // Connect everyone (a few hundred handshakes in flight at a time), then wait for each first connection
        // and for worker 0's Redis subscription to the channel: a client must have joined before message 1.
        let connectStart = Clock.now()
        for (i, client) in clients.enumerated() {
            client.loop.execute { client.connect() }
            if i % 200 == 199 { Clock.sleep(seconds: 0.05) }
        }
        let connectDeadline = connectStart + UInt64((20 + Double(o.clients) * 0.01) * 1e9)
        var state = tally()
        while state.everOpened < o.clients && Clock.now() < connectDeadline {
            Clock.sleep(seconds: 0.05)
            state = tally()
        }
        report.connected = state.everOpened
        report.connectSeconds = Double(Clock.now() - connectStart) / 1e9
        guard report.connected == o.clients else {
            for client in clients { client.loop.execute { client.stop() } }
            report.problems.append("\(o.clients - report.connected) of \(o.clients) clients could not connect within the budget: \(state.failures.joined(separator: " | "))")
            return report
        }
        let redis = try RedisPublisher(url: o.redis)
        let redisChannel = o.channelPrefix + o.channel
        let subscribedBy = Clock.now() + 10_000_000_000
        while (try? redis.subscribers(of: redisChannel)) ?? 0 < 1 {
            guard Clock.now() < subscribedBy else {
                report.problems.append("hive never subscribed to Redis channel \(redisChannel) within 10 s")
                return report
            }
            Clock.sleep(seconds: 0.05)
        }
        Clock.sleep(seconds: 0.3)  // the last joins reach the registry's channel table

        let publisher = HTTPPublisher(host: o.host, port: o.port, apiKey: o.apiKey)
        let start = Clock.now()
        var killedAt: UInt64?
        for sequence in 1...o.messages {
            let due = start + UInt64(Double(sequence - 1) / o.rate * 1e9)
            Clock.sleep(until: due)
            guard publish(sequence, o, publisher, &report) else { break }
            report.published = sequence
            if sequence == o.killAfter, let pid = o.killPid {
                guard kill(pid, SIGKILL) == 0 else {
                    report.problems.append("kill -9 \(pid) failed: errno \(errno); pass a live worker pid to --kill-pid")
                    break
                }
                killedAt = Clock.now()
                report.killedPid = pid
                report.killedAfter = sequence
                // Publishing resumes only once the worker is gone: a request written after that cannot have been
                // taken by it, so one that fails on a dead connection is safely sent again (never published twice).
                let goneBy = Clock.now() + 5_000_000_000
                while !processGone(pid) && Clock.now() < goneBy { Clock.sleep(seconds: 0.002) }
                report.killSeconds = Double(Clock.now() - killedAt!) / 1e9
            }
        }
        report.publishSeconds = Double(Clock.now() - start) / 1e9
        report.achievedRate = Double(report.published) / max(report.publishSeconds, 1e-9)

        let drainBy = Clock.now() + UInt64(o.drainSeconds * 1e9)
        state = tally()
        while state.complete < o.clients && Clock.now() < drainBy {
            Clock.sleep(seconds: 0.05)
            state = tally()
        }
        Clock.sleep(seconds: o.lingerSeconds)
        for client in clients { client.loop.execute { client.stop() } }
        state = tally()
        if let killedAt, state.lastCompleted > killedAt, state.complete == o.clients {
            report.recoverySeconds = Double(state.lastCompleted - killedAt) / 1e9
        }

        var envelope = LatencyHistogram()
        var plain = LatencyHistogram()
        for loop in loops {
            let own = latencies[ObjectIdentifier(loop)]!
            let (e, p) = try loop.submit { (own.envelope.wire, own.plain.wire) }.wait()
            envelope.merge(LatencyHistogram(e))
            plain.merge(LatencyHistogram(p))
        }
        report.envelopeLatency = envelope.summary
        report.plainLatency = plain.summary

        report.reconnectedClients = state.reconnectedClients
        report.reconnects = state.reconnects
        report.failedAttempts = state.failedAttempts
        report.attemptErrors = state.failures
        report.exactClients = state.exact
        report.completeClients = state.complete
        report.received = state.received
        report.lost = state.lost
        report.duplicated = state.duplicated
        report.outOfOrder = state.outOfOrder
        report.recoveredFalse = state.recoveredFalse
        report.withoutOffset = state.withoutOffset
        report.offsetRegressions = state.offsetRegressions
        report.corrupt = state.corrupt

        if report.published < o.messages { report.problems.append("published \(report.published) of \(o.messages): \(report.publishErrors.joined(separator: " | "))") }
        for (count, what) in [(report.lost, "lost"), (report.duplicated, "duplicated"), (report.outOfOrder, "out of order"),
                              (report.recoveredFalse, "recovered:false"), (report.withoutOffset, "without an offset"),
                              (report.offsetRegressions, "with an offset not after the previous"), (report.corrupt, "unreadable")]
        where count > 0 {
            report.problems.append("\(count) message(s) \(what)")
        }
        if report.exactClients < o.clients { report.problems.append("\(o.clients - report.exactClients) of \(o.clients) clients did not get every message exactly once, in order") }
        if o.killPid != nil && report.reconnectedClients == 0 { report.problems.append("no client reconnected after the kill: was --kill-pid a worker of this hive?") }
        report.ok = report.problems.isEmpty
        return report
    }

    /// One message, `r<sequence>`, retried on a new connection when the old one died before answering (at most
    /// 50 times, 100 ms apart: a worker being replaced, the master dispatching to the new one).
    private static func publish(_ sequence: Int, _ o: RecoveryOptions, _ publisher: HTTPPublisher, _ report: inout RecoveryReport) -> Bool {
        for attempt in 0..<50 {
            do {
                let answer = try publisher.post(channel: o.channel, body: Array("r\(sequence):\(Clock.now())".utf8))
                if answer.status == 200 { return true }
                if answer.status != 503 {
                    report.publishErrors.append("message \(sequence): \(answer.status) \(answer.body)")
                    return false
                }
            } catch {
                if report.publishErrors.count < 5 { report.publishErrors.append("message \(sequence), attempt \(attempt + 1): \(error)") }
            }
            report.publishRetries += 1
            Clock.sleep(seconds: 0.1)
        }
        return false
    }

    /// Reaped, or a zombie: it will never run again.
    private static func processGone(_ pid: Int32) -> Bool {
        guard let file = fopen("/proc/\(pid)/stat", "r") else { return true }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return true }
        let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let close = line.lastIndex(of: ")") else { return true }
        let state = line[line.index(after: close)...].drop { $0 == " " }.first
        return state == "Z" || state == "X"
    }

    static func text(_ r: RecoveryReport) -> String {
        var lines = [
            "recovery: \(r.connected)/\(r.clients) clients on \(r.channel) with envelopes, \(r.published)/\(r.messages) messages "
                + "through POST /api/publish at \(Int(r.achievedRate.rounded()))/s (target \(Int(r.targetRate))), \(r.publishRetries) retried",
        ]
        if let pid = r.killedPid, let after = r.killedAfter {
            lines.append("  kill -9 \(pid) after message \(after); gone in \(r.killSeconds.map { "\(Int($0 * 1000)) ms" } ?? "-"); "
                + "every client complete \(r.recoverySeconds.map { "\(Int($0 * 1000)) ms" } ?? "never") after the kill")
        }
        lines.append("  reconnected clients \(r.reconnectedClients) (\(r.reconnects) reconnects, \(r.failedAttempts) failed attempts)")
        lines.append("  exact clients \(r.exactClients)/\(r.clients); received \(r.received), lost \(r.lost), duplicated \(r.duplicated), "
            + "out of order \(r.outOfOrder), recovered:false \(r.recoveredFalse), without offset \(r.withoutOffset), corrupt \(r.corrupt)")
        lines.append("  latency with envelopes (\(r.envelopeClients) clients): \(Output.latencyLine(r.envelopeLatency))")
        if r.plainClients > 0 { lines.append("  latency without (\(r.plainClients) clients): \(Output.latencyLine(r.plainLatency))") }
        for problem in r.problems { lines.append("  problem: \(problem)") }
        lines.append(r.ok ? "  OK" : "  FAILED")
        return lines.joined(separator: "\n")
    }
}
