import Foundation
import HiveIPC
import HiveRedis

/// A snapshot of a running Hive, read by the CLI from the master's registry and /proc: the master does no work
/// for it beyond handing over the registry descriptor.
struct StatusReport {
    struct Master {
        var pid: Int32
        var version: String
        var listen: String
        var dispatch: String
        var runDirectory: String
        var startedAt: UInt64
        var uptimeSeconds: Double
        var loadAverage: [Double]
        var rssBytes: Int?
        var accepted: UInt64
        var refusedFull: UInt64
        var refusedBusy: UInt64
        var acceptErrors: UInt64
        var reloading: Bool
    }

    struct Worker {
        var id: Int
        var pid: Int32
        var state: WorkerState
        var uptimeSeconds: Double
        var rssBytes: Int?
        var http: UInt64
        var websocket: UInt64
        var requests: UInt64
        var messagesIn: UInt64
        var messagesOut: UInt64
        var pushesFailed: UInt64
        var slowConsumers: UInt64
        var protocolErrors: UInt64
        var restarts: UInt64
        /// How the previous process of this id ended, if one did: "status 1" or "signal 9".
        var lastExit: String?
    }

    struct Redis {
        var state: RedisState
        var address: String
        var channels: [String]
        var patterns: [String]
        var messages: UInt64
        var bytes: UInt64
        var reconnects: UInt64
        var dropped: UInt64
        var oversized: UInt64
        var lastError: String
        var lastMessageAt: UInt64
        var subscribedSince: UInt64
    }

    /// Channel history as Redis has it, for the channels with subscribers: `hive channels` shows it per channel.
    struct History {
        struct Channel {
            var name: String
            var summary: HistoryReader.Summary
        }

        var channels: [Channel]
        /// Why Redis could not be read (then `channels` is empty).
        var problem: String?

        /// Channels whose history exists in Redis (an epoch), and the messages they keep together.
        var kept: Int { channels.filter { $0.summary.epoch != nil }.count }
        var messages: Int { channels.reduce(0) { $0 + $1.summary.length } }
    }

    var master: Master
    var workers: [Worker]
    /// nil when the master keeps no history (no `--history-size`/`--history`).
    var history: History?
    /// nil when the master runs without Redis (`--redis none`).
    var redis: Redis?
    /// Channels with subscribers (the registry's channel table).
    var channels: Int
    var takenAt: Date

    var http: UInt64 { workers.reduce(0) { $0 + $1.http } }
    var websocket: UInt64 { workers.reduce(0) { $0 + $1.websocket } }

    init(facts: MasterFacts) {
        let snapshot = RegistrySnapshot(facts.registry)
        let now = Clock.wallNanoseconds()
        let started = UInt64(facts["started"]) ?? snapshot.master.startedAt
        let pid = Int32(facts["pid"]) ?? 0
        master = Master(
            pid: pid, version: facts["version"], listen: facts["listen"], dispatch: facts["dispatch"],
            runDirectory: facts["run-dir"], startedAt: started,
            uptimeSeconds: Double(now &- started) / 1e9, loadAverage: Self.loadAverage(),
            rssBytes: Self.rss(of: pid),
            accepted: snapshot.master.accepted, refusedFull: snapshot.master.refusedFull,
            refusedBusy: snapshot.master.refusedBusy, acceptErrors: snapshot.master.acceptErrors,
            reloading: facts["reloading"] == "true"
        )
        workers = snapshot.workers.map { worker in
            Worker(
                id: worker.id, pid: worker.pid, state: worker.state,
                uptimeSeconds: worker.pid > 0 ? Double(now &- worker.startedAt) / 1e9 : 0,
                rssBytes: worker.pid > 0 ? Self.rss(of: worker.pid) : nil,
                http: worker.http, websocket: worker.websocket, requests: worker.requests,
                messagesIn: worker.messagesIn, messagesOut: worker.messagesOut, pushesFailed: worker.pushesFailed,
                slowConsumers: worker.slowConsumers, protocolErrors: worker.protocolErrors, restarts: worker.restarts,
                lastExit: worker.lastExit
            )
        }
        if let address = facts.fields["redis-address"] {
            let names = { (key: String) in facts.fields[key].map { $0.split(separator: ",").map(String.init) } ?? [] }
            let words = snapshot.redis
            redis = Redis(
                state: words.state, address: address, channels: names("redis-channels"),
                patterns: names("redis-patterns"), messages: words.messages, bytes: words.bytes,
                reconnects: words.reconnects, dropped: words.dropped, oversized: words.oversized,
                lastError: words.lastError, lastMessageAt: words.lastMessageAt, subscribedSince: words.subscribedSince
            )
        }
        let names = facts.registry.channelSnapshots().map(\.name).sorted()
        channels = names.count
        if facts.fields["history"] != nil {
            let (summaries, problem) = Channels.history(facts, channels: names)
            history = History(channels: zip(names, summaries ?? []).map { History.Channel(name: $0, summary: $1) }, problem: problem)
        }
        takenAt = Date()
    }

    /// Resident memory of a process from /proc/<pid>/status (VmRSS), in bytes.
    static func rss(of pid: Int32) -> Int? {
        guard pid > 0, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        return kilobytes * 1024
    }

    static func loadAverage() -> [Double] {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return [] }
        return text.split(separator: " ").prefix(3).compactMap { Double($0) }
    }

    /// The stable JSON form (field names are documented in Docs/OPERATIONS.md).
    func json(previous: StatusReport? = nil) -> [String: Any] {
        let elapsed = previous.map { takenAt.timeIntervalSince($0.takenAt) } ?? 0
        var object: [String: Any] = [
            "master": [
                "pid": master.pid, "version": master.version, "listen": master.listen, "dispatch": master.dispatch,
                "runDir": master.runDirectory, "startedAt": Double(master.startedAt) / 1e9,
                "uptimeSeconds": (master.uptimeSeconds * 10).rounded() / 10, "loadAverage": master.loadAverage,
                "rssBytes": master.rssBytes as Any, "accepted": master.accepted, "refusedFull": master.refusedFull,
                "refusedBusy": master.refusedBusy, "acceptErrors": master.acceptErrors, "reloading": master.reloading,
            ] as [String: Any],
            "connections": ["total": http + websocket, "http": http, "websocket": websocket],
            "channels": channels,
            "redis": redis.map { redis -> Any in
                let time = { (ns: UInt64) -> Any in ns == 0 ? NSNull() : Double(ns) / 1e9 }
                return [
                    "state": redis.state.description, "address": redis.address, "channels": redis.channels,
                    "patterns": redis.patterns, "messages": redis.messages, "bytes": redis.bytes,
                    "reconnects": redis.reconnects, "dropped": redis.dropped, "oversized": redis.oversized,
                    "lastError": redis.lastError.isEmpty ? NSNull() : redis.lastError,
                    "lastMessageAt": time(redis.lastMessageAt), "subscribedSince": time(redis.subscribedSince),
                ] as [String: Any]
            } ?? NSNull(),
            "history": history.map { history -> Any in
                [
                    "channels": history.kept, "messages": history.messages, "error": history.problem ?? NSNull(),
                    "perChannel": history.channels.map { channel -> [String: Any] in
                        ["channel": channel.name, "length": channel.summary.length, "lastOffset": channel.summary.last,
                         "epoch": channel.summary.epoch ?? NSNull()]
                    },
                ] as [String: Any]
            } ?? NSNull(),
        ]
        object["workers"] = workers.map { worker -> [String: Any] in
            var entry: [String: Any] = [
                "id": worker.id, "pid": worker.pid, "state": worker.state.description, "restarts": worker.restarts,
                "uptimeSeconds": (worker.uptimeSeconds * 10).rounded() / 10, "rssBytes": worker.rssBytes as Any,
                "connections": ["http": worker.http, "websocket": worker.websocket],
                "requests": worker.requests, "messagesIn": worker.messagesIn, "messagesOut": worker.messagesOut,
                "pushesFailed": worker.pushesFailed, "slowConsumers": worker.slowConsumers,
                "protocolErrors": worker.protocolErrors, "lastExit": worker.lastExit as Any,
            ]
            if let before = previous?.workers.first(where: { $0.id == worker.id }), elapsed > 0 {
                entry["rates"] = [
                    "requestsPerSecond": Double(worker.requests &- before.requests) / elapsed,
                    "messagesInPerSecond": Double(worker.messagesIn &- before.messagesIn) / elapsed,
                    "messagesOutPerSecond": Double(worker.messagesOut &- before.messagesOut) / elapsed,
                ]
            }
            return entry
        }
        return object
    }
}
