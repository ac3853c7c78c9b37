import ArgumentParser
import Foundation
import HiveIPC
import HiveRedis

/// `hive channels`: every channel with subscribers, and how many each worker has, read from the registry's
/// channel table (what worker 0's Redis subscription follows).
struct Channels: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List channels with their subscribers per worker.")

    @OptionGroup var target: RunDirOptions

    @Flag(help: "Print a JSON array.")
    var json = false

    func run() throws {
        try runReporting {
            _ = try target.requireMaster()
            let facts = try MasterFacts(client: ControlClient(runDirectory: target.runDirectory))
            let registry = facts.registry
            let channels = registry.channelSnapshots().sorted { $0.name < $1.name }
            let (history, historyProblem) = Self.history(facts, channels: channels.map(\.name))
            if json {
                print(try jsonText(channels.enumerated().map { index, channel -> [String: Any] in
                    var object: [String: Any] = ["channel": channel.name, "subscribers": channel.total, "workers": channel.subscribers]
                    if let summary = history?[index] {
                        object["history"] = ["length": summary.length, "lastOffset": summary.last, "epoch": summary.epoch ?? NSNull()]
                    }
                    return object
                }))
                return
            }
            let historyColumns = history == nil ? [] : ["history", "last offset", "epoch"]
            var table = [["channel", "subscribers"] + (0..<registry.workerCount).map { "worker \($0)" } + historyColumns]
            for (index, channel) in channels.enumerated() {
                let summary = history.map { $0[index] }
                table.append([channel.name, String(channel.total)] + channel.subscribers.map(String.init)
                    + (summary.map { [String($0.length), String($0.last), $0.epoch ?? "-"] } ?? []))
            }
            print(StatusReport.table(table).joined(separator: "\n"))
            if let historyProblem { print("history: \(historyProblem)") }
            print("\(channels.count) channels (at most \(registry.channelCapacity), --max-channels)")
        }
    }

    /// Each channel's history from Redis, when the master keeps history; or why it could not be read.
    static func history(_ facts: MasterFacts, channels: [String]) -> ([HistoryReader.Summary]?, String?) {
        guard facts.fields["history"] != nil, let address = facts.fields["redis-address"] else { return (nil, nil) }
        let prefix = String((facts.fields["history-prefix"] ?? "=").dropFirst())
        do {
            var url = try RedisURL(parsing: address)
            // The master never tells its password: the operator's environment may (as for `hive publish`).
            if let password = ProcessInfo.processInfo.environment[RedisAddressOptions.passwordVariable], !password.isEmpty {
                url.password = password
            }
            return (try HistoryReader.summaries(url: url, redisChannels: channels.map { prefix + $0 }), nil)
        } catch {
            return (nil, "cannot read it from \(address): \(error); give the password in HIVE_REDIS_PASSWORD if Redis needs one")
        }
    }
}
