import Foundation

/// CPU spent during a measurement window, in cores (CPU seconds / wall seconds), by who spent it. The generator, the
/// server and Redis share 2 cores here: the split says whether the server or the generator set the pace.
struct CPUShare: Codable, Sendable {
    var windowSeconds = 0.0
    /// Every generator process together (coordinator + shards) during the window.
    var generatorCores = 0.0
    /// The busiest single generator process, in cores; a process near its thread count was saturated.
    var busiestGeneratorProcessCores = 0.0
    var generatorThreadsPerProcess = 1
    /// Hive master + workers (from /proc/<pid>/stat), when their pids were given.
    var hiveCores: Double?
    /// redis-server (INFO cpu), for fan-out runs.
    var redisCores: Double?
    var machineCores = 0
    /// Everything the machine did in the window (from /proc/stat, softirq included), in cores.
    var machineBusyCores: Double?
    /// Whole run, as getrusage reports it: RUSAGE_SELF of the coordinator plus RUSAGE_CHILDREN (its reaped shards).
    var generatorTotal = CPUTime.zero
    var generatorBottleneck = false
    var note = ""

    mutating func judge() {
        let busiest = busiestGeneratorProcessCores / Double(max(1, generatorThreadsPerProcess))
        let used = machineBusyCores ?? (generatorCores + (hiveCores ?? 0) + (redisCores ?? 0))
        var notes: [String] = []
        if busiest >= 0.85 {
            generatorBottleneck = true
            notes.append(String(format: "a generator process used %.2f of its %d thread(s): the generator was the bottleneck",
                                busiestGeneratorProcessCores, generatorThreadsPerProcess))
        }
        if machineCores > 0, used >= 0.85 * Double(machineCores) {
            notes.append(String(format: "the machine was CPU-bound (%.2f of %d cores busy; generator processes %.0f%% of that)",
                                used, machineCores, 100 * generatorCores / max(used, 1e-9)))
        }
        note = notes.joined(separator: "; ")
    }
}

struct PublishStats: Codable, Sendable {
    var messages = 0
    var mode = "back-to-back"
    var targetRate: Double?
    /// First publish stamp to the last PUBLISH written.
    var seconds = 0.0
    var achievedRate = 0.0
    /// PUBLISH replies: the number of subscribers that got each message. Hive's worker 0 is the only one, so
    /// anything but 1 is worth knowing (0: subscription lost; 2: two subscribers at once).
    var receiversMin = 0
    var receiversMax = 0
    /// What every reply should say (1 for Hive).
    var expectedReceivers = 1
    var errors = 0
    /// CLOCK_MONOTONIC of the first publish: the start of the delivery window.
    var firstStamp: UInt64 = 0
}

struct FanoutReport: Codable, Sendable, ConnectOutcome {
    var scenario = "fanout"
    var clients = 0
    var connected = 0
    var connectFailed = 0
    var connectRetried = 0
    var connectErrors: [String] = []
    var connectSeconds = 0.0
    var processes = 0
    var messages = 0
    var size = 0
    var publish = PublishStats()
    var expectedDeliveries: UInt64 = 0
    /// Unique (client, message) pairs received.
    var deliveries: UInt64 = 0
    var lost: UInt64 = 0
    var duplicated: UInt64 = 0
    var outOfOrder: UInt64 = 0
    /// Deliveries that were not a payload of this run's size (truncated, mangled) or belonged to another run.
    var corrupt: UInt64 = 0
    var foreign: UInt64 = 0
    /// Clients the server closed before they had every message.
    var closedDuringRun = 0
    var completeClients = 0
    var timedOut = false
    /// First publish to last receive.
    var deliverySeconds = 0.0
    var deliveriesPerSecond = 0.0
    /// Whether clients offered permessage-deflate, how many data frames came compressed, and the data frames'
    /// bytes on the wire (headers included) in all and per delivery.
    var compression = false
    var compressedFrames: UInt64 = 0
    var wireBytes: UInt64 = 0
    var wireBytesPerDelivery = 0.0
    var latency = LatencySummary(samples: 0, negative: 0)
    var http = HTTPProbeResult()
    var cpu = CPUShare()
    /// The server's CPU (every thread of the `--hive-pids` processes) over the window, per message published and
    /// per delivery: what a message to this many clients costs it.
    var hiveMicrosPerMessage: Double?
    var hiveMicrosPerDelivery: Double?
    /// Times the server's threads were switched onto a CPU, per message: its wake-ups and preemptions.
    var hiveSwitchesPerMessage: Double?
    var generatorRSSPerProcessMB: [Double] = []
    var ok = false
    var problems: [String] = []
}

struct RoundtripReport: Codable, Sendable {
    var scenario = "roundtrip"
    var clients = 0
    var connected = 0
    var connectFailed = 0
    var connectErrors: [String] = []
    var messagesPerClient = 0
    var size = 0
    var roundTrips: UInt64 = 0
    var expected: UInt64 = 0
    var mismatched: UInt64 = 0
    var closedDuringRun = 0
    var timedOut = false
    var seconds = 0.0
    var messagesPerSecond = 0.0
    var latency = LatencySummary(samples: 0, negative: 0)
    var cpu = CPUShare()
    var ok = false
    var problems: [String] = []
}

struct ProcessMemory: Codable, Sendable {
    var pid: Int32
    var rssBytes: Int
    var pssBytes: Int?
    var rssFileBytes: Int?
    var fds: Int?
}

/// What the hive processes' memory grew by, per connection: RSS, PSS (a shared page counted once) and RSS without
/// file-backed pages (code paged in once per process), from samples taken before the first client and after the last.
struct MemoryGrowth {
    var rssBeforeBytes = 0
    var rssAfterBytes = 0
    var rssPerConnectionBytes = 0.0
    var pssPerConnectionBytes: Double?
    var anonPerConnectionBytes: Double?

    init(before: [ProcessMemory], after: [ProcessMemory], processes: Int, connections: Int) {
        rssBeforeBytes = before.reduce(0) { $0 + $1.rssBytes }
        rssAfterBytes = after.reduce(0) { $0 + $1.rssBytes }
        let n = Double(max(1, connections))
        rssPerConnectionBytes = (Double(rssAfterBytes - rssBeforeBytes) / n).rounded()
        let pss = (before.compactMap(\.pssBytes), after.compactMap(\.pssBytes))
        if pss.0.count == processes, pss.1.count == processes {
            pssPerConnectionBytes = (Double(pss.1.reduce(0, +) - pss.0.reduce(0, +)) / n).rounded()
        }
        anonPerConnectionBytes = Idle.withoutFilePages(before, after, processes: processes, over: n)
    }

    /// "hive RSS 64 KiB -> 100 KiB = 3724 B per connection (PSS 3179 B); without file pages (code) 3689 B"
    static func line(rssBefore: Int, rssAfter: Int, rss: Double, pss: Double?, anon: Double?) -> String {
        "hive RSS \(rssBefore / 1024) KiB -> \(rssAfter / 1024) KiB = \(String(format: "%.0f", rss)) B per connection"
            + (pss.map { String(format: " (PSS %.0f B)", $0) } ?? "")
            + (anon.map { String(format: "; without file pages (code) %.0f B", $0) } ?? "")
    }
}

/// The reports that measure memory per connection keep `MemoryGrowth`'s figures as fields of their own (the JSON
/// `make bench` reads).
protocol MemoryReport {
    var rssBeforeBytes: Int { get set }
    var rssAfterBytes: Int { get set }
    var rssPerConnectionBytes: Double { get set }
    var pssPerConnectionBytes: Double? { get set }
    var anonPerConnectionBytes: Double? { get set }
}

extension MemoryReport {
    mutating func record(_ growth: MemoryGrowth) {
        rssBeforeBytes = growth.rssBeforeBytes
        rssAfterBytes = growth.rssAfterBytes
        rssPerConnectionBytes = growth.rssPerConnectionBytes
        pssPerConnectionBytes = growth.pssPerConnectionBytes
        anonPerConnectionBytes = growth.anonPerConnectionBytes
    }

    var memoryLine: String {
        MemoryGrowth.line(rssBefore: rssBeforeBytes, rssAfter: rssAfterBytes, rss: rssPerConnectionBytes,
                          pss: pssPerConnectionBytes, anon: anonPerConnectionBytes)
    }
}

struct IdleReport: Codable, Sendable, MemoryReport {
    var scenario = "idle"
    var clients = 0
    var connected = 0
    var connectFailed = 0
    var connectErrors: [String] = []
    var connectSeconds = 0.0
    var processes = 0
    var hivePids: [Int32] = []
    var before: [ProcessMemory] = []
    var after: [ProcessMemory] = []
    var rssBeforeBytes = 0
    var rssAfterBytes = 0
    var rssPerConnectionBytes = 0.0
    var pssPerConnectionBytes: Double?
    /// The RSS per connection less its file-backed pages (code paged in once per process, not per connection).
    var anonPerConnectionBytes: Double?
    var fdsBefore: Int?
    var fdsAfter: Int?
    /// Connections the server closed while they were held idle (must be 0 within the ping interval).
    var closedWhileIdle = 0
    var settleSeconds = 0.0
    var generatorRSSPerConnectionBytes = 0.0
    var ok = false
    var problems: [String] = []
}

enum Output {
    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    static func us(_ value: Double?) -> String {
        guard let value else { return "-" }
        return value >= 1000 ? String(format: "%.2f ms", value / 1000) : String(format: "%.0f µs", value)
    }

    static func latencyLine(_ l: LatencySummary) -> String {
        "p50 \(us(l.p50Us))  p90 \(us(l.p90Us))  p99 \(us(l.p99Us))  max \(us(l.maxUs))  (\(l.samples) samples)"
    }

    static func cpuLine(_ c: CPUShare) -> String {
        var parts = [String(format: "generator %.2f cores (busiest process %.2f)", c.generatorCores, c.busiestGeneratorProcessCores)]
        if let h = c.hiveCores { parts.append(String(format: "hive %.2f", h)) }
        if let r = c.redisCores { parts.append(String(format: "redis %.2f", r)) }
        if let m = c.machineBusyCores { parts.append(String(format: "machine busy %.2f of %d", m, c.machineCores)) }
        parts.append(String(format: "generator total %.2f s", c.generatorTotal.total))
        return parts.joined(separator: ", ") + (c.note.isEmpty ? "" : "\n  note: \(c.note)")
    }

    static func text(_ r: FanoutReport) -> String {
        """
        fanout: \(r.connected)/\(r.clients) clients in \(r.processes) process(es), \(r.messages) × \(r.size) B \
        \(r.publish.mode)\(r.publish.targetRate.map { String(format: " at %.0f/s", $0) } ?? "")
          publish: \(String(format: "%.3f s (%.0f msg/s)", r.publish.seconds, r.publish.achievedRate)), receivers \(r.publish.receiversMin)...\(r.publish.receiversMax)
          deliveries: \(r.deliveries)/\(r.expectedDeliveries) in \(String(format: "%.3f s = %.0f/s", r.deliverySeconds, r.deliveriesPerSecond))
          lost \(r.lost), duplicated \(r.duplicated), out of order \(r.outOfOrder), corrupt \(r.corrupt), foreign \(r.foreign), closed \(r.closedDuringRun)\(r.timedOut ? ", TIMED OUT" : "")
          latency: \(latencyLine(r.latency))
          http idle: \(r.http.receivedAnything)/\(r.http.connections) received bytes (\(r.http.bytes) B), \(r.http.closedByServer) closed by server
          cpu: \(cpuLine(r.cpu))\(serverLine(r))
          \(r.ok ? "OK" : "PROBLEMS: " + r.problems.joined(separator: "; "))
        """
    }

    /// The server's CPU per message and per delivery, as a line of its own (empty without --hive-pids).
    static func serverLine(_ r: FanoutReport) -> String {
        guard let message = r.hiveMicrosPerMessage else { return "" }
        return String(format: "\n  server: %.1f µs CPU per message", message)
            + (r.hiveMicrosPerDelivery.map { String(format: " (%.2f µs per delivery)", $0) } ?? "")
            + (r.hiveSwitchesPerMessage.map { String(format: ", %.1f context switches per message", $0) } ?? "")
    }

    static func text(_ r: RoundtripReport) -> String {
        """
        roundtrip: \(r.connected)/\(r.clients) clients × \(r.messagesPerClient) messages of \(r.size) B on /echo
          \(r.roundTrips)/\(r.expected) round trips in \(String(format: "%.3f s = %.0f messages/s", r.seconds, r.messagesPerSecond)), mismatched \(r.mismatched)
          latency: \(latencyLine(r.latency))
          cpu: \(cpuLine(r.cpu))
          \(r.ok ? "OK" : "PROBLEMS: " + r.problems.joined(separator: "; "))
        """
    }

    static func text(_ r: IdleReport) -> String {
        """
        idle: \(r.connected)/\(r.clients) idle WebSocket connections in \(r.processes) process(es)
          \(r.memoryLine)
          hive fds \(r.fdsBefore.map(String.init) ?? "?") -> \(r.fdsAfter.map(String.init) ?? "?"); generator \(String(format: "%.0f", r.generatorRSSPerConnectionBytes)) B per connection
          \(r.ok ? "OK" : "PROBLEMS: " + r.problems.joined(separator: "; "))
        """
    }
}
