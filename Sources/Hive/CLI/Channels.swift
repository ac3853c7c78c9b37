import ArgumentParser
import Foundation
import HiveIPC

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
            let registry = try MasterFacts(client: ControlClient(runDirectory: target.runDirectory)).registry
            let channels = registry.channelSnapshots().sorted { $0.name < $1.name }
            if json {
                print(try jsonText(channels.map { channel -> [String: Any] in
                    ["channel": channel.name, "subscribers": channel.total, "workers": channel.subscribers]
                }))
                return
            }
            var table = [["channel", "subscribers"] + (0..<registry.workerCount).map { "worker \($0)" }]
            for channel in channels {
                table.append([channel.name, String(channel.total)] + channel.subscribers.map(String.init))
            }
            print(StatusReport.table(table).joined(separator: "\n"))
            print("\(channels.count) channels (at most \(registry.channelCapacity), --max-channels)")
        }
    }
}
