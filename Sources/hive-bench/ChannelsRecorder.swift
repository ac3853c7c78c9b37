import NIOCore

/// What the clients of one phase of a channels run received, per shard and then summed (ChannelsShardResult).
struct ChannelsPhaseTally: Codable, Sendable {
    /// Deliveries meant for the clients that connected: their channel's messages, or every broadcast.
    var expected: UInt64 = 0
    var unique: UInt64 = 0
    var duplicates: UInt64 = 0
    /// Channel messages that reached a client not subscribed to their channel.
    var strays: UInt64 = 0
    var outOfOrder: UInt64 = 0
    /// Clients that have every message of this phase meant for them.
    var complete = 0
    var firstReceive: UInt64 = 0
    var lastReceive: UInt64 = 0
    var latency = LatencyHistogram().wire

    mutating func add(_ other: ChannelsPhaseTally) {
        expected += other.expected
        unique += other.unique
        duplicates += other.duplicates
        strays += other.strays
        outOfOrder += other.outOfOrder
        complete += other.complete
        if other.firstReceive != 0 { firstReceive = firstReceive == 0 ? other.firstReceive : min(firstReceive, other.firstReceive) }
        lastReceive = max(lastReceive, other.lastReceive)
        var merged = LatencyHistogram(latency)
        merged.merge(LatencyHistogram(other.latency))
        latency = merged.wire
    }
}

/// A shard's channels result: both phases, and the per-client verdict.
struct ChannelsShardResult: Codable, Sendable {
    var phases: [ChannelsPhaseTally] = []
    /// Clients that received every message meant for them once, and nothing else.
    var exactClients = 0
    var opened = 0
    var closedEarly = 0
    var corrupt: UInt64 = 0
    var foreign: UInt64 = 0

    mutating func add(_ other: ChannelsShardResult) {
        if phases.isEmpty { phases = Array(repeating: ChannelsPhaseTally(), count: other.phases.count) }
        for (i, p) in other.phases.enumerated() where i < phases.count { phases[i].add(p) }
        exactClients += other.exactClients
        opened += other.opened
        closedEarly += other.closedEarly
        corrupt += other.corrupt
        foreign += other.foreign
    }
}

/// The clients of one event loop in a channels run. Sequences 0..<channelMessages are channel messages (message s on
/// channel `s % channels`), the rest broadcasts; client i is in channel `i % channels`. Each client's bitmap of what it
/// got lives here (one slot per client), so a stray, a duplicate and a missing message are each seen per client.
final class ChannelsRecorder {
    let channels: Int
    let channelMessages: Int
    let messages: Int
    let size: Int
    let runID: UInt32

    private struct Client {
        let channel: Int
        let expected: (Int, Int)
        var opened = false
        var closed = false
        var got = (0, 0)
        var wrong = 0
        var highest = -1
        var seen: [UInt64] = []
    }

    private var clients: [Client] = []
    private var phases = [ChannelsPhaseTally(), ChannelsPhaseTally()]
    private var latency = [LatencyHistogram(), LatencyHistogram()]
    private var closedEarly = 0
    private var corrupt: UInt64 = 0
    private var foreign: UInt64 = 0

    init(channels: Int, channelMessages: Int, messages: Int, size: Int, runID: UInt32) {
        self.channels = max(1, channels)
        self.channelMessages = channelMessages
        self.messages = messages
        self.size = size
        self.runID = runID
    }

    /// A slot for a client of `channel` (one per connection attempt; only opened slots count).
    func register(channel: Int) -> Int {
        // Channel messages of this channel: s in 0..<channelMessages with s % channels == channel.
        let mine = channel < channelMessages ? (channelMessages - 1 - channel) / channels + 1 : 0
        clients.append(Client(channel: channel, expected: (mine, messages - channelMessages)))
        return clients.count - 1
    }

    func opened(_ slot: Int) {
        clients[slot].opened = true
        let expected = clients[slot].expected
        phases[0].expected += UInt64(expected.0)
        phases[1].expected += UInt64(expected.1)
        if expected.0 == 0 { phases[0].complete += 1 }
        if expected.1 == 0 { phases[1].complete += 1 }
    }

    func closed(_ slot: Int) {
        guard clients[slot].opened, !clients[slot].closed else { return }
        clients[slot].closed = true
        let c = clients[slot]
        if c.got.0 < c.expected.0 || c.got.1 < c.expected.1 { closedEarly += 1 }
    }

    func received(_ slot: Int, _ payload: UnsafeRawBufferPointer, at time: UInt64) {
        switch Payload.decode(payload, runID: runID, size: size) {
        case .corrupt:
            corrupt += 1
            clients[slot].wrong += 1
        case .foreign:
            foreign += 1
        case .ok(let sequence, let publishedAt):
            let seq = Int(sequence)
            guard seq < messages else {
                corrupt += 1
                clients[slot].wrong += 1
                return
            }
            let phase = seq < channelMessages ? 0 : 1
            if phase == 0 && seq % channels != clients[slot].channel {
                phases[0].strays += 1
                clients[slot].wrong += 1
                return
            }
            if clients[slot].seen.isEmpty { clients[slot].seen = Array(repeating: 0, count: (messages + 63) / 64) }
            let bit: UInt64 = 1 << UInt64(seq & 63)
            if clients[slot].seen[seq >> 6] & bit != 0 {
                phases[phase].duplicates += 1
                clients[slot].wrong += 1
                return
            }
            clients[slot].seen[seq >> 6] |= bit
            phases[phase].unique += 1
            if seq < clients[slot].highest { phases[phase].outOfOrder += 1 } else { clients[slot].highest = seq }
            latency[phase].record(sent: publishedAt, received: time)
            if phases[phase].firstReceive == 0 || time < phases[phase].firstReceive { phases[phase].firstReceive = time }
            if time > phases[phase].lastReceive { phases[phase].lastReceive = time }
            if phase == 0 {
                clients[slot].got.0 += 1
                if clients[slot].got.0 == clients[slot].expected.0 { phases[0].complete += 1 }
            } else {
                clients[slot].got.1 += 1
                if clients[slot].got.1 == clients[slot].expected.1 { phases[1].complete += 1 }
            }
        }
    }

    /// Clients done with `phase` (or gone): the shard reports the phase complete when this reaches its client count.
    func settled(phase: Int) -> Int { phases[phase].complete + closedEarly }

    var snapshot: ChannelsShardResult {
        var result = ChannelsShardResult()
        result.phases = phases
        for i in result.phases.indices { result.phases[i].latency = latency[i].wire }
        result.opened = clients.reduce(0) { $0 + ($1.opened ? 1 : 0) }
        result.exactClients = clients.reduce(0) {
            $0 + ($1.opened && $1.wrong == 0 && $1.got == $1.expected ? 1 : 0)
        }
        result.closedEarly = closedEarly
        result.corrupt = corrupt
        result.foreign = foreign
        return result
    }
}

/// One client of a channels run: everything it receives goes to its loop's recorder, under its slot.
struct ChannelsBehaviour: ClientBehaviour {
    let recorder: ChannelsRecorder
    let slot: Int

    mutating func opened() { recorder.opened(slot) }

    mutating func start() -> [UInt8]? { nil }

    mutating func received(_ payload: UnsafeRawBufferPointer, at time: UInt64) -> [UInt8]? {
        recorder.received(slot, payload, at: time)
        return nil
    }

    mutating func closed() { recorder.closed(slot) }
}
