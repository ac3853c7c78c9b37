import Foundation
import NIOConcurrencyHelpers

struct PublishOptions: Sendable {
    var host = "127.0.0.1"
    var port = 9501
    var redis = "redis://127.0.0.1:6379"
    var apiKey = ""
    var channel = "bench"
    var messages = 20_000
    /// Keep-alive connections publishing at once, one thread each, one request in flight on each.
    var connections = 8
    var size = 64
    var hivePids: [Int32] = []
    var timeoutOverride: Double?

    init(_ args: Arguments) throws {
        host = try args.loopbackHost()
        port = try args.int("port", default: port)
        redis = args.string("redis", default: redis)
        apiKey = args.string("api-key", default: ProcessInfo.processInfo.environment["HIVE_API_KEY"] ?? "")
        channel = args.string("channel", default: channel)
        messages = try args.int("messages", default: messages)
        connections = try args.int("connections", default: connections)
        size = try args.int("size", default: size)
        hivePids = try args.pids("hive-pids")
        timeoutOverride = try args.optionalDouble("timeout")
        guard !apiKey.isEmpty else {
            throw Arguments.UsageError(description: "publish uses POST /api/publish: give hive's key with --api-key or HIVE_API_KEY")
        }
        guard messages >= 1, (1...256).contains(connections), (1...65_536).contains(size) else {
            throw Arguments.UsageError(description: "--messages >= 1, --connections 1...256, --size 1...65536")
        }
    }

    var globalTimeout: Double { timeoutOverride ?? (30 + Double(messages) / 200) }
}

struct PublishReport: Codable, Sendable {
    var scenario = "publish"
    var channel = ""
    var messages = 0
    var connections = 0
    var size = 0
    var published = 0
    var failed = 0
    var errors: [String] = []
    var seconds = 0.0
    var publishesPerSecond = 0.0
    /// Request written to answer read, per publish.
    var latency = LatencySummary(samples: 0, negative: 0)
    /// CPU per published message over the window: hive (master + workers) and redis-server (INFO cpu).
    var hiveMicrosPerMessage: Double?
    var redisMicrosPerMessage: Double?
    var cpu = CPUShare()
    var ok = false
    var problems: [String] = []
}

/// `hive-bench publish`: M messages through hive's `POST /api/publish?channel=C` on K keep-alive connections as fast
/// as answers come. Run once on a channel with history (the worker calls the history script) and once on one without
/// (a plain PUBLISH), same payload: `make bench`'s history_publish against plain_publish.
enum PublishThroughput {
    static func run(_ o: PublishOptions) throws -> PublishReport {
        armGlobalTimeout(seconds: o.globalTimeout)
        var report = PublishReport()
        report.channel = o.channel
        report.messages = o.messages
        report.connections = o.connections
        report.size = o.size
        let payload = Array(repeating: UInt8(ascii: "x"), count: o.size)
        let redis = try RedisPublisher(url: o.redis)

        struct Shared {
            var next = 0
            var published = 0
            var failed = 0
            var errors: [String] = []
            var latency = LatencyHistogram()
        }
        let shared = NIOLockedValueBox(Shared())
        let hivePids = ProcFS.withChildren(o.hivePids)
        let hiveBefore = hivePids.compactMap(ProcFS.cpu).reduce(0, +)
        let redisBefore = redis.serverCPU()
        let machineBefore = ProcFS.machineBusy()
        let cpuBefore = CPUTime.ofSelf()
        let start = Clock.now()
        let done = DispatchGroup()
        for _ in 0..<o.connections {
            done.enter()
            Thread {
                defer { done.leave() }
                let publisher = HTTPPublisher(host: o.host, port: o.port, apiKey: o.apiKey)
                var latency = LatencyHistogram()
                while true {
                    let taken = shared.withLockedValue { state -> Bool in
                        guard state.next < o.messages else { return false }
                        state.next += 1
                        return true
                    }
                    guard taken else { break }
                    let sent = Clock.now()
                    let outcome: String?
                    do {
                        let answer = try publisher.post(channel: o.channel, body: payload)
                        outcome = answer.status == 200 ? nil : "\(answer.status) \(answer.body)"
                    } catch {
                        outcome = "\(error)"
                    }
                    latency.record(sent: sent, received: Clock.now())
                    shared.withLockedValue { state in
                        if let outcome {
                            state.failed += 1
                            if state.errors.count < 5 && !state.errors.contains(outcome) { state.errors.append(outcome) }
                        } else {
                            state.published += 1
                        }
                    }
                }
                shared.withLockedValue { $0.latency.merge(latency) }
            }.start()
        }
        done.wait()
        let seconds = Double(Clock.now() - start) / 1e9
        let cpuWindow = CPUTime.ofSelf() - cpuBefore
        let hiveAfter = hivePids.compactMap(ProcFS.cpu).reduce(0, +)
        let redisAfter = redis.serverCPU()
        let machineAfter = ProcFS.machineBusy()

        let state = shared.withLockedValue { $0 }
        report.published = state.published
        report.failed = state.failed
        report.errors = state.errors
        report.seconds = seconds
        report.publishesPerSecond = (Double(state.published) / max(seconds, 1e-9)).rounded()
        report.latency = state.latency.summary
        let count = Double(max(1, state.published))
        if !hivePids.isEmpty { report.hiveMicrosPerMessage = (hiveAfter - hiveBefore) / count * 1e6 }
        if let a = redisAfter, let b = redisBefore { report.redisMicrosPerMessage = (a - b) / count * 1e6 }

        var cpu = CPUShare()
        cpu.windowSeconds = seconds
        cpu.generatorCores = cpuWindow.total / max(seconds, 1e-9)
        cpu.busiestGeneratorProcessCores = cpu.generatorCores
        cpu.generatorThreadsPerProcess = o.connections
        if !hivePids.isEmpty { cpu.hiveCores = (hiveAfter - hiveBefore) / max(seconds, 1e-9) }
        if let a = redisAfter, let b = redisBefore { cpu.redisCores = (a - b) / max(seconds, 1e-9) }
        cpu.machineCores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        if let a = machineAfter, let b = machineBefore { cpu.machineBusyCores = (a - b) / max(seconds, 1e-9) }
        cpu.generatorTotal = CPUTime.ofSelf()
        cpu.judge()
        report.cpu = cpu

        if state.failed > 0 { report.problems.append("\(state.failed) publishes failed: \(state.errors.joined(separator: " | "))") }
        report.ok = report.problems.isEmpty && state.published == o.messages
        return report
    }

    static func text(_ r: PublishReport) -> String {
        var lines = [
            "publish: \(r.published)/\(r.messages) messages of \(r.size) B to \(r.channel) through POST /api/publish on "
                + "\(r.connections) connections: \(Int(r.publishesPerSecond)) publishes/s",
            "  request latency: \(Output.latencyLine(r.latency))",
            "  CPU per message: hive \(Output.us(r.hiveMicrosPerMessage)), redis \(Output.us(r.redisMicrosPerMessage))",
            "  cpu: \(Output.cpuLine(r.cpu))",
        ]
        for problem in r.problems { lines.append("  problem: \(problem)") }
        lines.append(r.ok ? "  OK" : "  FAILED")
        return lines.joined(separator: "\n")
    }
}
