import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// One client of the recovery scenario, behaving like the demo page (Sources/HiveDemo/DemoPage.swift): it joins one
/// channel with `envelope=json`, remembers the position of the last message it got, and when its connection ends
/// it reconnects after a jittered exponential back-off (500 ms doubling to 8 s, ±20 %, reset once open) with
/// `since=` that position. It de-duplicates nothing: it counts what a user would see, a message twice, one missing,
/// one out of order, a `recovered:false`. Lives on one event loop and is touched only there (its closures run on
/// that loop, and the coordinator reads it through `loop.submit`), hence unchecked.
final class RecoveryClient: @unchecked Sendable {
    struct Tally: Codable, Sendable {
        var clients = 0
        var opened = 0
        var everOpened = 0
        var reconnectedClients = 0
        var reconnects = 0
        var failedAttempts = 0
        var complete = 0
        var exact = 0
        var received: UInt64 = 0
        var lost: UInt64 = 0
        var duplicated: UInt64 = 0
        var outOfOrder: UInt64 = 0
        var recoveredFalse: UInt64 = 0
        var withoutOffset: UInt64 = 0
        var offsetRegressions: UInt64 = 0
        var corrupt: UInt64 = 0
        var lastCompleted: UInt64 = 0
        var failures: [String] = []

        mutating func add(_ other: Tally) {
            clients += other.clients
            opened += other.opened
            everOpened += other.everOpened
            reconnectedClients += other.reconnectedClients
            reconnects += other.reconnects
            failedAttempts += other.failedAttempts
            complete += other.complete
            exact += other.exact
            received += other.received
            lost += other.lost
            duplicated += other.duplicated
            outOfOrder += other.outOfOrder
            recoveredFalse += other.recoveredFalse
            withoutOffset += other.withoutOffset
            offsetRegressions += other.offsetRegressions
            corrupt += other.corrupt
            lastCompleted = max(lastCompleted, other.lastCompleted)
            for failure in other.failures where failures.count < 5 && !failures.contains(failure) { failures.append(failure) }
        }
    }

    struct Setup: Sendable {
        var host = "127.0.0.1"
        var port = 9501
        var channel = "news"
        /// Messages `r1` … `r<messages>` will be published; the client is complete when it has seen each.
        var messages = 0
        var initialDelay = 0.5
        var maxDelay = 8.0
        /// Reconnect with `since=` the last position (false: a page that forgets it, for the check of the checker).
        var resume = true
        /// Without `envelope=json`: the payload as published (`r<seq>:<ns>`), no position (the envelope A/B).
        var plain = false
    }

    /// Publish-to-receive latency of one event loop's clients, by kind: a histogram is 58 KiB, too much per client.
    /// Touched only on its loop (the coordinator reads it through `loop.submit`).
    final class Latencies: @unchecked Sendable {
        var envelope = LatencyHistogram()
        var plain = LatencyHistogram()
    }

    let index: Int
    let loop: EventLoop
    let setup: Setup
    private var seen: [UInt64]
    private var distinct = 0
    private var highest = 0
    private var epoch: [UInt8] = []
    private var offset = 0
    private var since: String?
    private var delay: Double
    private var open = false
    private var stopped = false
    private var connections = 0
    private var completedAt: UInt64 = 0
    private var tally = Tally()

    private let latencies: Latencies

    init(index: Int, loop: EventLoop, setup: Setup, latencies: Latencies) {
        self.index = index
        self.loop = loop
        self.setup = setup
        self.latencies = latencies
        self.seen = [UInt64](repeating: 0, count: (setup.messages + 64) / 64)
        self.delay = setup.initialDelay
        tally.clients = 1
    }

    var path: String {
        guard !setup.plain else { return "/?channels=\(setup.channel)" }
        return "/?channels=\(setup.channel)&envelope=json" + (setup.resume ? since.map { "&since=\($0)" } ?? "" : "")
    }

    // MARK: connecting

    func connect() {
        let handshake = loop.makePromise(of: Void.self)
        let request = WebSocketClientHandler<RecoveryBehaviour>.request(host: setup.host, port: setup.port, path: path)
        let seed = UInt32(truncatingIfNeeded: index &* 2_654_435_761 &+ connections)
        let server: SocketAddress
        let source: SocketAddress
        do {
            server = try SocketAddress(ipAddress: setup.host, port: setup.port)
            source = try SocketAddress(ipAddress: "127.0.0.\(2 + index / 10_000)", port: 0)
        } catch {
            handshake.fail(error)
            return attemptFailed("\(error)")
        }
        ClientBootstrap(group: loop)
            .channelOption(ClientPool.bindAddressNoPort, value: 1)
            .connectTimeout(.seconds(5))
            .bind(to: source)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = WebSocketClientHandler(behaviour: RecoveryBehaviour(client: self), request: request,
                                                         handshake: handshake, seed: seed)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(to: server)
            .flatMap { channel -> EventLoopFuture<Void> in
                let timeout = channel.eventLoop.scheduleTask(in: .seconds(5)) {
                    handshake.fail(HandshakeError(description: "no 101 within 5 s"))
                    channel.close(promise: nil)
                }
                return handshake.futureResult.always { _ in timeout.cancel() }
            }
            .whenFailure { [self] error in
                handshake.fail(error)
                attemptFailed("\(error)")
            }
    }

    private func attemptFailed(_ reason: String) {
        tally.failedAttempts += 1
        if tally.failures.count < 3 && !tally.failures.contains(reason) { tally.failures.append(reason) }
        scheduleReconnect()
    }

    /// The page's `scheduleReconnect`: wait `delay` ±20 %, then double it for the next time (up to the cap).
    private func scheduleReconnect() {
        guard !stopped else { return }
        let wait = delay * Double.random(in: 0.8...1.2)
        delay = min(delay * 2, setup.maxDelay)
        loop.scheduleTask(in: .nanoseconds(Int64(wait * 1e9))) { [self] in
            if !stopped { connect() }
        }
    }

    func stop() { stopped = true }

    // MARK: the behaviour's events

    func opened() {
        open = true
        delay = setup.initialDelay
        connections += 1
        tally.opened += 1
        if connections == 1 {
            tally.everOpened = 1
        } else {
            tally.reconnects += 1
            tally.reconnectedClients = 1
        }
    }

    func closed() {
        open = false
        scheduleReconnect()
    }

    func received(_ payload: UnsafeRawBufferPointer, at time: UInt64) {
        if setup.plain {
            guard let (sequence, stamp) = message(Array(payload)[...]) else {
                tally.corrupt += 1
                return
            }
            tally.received += 1
            latencies.plain.record(sent: stamp, received: time)
            return count(sequence)
        }
        if Self.find(Array(#""recovered":false"#.utf8), in: payload) != nil {
            tally.recoveredFalse += 1
            return
        }
        guard let data = Self.stringValue(of: Self.dataKey, in: payload), let (sequence, stamp) = message(data) else {
            tally.corrupt += 1
            return
        }
        tally.received += 1
        latencies.envelope.record(sent: stamp, received: time)
        if let position = Self.stringValue(of: Self.offsetKey, in: payload), let colon = position.lastIndex(of: UInt8(ascii: ":")),
            let number = Self.integer(position[(colon + 1)...])
        {
            let newEpoch = Array(position[..<colon])
            if newEpoch == epoch && number <= offset { tally.offsetRegressions += 1 }
            epoch = newEpoch
            offset = number
            since = String(decoding: position, as: UTF8.self)
        } else {
            tally.withoutOffset += 1
        }
        count(sequence)
    }

    private func count(_ sequence: Int) {
        let word = sequence / 64
        let bit = UInt64(1) << UInt64(sequence % 64)
        if seen[word] & bit != 0 {
            tally.duplicated += 1
            return
        }
        seen[word] |= bit
        if sequence < highest { tally.outOfOrder += 1 }
        highest = max(highest, sequence)
        distinct += 1
        if distinct == setup.messages { completedAt = Clock.now() }
    }

    var isComplete: Bool { distinct == setup.messages }

    var snapshot: Tally {
        var copy = tally
        copy.complete = isComplete ? 1 : 0
        copy.lost = UInt64(setup.messages - distinct)
        copy.lastCompleted = completedAt
        copy.exact = isComplete && tally.duplicated == 0 && tally.outOfOrder == 0 && tally.recoveredFalse == 0
            && tally.corrupt == 0 && (setup.plain || tally.withoutOffset == 0) ? 1 : 0
        return copy
    }

    // MARK: reading an envelope (the server's own compact JSON; the payloads are `r<digits>`, never escaped)

    private static let dataKey = Array(#""data":""#.utf8)
    private static let offsetKey = Array(#""offset":""#.utf8)

    private static func find(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        for start in 0...(bytes.count - needle.count) where bytes[start] == needle[0] {
            var match = true
            for k in 1..<needle.count where bytes[start + k] != needle[k] {
                match = false
                break
            }
            if match { return start }
        }
        return nil
    }

    private static func stringValue(of key: [UInt8], in bytes: UnsafeRawBufferPointer) -> ArraySlice<UInt8>? {
        guard let start = find(key, in: bytes) else { return nil }
        var end = start + key.count
        while end < bytes.count, bytes[end] != UInt8(ascii: "\"") { end += 1 }
        guard end < bytes.count else { return nil }
        return Array(bytes[(start + key.count)..<end])[...]
    }

    /// `r<sequence>:<publish time, monotonic ns>`, the sequence within 1...messages.
    private func message(_ data: ArraySlice<UInt8>) -> (Int, UInt64)? {
        guard data.first == UInt8(ascii: "r"), let colon = data.firstIndex(of: UInt8(ascii: ":")),
            let sequence = Self.integer(data[(data.startIndex + 1)..<colon]), sequence >= 1, sequence <= setup.messages,
            let stamp = Self.integer(data[(colon + 1)...])
        else { return nil }
        return (sequence, UInt64(stamp))
    }

    private static func integer(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.count <= 18 else { return nil }
        var value = 0
        for digit in digits {
            guard digit >= 48, digit <= 57 else { return nil }
            value = value * 10 + Int(digit - 48)
        }
        return value
    }
}

/// The handler's view of a `RecoveryClient`: the client outlives its connections, the behaviour is per connection.
struct RecoveryBehaviour: ClientBehaviour {
    let client: RecoveryClient

    mutating func opened() { client.opened() }
    mutating func start() -> [UInt8]? { nil }
    mutating func received(_ payload: UnsafeRawBufferPointer, at time: UInt64) -> [UInt8]? {
        client.received(payload, at: time)
        return nil
    }
    mutating func closed() { client.closed() }
}
