import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The hidden `shard` subcommand: one generator process holding its share of the WebSocket clients (fan-out receivers
/// or idle connections), driven by the coordinator over stdin/stdout (ShardProtocol.swift).
enum Shard {
    static func run(_ options: ShardOptions) -> Never {
        if options.role == "channels" { ChannelsShard.run(options) }
        armGlobalTimeout(seconds: options.timeout)
        let commands = CommandInbox.start()

        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.threads))
        // One recorder per event loop, reachable only on that loop: recording a delivery needs no lock.
        var recorders: [ObjectIdentifier: NIOLoopBound<FanoutRecorder>] = [:]
        var loops: [EventLoop] = []
        for loop in group.makeIterator() {
            loops.append(loop)
            let recorder = try! loop.submit {
                NIOLoopBound(FanoutRecorder(messages: options.messages, size: options.size, runID: options.runID), eventLoop: loop)
            }.wait()
            recorders[ObjectIdentifier(loop)] = recorder
        }
        let table = recorders

        let summary = ClientPool.connect(
            group: group, target: options.target, clients: options.first..<(options.first + options.clients)
        ) { loop, _ in
            FanoutBehaviour(recorder: table[ObjectIdentifier(loop)]!.value)
        }
        emit(ShardMessage(
            type: "connected", shard: options.shard, clients: options.clients, connected: summary.channels.count,
            failed: summary.failed, retried: summary.retried, errors: summary.errors, connectSeconds: summary.seconds,
            rss: ProcFS.selfRSS(), connectTimes: options.role == "storm" ? summary.connectTimes.wire : nil,
            retryReasons: summary.retryReasons
        ))

        commands.wait(for: "go")
        let cpuAtGo = CPUTime.ofSelf()
        let wallAtGo = Clock.now()
        emit(ShardMessage(type: "going", shard: options.shard))

        let end = commands.wait(for: "end")
        let deadline = end.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } ?? Clock.now()
        // Done when every connected client has every message, or at the deadline. Polled every 5 ms: the receive
        // times are taken on the event loops, so polling granularity does not touch the measurement.
        func settled() -> Int {
            loops.reduce(0) { sum, loop in
                let bound = table[ObjectIdentifier(loop)]!
                return sum + ((try? loop.submit { bound.value.tally.complete + bound.value.tally.closedEarly }.wait()) ?? 0)
            }
        }
        var timedOut = false
        if options.messages > 0 {
            while settled() < summary.channels.count {
                if Clock.now() >= deadline {
                    timedOut = true
                    break
                }
                Clock.sleep(seconds: 0.005)
            }
        }
        // The window ends when the last client is complete: say so at once (the coordinator samples hive's and
        // Redis' CPU then), and linger a moment before the tally so a late duplicate (a second subscriber, a replayed
        // write) is still counted.
        let cpuNow = CPUTime.ofSelf()
        emit(ShardMessage(
            type: "complete", shard: options.shard, cpuWindow: cpuNow - cpuAtGo, cpuTotal: cpuNow,
            windowSeconds: Double(Clock.now() - wallAtGo) / 1e9, timedOut: timedOut
        ))
        if options.messages > 0 && !timedOut { Clock.sleep(seconds: 0.25) }
        var result = FanoutTally()
        for loop in loops {
            let bound = table[ObjectIdentifier(loop)]!
            if let part = try? loop.submit({ bound.value.snapshot }).wait() { result.add(part) }
        }
        emit(ShardMessage(
            type: "result", shard: options.shard, clients: options.clients, connected: summary.channels.count,
            tally: result, rss: ProcFS.selfRSS()
        ))
        if options.hold { commands.wait(for: "exit") }
        // No orderly shutdown: exiting closes every socket at once, which is all a finished shard needs.
        _exit(0)
    }

    static func emit(_ message: ShardMessage) {
        guard var bytes = try? Array(JSONEncoder().encode(message)) else { return }
        bytes.append(10)
        writeAll(1, bytes)
    }
}

/// Commands from the coordinator, read by a thread of their own so that the main thread may block in a connect phase;
/// end of input means the coordinator is gone, and the shard exits at once.
final class CommandInbox: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])

    static func start() -> CommandInbox {
        let inbox = CommandInbox()
        Thread.detachNewThread {
            var buffer: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { _exit(2) }
                buffer.append(contentsOf: chunk[0..<n])
                while let newline = buffer.firstIndex(of: 10) {
                    let line = String(decoding: buffer[..<newline], as: UTF8.self)
                    buffer.removeSubrange(...newline)
                    inbox.lines.withLockedValue { $0.append(line) }
                }
            }
        }
        return inbox
    }

    /// Blocks until a line starting with `word` arrives (earlier lines of other words are dropped).
    @discardableResult
    func wait(for word: String) -> String {
        while true {
            let found: String? = lines.withLockedValue { lines in
                while !lines.isEmpty {
                    let line = lines.removeFirst()
                    if line == word || line.hasPrefix(word + " ") { return line }
                }
                return nil
            }
            if let found { return found }
            Clock.sleep(seconds: 0.002)
        }
    }
}
