import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

struct RoundtripOptions: Sendable {
    var target = ConnectTarget()
    var clients = 100
    var messages = 1000
    var size = 64
    var threads = 1
    var hivePids: [Int32] = []

    init(_ args: Arguments) throws {
        target.host = try args.loopbackHost()
        target.port = try args.int("port", default: 9501)
        target.path = args.string("path", default: "/echo")
        clients = try args.int("clients", default: clients)
        messages = try args.int("messages", default: messages)
        size = try args.int("size", default: size)
        threads = try args.int("threads", default: threads)
        hivePids = try args.pids("hive-pids")
        guard clients >= 1, clients <= 10_000, messages >= 1, size >= Payload.minimumSize else {
            throw Arguments.UsageError(description: "roundtrip needs 1...10000 clients, >= 1 message, size >= \(Payload.minimumSize)")
        }
    }

    /// Generous: 1 ms per round trip per client on top of connecting.
    var runBudget: Double { 30 + Double(messages) * 0.005 }
    var globalTimeout: Double { 60 + runBudget }
}

/// `hive-bench roundtrip`: each client sends one message on /echo and waits for it before sending the next. One
/// process (100 clients need no sharding); every client starts only once all are connected.
enum Roundtrip {
    static func run(_ o: RoundtripOptions) throws -> RoundtripReport {
        armGlobalTimeout(seconds: o.globalTimeout)
        var report = RoundtripReport()
        report.clients = o.clients
        report.messagesPerClient = o.messages
        report.size = o.size
        report.expected = UInt64(o.clients) * UInt64(o.messages)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, o.threads))
        var table: [ObjectIdentifier: NIOLoopBound<EchoRecorder>] = [:]
        var loops: [EventLoop] = []
        for loop in group.makeIterator() {
            loops.append(loop)
            table[ObjectIdentifier(loop)] = try loop.submit {
                NIOLoopBound(EchoRecorder(messagesPerClient: o.messages, size: o.size), eventLoop: loop)
            }.wait()
        }
        let recorders = table
        let summary = ClientPool.connect(group: group, target: o.target, clients: 0..<o.clients) { loop, index in
            EchoBehaviour(recorder: recorders[ObjectIdentifier(loop)]!.value, client: UInt32(index))
        }
        report.connected = summary.channels.count
        report.connectFailed = summary.failed
        report.connectErrors = summary.errors

        func progress() -> Int {
            loops.reduce(0) { sum, loop in
                let bound = recorders[ObjectIdentifier(loop)]!
                return sum + ((try? loop.submit { bound.value.finished + bound.value.closedEarly }.wait()) ?? 0)
            }
        }

        let hivePids = ProcFS.withChildren(o.hivePids)
        let hiveCPUBefore = hivePids.compactMap(ProcFS.cpu).reduce(0, +)
        let machineBefore = ProcFS.machineBusy()
        let cpuBefore = CPUTime.ofSelf()
        let start = Clock.now()
        for channel in summary.channels { channel.pipeline.fireUserInboundEventTriggered(StartSending()) }
        let deadline = start + UInt64(o.runBudget * 1e9)
        while progress() < summary.channels.count {
            if Clock.now() >= deadline {
                report.timedOut = true
                break
            }
            Clock.sleep(seconds: 0.005)
        }
        let windowSeconds = Double(Clock.now() - start) / 1e9
        let cpuWindow = CPUTime.ofSelf() - cpuBefore
        let hiveCPUAfter = hivePids.compactMap(ProcFS.cpu).reduce(0, +)
        let machineAfter = ProcFS.machineBusy()

        var latency = LatencyHistogram()
        var lastReceive: UInt64 = 0
        for loop in loops {
            let bound = recorders[ObjectIdentifier(loop)]!
            let part = try loop.submit { () -> (UInt64, UInt64, Int, UInt64, WireHistogram) in
                let r = bound.value
                return (r.roundTrips, r.mismatched, r.closedEarly, r.lastReceive, r.latency.wire)
            }.wait()
            report.roundTrips += part.0
            report.mismatched += part.1
            report.closedDuringRun += part.2
            lastReceive = max(lastReceive, part.3)
            latency.merge(LatencyHistogram(part.4))
        }
        report.latency = latency.summary
        if lastReceive > start {
            report.seconds = Double(lastReceive - start) / 1e9
            report.messagesPerSecond = (Double(report.roundTrips) / report.seconds).rounded()
        }

        var cpu = CPUShare()
        cpu.windowSeconds = windowSeconds
        cpu.generatorCores = cpuWindow.total / windowSeconds
        cpu.busiestGeneratorProcessCores = cpu.generatorCores
        cpu.generatorThreadsPerProcess = o.threads
        if !hivePids.isEmpty { cpu.hiveCores = (hiveCPUAfter - hiveCPUBefore) / windowSeconds }
        cpu.machineCores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        if let a = machineAfter, let b = machineBefore { cpu.machineBusyCores = (a - b) / windowSeconds }
        cpu.generatorTotal = CPUTime.ofSelf() + CPUTime.ofChildren()
        cpu.judge()
        report.cpu = cpu

        if report.connectFailed > 0 { report.problems.append("\(report.connectFailed) clients could not connect: \(report.connectErrors.joined(separator: " | "))") }
        if report.roundTrips < UInt64(report.connected) * UInt64(o.messages) {
            report.problems.append("\(UInt64(report.connected) * UInt64(o.messages) - report.roundTrips) round trips missing")
        }
        if report.mismatched > 0 { report.problems.append("\(report.mismatched) echoes differed from what was sent") }
        if report.closedDuringRun > 0 { report.problems.append("\(report.closedDuringRun) clients closed during the run") }
        report.ok = report.problems.isEmpty

        for channel in summary.channels { channel.close(promise: nil) }
        try? group.syncShutdownGracefully()
        return report
    }
}
