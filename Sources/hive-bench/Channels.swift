#if canImport(Glibc)
import Glibc
#endif

@dynamicMemberLookup
struct ChannelsOptions: Sendable {
    /// Clients, size, rate (both phases; nil: back to back), processes, hive pids… (`o.clients` reads
    /// `o.common.clients`). `--inject-faults`: message 0 (channel ch0) is published on the broadcast channel
    /// instead, message 1 (ch1) not at all: every client outside ch0 must report a stray, and ch1's clients a loss.
    var common = GeneratorOptions(clients: 10_000)
    /// A `--channel` of hive: its messages are broadcast to every client.
    var broadcastChannel = "test"
    /// hive's `--channel-prefix`: Hive channel `ch7` is Redis channel `<prefix>ch7`.
    var channelPrefix = ""
    /// Phase 1: message s goes to channel `ch<s % K>` (K = `--channels`), reaching its clients only.
    var channelMessages = 1000
    /// Phase 2: messages on the broadcast channel, reaching every client.
    var broadcastMessages = 100
    /// Hive's CPU with every client connected and nothing published, measured for this long before the phases:
    /// subtracted from each phase (keep-alive pings of 10,000 connections are a visible share of a paced phase).
    var idleSeconds = 2.0

    subscript<T>(dynamicMember path: WritableKeyPath<GeneratorOptions, T>) -> T {
        get { common[keyPath: path] }
        set { common[keyPath: path] = newValue }
    }

    subscript<T>(dynamicMember path: KeyPath<GeneratorOptions, T>) -> T { common[keyPath: path] }

    init(_ args: Arguments) throws {
        common = try GeneratorOptions(args, clients: common.clients)
        common.target.channels = try args.int("channels", default: 100)
        broadcastChannel = args.string("channel", default: broadcastChannel)
        channelPrefix = args.string("channel-prefix", default: channelPrefix)
        channelMessages = try args.int("channel-messages", default: channelMessages)
        broadcastMessages = try args.int("broadcast-messages", default: broadcastMessages)
        idleSeconds = try args.double("idle-window", default: idleSeconds)
        try validate()
    }

    func validate() throws {
        guard common.target.channels >= 1, common.clients >= common.target.channels else {
            throw Arguments.UsageError(
                description: "--channels must be between 1 and --clients (\(common.clients)), got \(common.target.channels)"
            )
        }
        guard channelMessages >= (common.injectFaults ? 2 : 1), broadcastMessages >= 1 else {
            throw Arguments.UsageError(description: "--channel-messages and --broadcast-messages must be >= 1")
        }
        try common.validate()
    }

    var publishBudget: Double { common.rate.map { Double(channelMessages + broadcastMessages) / $0 } ?? 20 }
    var globalTimeout: Double {
        common.timeoutOverride
            ?? (common.connectBudget + 30 + idleSeconds + publishBudget + 2 * common.drainSeconds + 30)
    }
}

/// One phase of a channels run: what was published, what arrived, and what it cost hive.
struct ChannelsPhase: Codable, Sendable {
    var name = ""
    var messages = 0
    /// Clients each message was meant for (a channel's subscribers, or every client).
    var recipientsPerMessage = 0
    var publish = PublishStats()
    var expectedDeliveries: UInt64 = 0
    var deliveries: UInt64 = 0
    var lost: UInt64 = 0
    var duplicated: UInt64 = 0
    var strays: UInt64 = 0
    var outOfOrder: UInt64 = 0
    var timedOut = false
    var deliverySeconds = 0.0
    var deliveriesPerSecond = 0.0
    var latency = LatencySummary(samples: 0, negative: 0)
    /// Hive's CPU (master + workers, /proc/<pid>/task/*/schedstat) over the phase's window, per message and per delivery.
    var hiveCPUSeconds: Double?
    var hiveMicrosPerMessage: Double?
    var hiveMicrosPerDelivery: Double?
    /// The same less hive's idle CPU over the window (ChannelsReport.hiveIdleCores).
    var hiveNetMicrosPerMessage: Double?
    var cpu = CPUShare()
}

struct ChannelsReport: Codable, Sendable, ConnectOutcome {
    var scenario = "channels"
    var clients = 0
    var connected = 0
    var connectFailed = 0
    var connectRetried = 0
    var connectErrors: [String] = []
    var connectSeconds = 0.0
    var processes = 0
    var channels = 0
    var size = 0
    /// Channels with their expected Redis subscribers (PUBSUB NUMSUB) before the first publish.
    var subscribedChannels = 0
    /// What every PUBLISH should reach (1 for Hive, 2 for the C reference).
    var expectedSubscribers = 1
    var phases: [ChannelsPhase] = []
    /// Clients that got every message meant for them exactly once and no other.
    var exactClients = 0
    var closedDuringRun = 0
    var corrupt: UInt64 = 0
    var foreign: UInt64 = 0
    /// Hive CPU per channel message / per broadcast message; `reachedShare` is the share of clients a channel
    /// message reaches (1/K): the ratio is on target when it is near that share.
    var costRatio: Double?
    var reachedShare = 0.0
    /// Hive's CPU with the clients connected and idle, in cores, and the cost ratio with it subtracted.
    var hiveIdleCores: Double?
    var netCostRatio: Double?
    var generatorRSSPerProcessMB: [Double] = []
    var ok = false
    var problems: [String] = []
}

/// `hive-bench channels`: N clients spread over K channels (`?channels=ch<i % K>`), then (1) messages each published to
/// one channel and (2) broadcasts, on the same connections. Per phase: deliveries/s, latency and hive's CPU per message;
/// per client: exactly its channel's messages and every broadcast, once each, and nothing else.
enum Channels {
    static func run(_ o: ChannelsOptions) throws -> ChannelsReport {
        armGlobalTimeout(seconds: o.globalTimeout)
        var report = ChannelsReport()
        report.clients = o.clients
        report.channels = o.target.channels
        report.size = o.size
        let runID = UInt32.random(in: 1...UInt32.max)
        let total = o.channelMessages + o.broadcastMessages

        var shardOptions = o.common.shardOptions(
            role: "channels", messages: total, runID: runID, timeout: o.globalTimeout)
        shardOptions.channelMessages = o.channelMessages
        let shards = try ShardGroup(options: shardOptions, processes: o.processes)
        report.processes = shards.shards.count
        report.add(connections: try shards.collect("connected", until: Clock.now() + UInt64(o.connectBudget * 1e9)))

        // Every channel's Redis subscription in place (hive's worker 0 subscribes as the first client of a channel
        // arrives), and the broadcast channel's.
        let redis = try RedisPublisher(url: o.redis)
        let names = (0..<o.target.channels).map { o.channelPrefix + ConnectTarget.channelName($0) }
        let subscribedBy = Clock.now() + 10_000_000_000
        var subscribed = try subscribedCount(names, on: redis, atLeast: o.expectedSubscribers)
        var broadcastSubscribers = try redis.subscribers(of: o.broadcastChannel)
        while (subscribed < names.count || broadcastSubscribers < o.expectedSubscribers) && Clock.now() < subscribedBy {
            Clock.sleep(seconds: 0.05)
            subscribed = try subscribedCount(names, on: redis, atLeast: o.expectedSubscribers)
            broadcastSubscribers = try redis.subscribers(of: o.broadcastChannel)
        }
        report.subscribedChannels = subscribed
        report.expectedSubscribers = o.expectedSubscribers
        guard broadcastSubscribers >= o.expectedSubscribers else {
            throw Arguments.UsageError(description: "\(broadcastSubscribers) of \(o.expectedSubscribers) subscriber(s) of \"\(o.broadcastChannel)\" on \(o.redis) after 10 s: is the server using this Redis?")
        }
        Clock.sleep(seconds: o.settleSeconds)

        let hivePids = ProcFS.withChildren(o.hivePids)
        if !hivePids.isEmpty && o.idleSeconds > 0 {
            let start = Clock.now()
            let before = hivePids.compactMap(ProcFS.cpu).reduce(0, +)
            Clock.sleep(seconds: o.idleSeconds)
            let after = hivePids.compactMap(ProcFS.cpu).reduce(0, +)
            report.hiveIdleCores = (after - before) / (Double(Clock.now() - start) / 1e9)
        }
        func phase(_ name: String, _ sequences: [Int], recipients: Int, channel: (Int) -> [UInt8]) throws -> ChannelsPhase {
            var p = ChannelsPhase()
            p.name = name
            p.messages = sequences.count
            p.recipientsPerMessage = recipients
            var window = CPUWindow(hivePids: hivePids, redis: redis)
            shards.broadcast("go")
            _ = try shards.collect("going", until: Clock.now() + 10_000_000_000)
            window.startClock()
            p.publish = try Fanout.publish(sequences: sequences, channel: channel, rate: o.rate, size: o.size, runID: runID, on: redis)
            shards.broadcast("end \(Clock.now() + UInt64(o.drainSeconds * 1e9))")
            let completions = try shards.collect("complete", until: Clock.now() + UInt64((o.drainSeconds + 20) * 1e9))
            let measured = window.finish(completions: completions, threads: o.threads, redis: redis)
            var cpu = measured.cpu
            p.timedOut = completions.contains { $0.timedOut ?? false }
            if let hiveSeconds = measured.hiveSeconds {
                p.hiveCPUSeconds = hiveSeconds
                p.hiveMicrosPerMessage = hiveSeconds / Double(max(1, sequences.count)) * 1e6
            }
            cpu.judge()
            p.cpu = cpu
            return p
        }

        let encoded = names.map { Array($0.utf8) }
        let broadcast = Array(o.broadcastChannel.utf8)
        let k = o.target.channels
        var onChannels = Array(0..<o.channelMessages)
        if o.injectFaults { onChannels.remove(at: 1) }
        report.phases.append(try phase("channel", onChannels, recipients: (o.clients + k - 1) / k) { s in
            o.injectFaults && s == 0 ? broadcast : encoded[s % k]
        })
        report.phases.append(try phase("broadcast", Array(o.channelMessages..<total), recipients: o.clients) { _ in broadcast })

        var merged = ChannelsShardResult()
        for r in try shards.collect("result", until: Clock.now() + 20_000_000_000) {
            if let part = r.channels { merged.add(part) }
            report.generatorRSSPerProcessMB.append(Double(r.rss ?? 0) / 1_048_576)
        }
        for (shard, outcome) in zip(shards.shards, shards.reapAll()) where outcome != "exit status 0" {
            report.problems.append("shard \(shard.index) \(outcome)")
        }
        report.exactClients = merged.exactClients
        report.closedDuringRun = merged.closedEarly
        report.corrupt = merged.corrupt
        report.foreign = merged.foreign
        for (i, tally) in merged.phases.enumerated() where i < report.phases.count {
            var p = report.phases[i]
            p.expectedDeliveries = tally.expected
            p.deliveries = tally.unique
            p.lost = tally.expected - min(tally.expected, tally.unique)
            p.duplicated = tally.duplicates
            p.strays = tally.strays
            p.outOfOrder = tally.outOfOrder
            p.latency = LatencyHistogram(tally.latency).summary
            if tally.lastReceive > p.publish.firstStamp {
                p.deliverySeconds = Double(tally.lastReceive - p.publish.firstStamp) / 1e9
                p.deliveriesPerSecond = (Double(tally.unique) / p.deliverySeconds).rounded()
            }
            if let cpu = p.hiveCPUSeconds, tally.unique > 0 { p.hiveMicrosPerDelivery = cpu / Double(tally.unique) * 1e6 }
            report.phases[i] = p
        }
        for i in report.phases.indices {
            if let cpu = report.phases[i].hiveCPUSeconds, let idle = report.hiveIdleCores {
                let net = max(0, cpu - idle * report.phases[i].cpu.windowSeconds)
                report.phases[i].hiveNetMicrosPerMessage = net / Double(max(1, report.phases[i].messages)) * 1e6
            }
        }
        if let channel = report.phases.first?.hiveMicrosPerMessage, let all = report.phases.last?.hiveMicrosPerMessage, all > 0 {
            report.costRatio = channel / all
        }
        if let channel = report.phases.first?.hiveNetMicrosPerMessage, let all = report.phases.last?.hiveNetMicrosPerMessage, all > 0 {
            report.netCostRatio = channel / all
        }
        report.reachedShare = Double(report.phases.first?.recipientsPerMessage ?? 0) / Double(max(1, o.clients))
        judge(&report)
        return report
    }

    /// How many of `names` have at least `atLeast` subscribers (one PUBSUB NUMSUB for all of them).
    static func subscribedCount(_ names: [String], on redis: RedisPublisher, atLeast: Int) throws -> Int {
        guard case .array(let items) = try redis.command(["PUBSUB", "NUMSUB"] + names), items.count == 2 * names.count else {
            throw RedisPublisher.Failure(description: "unexpected PUBSUB NUMSUB reply")
        }
        return stride(from: 1, to: items.count, by: 2).reduce(0) {
            if case .integer(let n) = items[$1], n >= atLeast { return $0 + 1 }
            return $0
        }
    }

    static func judge(_ r: inout ChannelsReport) {
        if r.connectFailed > 0 { r.problems.append("\(r.connectFailed) clients could not connect: \(r.connectErrors.joined(separator: " | "))") }
        if r.subscribedChannels < r.channels {
            r.problems.append("only \(r.subscribedChannels) of \(r.channels) channels had a Redis subscriber before the first publish")
        }
        for p in r.phases {
            if p.lost > 0 { r.problems.append("\(p.name): \(p.lost) deliveries lost") }
            if p.duplicated > 0 { r.problems.append("\(p.name): \(p.duplicated) deliveries duplicated") }
            if p.strays > 0 { r.problems.append("\(p.name): \(p.strays) deliveries to clients not in the message's channel") }
            if p.outOfOrder > 0 { r.problems.append("\(p.name): \(p.outOfOrder) deliveries out of order") }
            if p.timedOut { r.problems.append("\(p.name): not every client had its messages by the drain deadline") }
            if p.publish.errors > 0 { r.problems.append("\(p.name): \(p.publish.errors) PUBLISH errors") }
            if p.publish.receiversMin != r.expectedSubscribers || p.publish.receiversMax != r.expectedSubscribers {
                r.problems.append("\(p.name): PUBLISH reached \(p.publish.receiversMin)...\(p.publish.receiversMax) subscribers (expected \(r.expectedSubscribers))")
            }
            if p.latency.negative > 0 { r.problems.append("\(p.name): \(p.latency.negative) deliveries received before they were published") }
        }
        if r.corrupt > 0 { r.problems.append("\(r.corrupt) corrupt deliveries") }
        if r.closedDuringRun > 0 { r.problems.append("\(r.closedDuringRun) clients closed by the server during the run") }
        if r.exactClients != r.connected {
            r.problems.append("\(r.connected - r.exactClients) of \(r.connected) clients did not get exactly their messages")
        }
        r.ok = r.problems.isEmpty
    }

    static func text(_ r: ChannelsReport) -> String {
        var lines = [
            "channels: \(r.connected)/\(r.clients) clients in \(r.processes) process(es) on \(r.channels) channels "
                + "(\(r.phases.first?.recipientsPerMessage ?? 0) per channel; \(r.subscribedChannels) subscribed in Redis), \(r.size) B messages"
        ]
        for p in r.phases {
            let cpu = p.hiveMicrosPerMessage.map { String(format: "hive %.1f µs CPU per message", $0) } ?? "hive CPU unknown (no --hive-pids)"
            let perDelivery = p.hiveMicrosPerDelivery.map { String(format: " (%.2f µs per delivery)", $0) } ?? ""
            let net = p.hiveNetMicrosPerMessage.map { String(format: ", %.1f µs less idle", $0) } ?? ""
            lines.append(
                "  \(p.name): \(p.messages) msgs \(p.publish.mode)\(p.publish.targetRate.map { String(format: " at %.0f/s", $0) } ?? "") "
                    + "to \(p.recipientsPerMessage) clients each; deliveries \(p.deliveries)/\(p.expectedDeliveries) in "
                    + String(format: "%.3f s = %.0f/s", p.deliverySeconds, p.deliveriesPerSecond) + "; \(cpu)\(perDelivery)\(net)")
            lines.append("    lost \(p.lost), duplicated \(p.duplicated), strays \(p.strays), out of order \(p.outOfOrder)\(p.timedOut ? ", TIMED OUT" : "")")
            lines.append("    latency: \(Output.latencyLine(p.latency))")
            lines.append("    cpu: \(Output.cpuLine(p.cpu))")
        }
        if let idle = r.hiveIdleCores { lines.append(String(format: "  hive idle with every client connected: %.3f cores", idle)) }
        if let ratio = r.costRatio {
            lines.append(String(format: "  a channel message cost %.4f of a broadcast (1/%.0f)", ratio, 1 / max(ratio, 1e-9))
                + (r.netCostRatio.map { String(format: ", %.4f (1/%.0f) less idle CPU", $0, 1 / max($0, 1e-9)) } ?? "")
                + String(format: "; it reaches %.4f of the clients", r.reachedShare))
        }
        lines.append("  exactly once: \(r.exactClients)/\(r.connected) clients got exactly their messages; corrupt \(r.corrupt), foreign \(r.foreign), closed \(r.closedDuringRun)")
        lines.append("  " + (r.ok ? "OK" : "PROBLEMS: " + r.problems.joined(separator: "; ")))
        return lines.joined(separator: "\n")
    }
}
