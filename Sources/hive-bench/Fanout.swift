#if canImport(Glibc)
import Glibc
#endif

@dynamicMemberLookup
struct FanoutOptions: Sendable {
    /// Clients, size, rate, processes, hive pids… (`o.clients` reads `o.common.clients`).
    var common = GeneratorOptions(clients: 1000)
    var channel = "test"
    var messages = 100
    var httpIdle = 10

    subscript<T>(dynamicMember path: WritableKeyPath<GeneratorOptions, T>) -> T {
        get { common[keyPath: path] }
        set { common[keyPath: path] = newValue }
    }

    subscript<T>(dynamicMember path: KeyPath<GeneratorOptions, T>) -> T { common[keyPath: path] }

    init() {}

    init(_ args: Arguments) throws {
        common = try GeneratorOptions(args, clients: common.clients)
        common.target.compression = args.flag("compression")
        channel = args.string("channel", default: channel)
        messages = try args.int("messages", default: messages)
        httpIdle = try args.int("http-idle", default: httpIdle)
        try validate()
    }

    /// `--inject-faults`: publish message 1 twice, never publish message 3, publish 5 before 4. Every client must
    /// then report exactly 1 duplicate, 1 lost and 1 out-of-order delivery.
    func validate() throws {
        guard common.clients >= 1, messages >= 1, !common.injectFaults || messages >= 6 else {
            throw Arguments.UsageError(description: "--clients and --messages must be >= 1")
        }
        try common.validate()
    }

    var publishBudget: Double { common.rate.map { Double(messages) / $0 } ?? 10 }
    /// The whole run can never take longer than this (SIGALRM ends it, and its shards with it).
    var globalTimeout: Double {
        common.timeoutOverride ?? (common.connectBudget + 15 + publishBudget + common.drainSeconds + 30)
    }
}

/// `hive-bench fanout`: K shard processes hold the WebSocket clients; this process publishes on Redis and adds up.
enum Fanout {
    /// - Parameter whilePublishing: Called right before the first publish and right after the last (the reload
    ///   scenario's reloader).
    static func run(
        _ o: FanoutOptions, whilePublishing: (start: () -> Void, stop: () -> Void)? = nil
    ) throws -> FanoutReport {
        armGlobalTimeout(seconds: o.globalTimeout)
        var report = FanoutReport()
        report.clients = o.clients
        report.messages = o.messages
        report.size = o.size
        let runID = UInt32.random(in: 1...UInt32.max)

        let shardOptions = o.common.shardOptions(
            role: "fanout", messages: o.messages, runID: runID, timeout: o.globalTimeout)
        let shards = try ShardGroup(options: shardOptions, processes: o.processes)
        report.processes = shards.shards.count

        // 1. Every client connected (or given up on).
        report.add(connections: try shards.collect("connected", until: Clock.now() + UInt64(o.connectBudget * 1e9)))

        // 2. The favicon keep-alive connections, 3. Hive's subscription in place.
        let probe = HTTPIdleProbe(host: o.target.host, port: o.target.port, count: o.httpIdle)
        let redis = try RedisPublisher(url: o.redis)
        let subscribedBy = Clock.now() + 10_000_000_000
        var subscribers = try redis.subscribers(of: o.channel)
        while subscribers < o.expectedSubscribers && Clock.now() < subscribedBy {
            Clock.sleep(seconds: 0.02)
            subscribers = try redis.subscribers(of: o.channel)
        }
        guard subscribers >= o.expectedSubscribers else {
            throw Arguments.UsageError(description: "\(subscribers) of \(o.expectedSubscribers) subscriber(s) of \"\(o.channel)\" on \(o.redis) after 10 s: is the server using this Redis?")
        }
        Clock.sleep(seconds: o.settleSeconds)

        // 4. The window: CPU of everyone at its start, shards note theirs.
        var window = CPUWindow(hivePids: ProcFS.withChildren(o.hivePids), redis: redis)
        shards.broadcast("go")
        _ = try shards.collect("going", until: Clock.now() + 10_000_000_000)
        window.startClock()

        // 5. Publish.
        whilePublishing?.start()
        report.publish = try publish(o, runID: runID, on: redis)
        whilePublishing?.stop()
        report.publish.expectedReceivers = o.expectedSubscribers
        let firstPublish = report.publish.firstStamp

        // 6. Wait for the shards to see everything (or the drain deadline).
        shards.broadcast("end \(Clock.now() + UInt64(o.drainSeconds * 1e9))")
        let completions = try shards.collect("complete", until: Clock.now() + UInt64((o.drainSeconds + 20) * 1e9))
        let measured = window.finish(completions: completions, threads: o.threads, redis: redis)
        var cpu = measured.cpu
        let results = try shards.collect("result", until: Clock.now() + 20_000_000_000)
        report.http = probe.check()

        var tally = FanoutTally()
        report.timedOut = completions.contains { $0.timedOut ?? false }
        for r in results {
            if let t = r.tally { tally.add(t) }
            report.generatorRSSPerProcessMB.append(Double(r.rss ?? 0) / 1_048_576)
        }
        for (shard, outcome) in zip(shards.shards, shards.reapAll()) where outcome != "exit status 0" {
            report.problems.append("shard \(shard.index) \(outcome)")
        }

        report.expectedDeliveries = UInt64(report.connected) * UInt64(o.messages)
        report.deliveries = tally.unique
        report.lost = report.expectedDeliveries - min(report.expectedDeliveries, tally.unique)
        report.duplicated = tally.duplicates
        report.outOfOrder = tally.outOfOrder
        report.corrupt = tally.corrupt
        report.foreign = tally.foreign
        report.closedDuringRun = tally.closedEarly
        report.completeClients = tally.complete
        report.compression = o.target.compression
        report.compressedFrames = tally.compressedFrames
        report.wireBytes = tally.wireBytes
        if tally.dataFrames > 0 { report.wireBytesPerDelivery = (Double(tally.wireBytes) / Double(tally.dataFrames)).rounded() }
        report.latency = LatencyHistogram(tally.latency).summary
        if tally.lastReceive > firstPublish {
            report.deliverySeconds = Double(tally.lastReceive - firstPublish) / 1e9
            report.deliveriesPerSecond = (Double(tally.unique) / report.deliverySeconds).rounded()
        }

        if let hiveSeconds = measured.hiveSeconds {
            report.hiveMicrosPerMessage = hiveSeconds / Double(max(1, o.messages)) * 1e6
            if tally.unique > 0 { report.hiveMicrosPerDelivery = hiveSeconds / Double(tally.unique) * 1e6 }
        }
        if let switches = measured.hiveSwitches { report.hiveSwitchesPerMessage = Double(switches) / Double(max(1, o.messages)) }
        cpu.generatorTotal = CPUTime.ofSelf() + CPUTime.ofChildren()
        cpu.judge()
        report.cpu = cpu

        judge(&report)
        return report
    }

    static func judge(_ r: inout FanoutReport) {
        if r.connectFailed > 0 { r.problems.append("\(r.connectFailed) clients could not connect: \(r.connectErrors.joined(separator: " | "))") }
        if r.lost > 0 { r.problems.append("\(r.lost) deliveries lost") }
        if r.duplicated > 0 { r.problems.append("\(r.duplicated) deliveries duplicated") }
        if r.outOfOrder > 0 { r.problems.append("\(r.outOfOrder) deliveries out of order") }
        if r.corrupt > 0 { r.problems.append("\(r.corrupt) corrupt deliveries") }
        if r.closedDuringRun > 0 { r.problems.append("\(r.closedDuringRun) clients closed by the server during the run") }
        if r.http.receivedAnything > 0 { r.problems.append("\(r.http.receivedAnything) plain HTTP connections received \(r.http.bytes) bytes") }
        if !r.http.setupErrors.isEmpty { r.problems.append("HTTP probe: \(r.http.setupErrors.first!)") }
        if r.publish.errors > 0 { r.problems.append("\(r.publish.errors) PUBLISH errors") }
        let expected = r.publish.expectedReceivers
        if r.publish.receiversMin != expected || r.publish.receiversMax != expected {
            r.problems.append("PUBLISH reached \(r.publish.receiversMin)...\(r.publish.receiversMax) subscribers (expected \(expected))")
        }
        if r.latency.negative > 0 { r.problems.append("\(r.latency.negative) deliveries received before they were published") }
        r.ok = r.problems.isEmpty
    }

    /// Publishes `messages` payloads, each stamped with the monotonic clock just before its bytes are written.
    /// Back to back: batches of 32 commands per write, replies read at the end (Redis buffers them). Paced: one
    /// command at each tick of an absolute schedule (no drift), its reply read before the next tick.
    static func publish(_ o: FanoutOptions, runID: UInt32, on redis: RedisPublisher) throws -> PublishStats {
        var sequences = Array(0..<o.messages)
        if o.injectFaults {
            sequences = [0, 1, 1, 2, 5, 4] + Array(6..<o.messages)
        }
        let channel = Array(o.channel.utf8)
        return try publish(sequences: sequences, channel: { _ in channel }, rate: o.rate, size: o.size, runID: runID, on: redis)
    }

    /// Publishes the payloads of `sequences`, message `s` on Redis channel `channel(s)`.
    static func publish(
        sequences: [Int], channel: (Int) -> [UInt8], rate: Double?, size: Int, runID: UInt32, on redis: RedisPublisher
    ) throws -> PublishStats {
        var stats = PublishStats()
        stats.targetRate = rate
        stats.mode = rate == nil ? "back-to-back" : "paced"
        let command = Array("PUBLISH".utf8)
        var payload: [UInt8] = []
        payload.reserveCapacity(size)
        var first: UInt64 = 0
        var receivers: [Int] = []
        receivers.reserveCapacity(sequences.count)
        stats.messages = sequences.count

        func record(_ reply: RedisPublisher.Reply) {
            if case .integer(let n) = reply { receivers.append(n) } else { stats.errors += 1 }
        }

        if let rate {
            let interval = 1e9 / rate
            let start = Clock.now() + 1_000_000
            for (i, sequence) in sequences.enumerated() {
                Clock.sleep(until: start + UInt64(Double(i) * interval))
                var bytes: [UInt8] = []
                payload.removeAll(keepingCapacity: true)
                let stamp = Clock.now()
                if i == 0 { first = stamp }
                Payload.encode(runID: runID, sequence: UInt32(sequence), publishedAt: stamp, size: size, into: &payload)
                RedisPublisher.encode([command, channel(sequence), payload], into: &bytes)
                try redis.send(bytes)
                record(try redis.readReply())
            }
            stats.seconds = Double(Clock.now() - first) / 1e9
        } else {
            var i = 0
            while i < sequences.count {
                var bytes: [UInt8] = []
                for _ in 0..<min(32, sequences.count - i) {
                    payload.removeAll(keepingCapacity: true)
                    let stamp = Clock.now()
                    if i == 0 { first = stamp }
                    Payload.encode(runID: runID, sequence: UInt32(sequences[i]), publishedAt: stamp, size: size, into: &payload)
                    RedisPublisher.encode([command, channel(sequences[i]), payload], into: &bytes)
                    i += 1
                }
                try redis.send(bytes)
            }
            stats.seconds = Double(Clock.now() - first) / 1e9
            for _ in 0..<sequences.count { record(try redis.readReply()) }
        }
        stats.firstStamp = first
        stats.achievedRate = stats.seconds > 0 ? (Double(sequences.count - 1) / stats.seconds).rounded() : 0
        stats.receiversMin = receivers.min() ?? 0
        stats.receiversMax = receivers.max() ?? 0
        return stats
    }
}
