import Foundation
import NIOCore
import NIOPosix

/// A shard of the channels scenario: its clients join `ch<i % K>` at connect and stay for both phases. The
/// conversation is the fan-out one (ShardProtocol.swift) with `go` / `end` / `complete` once per phase:
///
///     shard -> connected;  (coord -> go, shard -> going, coord -> end <deadline>, shard -> complete) x 2;  shard -> result
///
/// A phase is complete when every client has every message of that phase meant for it (or the deadline passed).
enum ChannelsShard {
    static func run(_ options: ShardOptions) -> Never {
        armGlobalTimeout(seconds: options.timeout)
        let commands = CommandInbox.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.threads))
        var recorders: [ObjectIdentifier: NIOLoopBound<ChannelsRecorder>] = [:]
        var loops: [EventLoop] = []
        for loop in group.makeIterator() {
            loops.append(loop)
            recorders[ObjectIdentifier(loop)] = try! loop.submit {
                NIOLoopBound(
                    ChannelsRecorder(
                        channels: options.target.channels, channelMessages: options.channelMessages,
                        messages: options.messages, size: options.size, runID: options.runID),
                    eventLoop: loop)
            }.wait()
        }
        let table = recorders
        let channels = max(1, options.target.channels)

        let summary = ClientPool.connect(
            group: group, target: options.target, clients: options.first..<(options.first + options.clients)
        ) { loop, index in
            let recorder = table[ObjectIdentifier(loop)]!.value
            return ChannelsBehaviour(recorder: recorder, slot: recorder.register(channel: index % channels))
        }
        Shard.emit(ShardMessage(
            type: "connected", shard: options.shard, clients: options.clients, connected: summary.channels.count,
            failed: summary.failed, retried: summary.retried, errors: summary.errors, connectSeconds: summary.seconds,
            rss: ProcFS.selfRSS()
        ))

        func settled(_ phase: Int) -> Int {
            loops.reduce(0) { sum, loop in
                let bound = table[ObjectIdentifier(loop)]!
                return sum + ((try? loop.submit { bound.value.settled(phase: phase) }.wait()) ?? 0)
            }
        }
        for phase in 0..<2 {
            commands.wait(for: "go")
            let cpuAtGo = CPUTime.ofSelf()
            let wallAtGo = Clock.now()
            Shard.emit(ShardMessage(type: "going", shard: options.shard))
            let end = commands.wait(for: "end")
            let deadline = end.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } ?? Clock.now()
            var timedOut = false
            while settled(phase) < summary.channels.count {
                if Clock.now() >= deadline {
                    timedOut = true
                    break
                }
                Clock.sleep(seconds: 0.005)
            }
            let cpuNow = CPUTime.ofSelf()
            Shard.emit(ShardMessage(
                type: "complete", shard: options.shard, cpuWindow: cpuNow - cpuAtGo, cpuTotal: cpuNow,
                windowSeconds: Double(Clock.now() - wallAtGo) / 1e9, timedOut: timedOut
            ))
        }
        // Late strays and duplicates still count.
        Clock.sleep(seconds: 0.25)
        var result = ChannelsShardResult()
        for loop in loops {
            let bound = table[ObjectIdentifier(loop)]!
            if let part = try? loop.submit({ bound.value.snapshot }).wait() { result.add(part) }
        }
        Shard.emit(ShardMessage(
            type: "result", shard: options.shard, clients: options.clients, connected: summary.channels.count,
            rss: ProcFS.selfRSS(), channels: result
        ))
        _exit(0)
    }
}
