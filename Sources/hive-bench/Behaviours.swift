import NIOCore

/// Per-event-loop tallies of a fan-out (or idle) run. One recorder per loop, touched only on that loop (reached through
/// `NIOLoopBound`), so recording a delivery takes no lock and no atomic.
final class FanoutRecorder {
    let messages: Int
    let size: Int
    let runID: UInt32

    /// The counters, in the form a shard sends them; `firstReceive` stays 0 until the first delivery.
    var tally = FanoutTally()
    /// Kept as a histogram while recording; turned into its wire form only for a snapshot.
    var latency = LatencyHistogram()

    init(messages: Int, size: Int, runID: UInt32) {
        self.messages = messages
        self.size = size
        self.runID = runID
    }

    var snapshot: FanoutTally {
        var copy = tally
        copy.latency = latency.wire
        return copy
    }
}

/// A recorder's numbers, copied off its loop (and sent by a shard to the coordinator).
struct FanoutTally: Codable, Sendable {
    var opened = 0
    var closed = 0
    var closedEarly = 0
    var complete = 0
    var unique: UInt64 = 0
    var duplicates: UInt64 = 0
    var outOfOrder: UInt64 = 0
    var corrupt: UInt64 = 0
    var foreign: UInt64 = 0
    var firstReceive: UInt64 = 0
    var lastReceive: UInt64 = 0
    var latency = LatencyHistogram().wire
    /// Data frames received, their bytes on the wire (headers included), and how many had RSV1 (compressed).
    var dataFrames: UInt64 = 0
    var wireBytes: UInt64 = 0
    var compressedFrames: UInt64 = 0

    mutating func add(_ other: FanoutTally) {
        opened += other.opened
        closed += other.closed
        closedEarly += other.closedEarly
        complete += other.complete
        unique += other.unique
        duplicates += other.duplicates
        outOfOrder += other.outOfOrder
        corrupt += other.corrupt
        foreign += other.foreign
        dataFrames += other.dataFrames
        wireBytes += other.wireBytes
        compressedFrames += other.compressedFrames
        if other.firstReceive != 0 { firstReceive = firstReceive == 0 ? other.firstReceive : min(firstReceive, other.firstReceive) }
        lastReceive = max(lastReceive, other.lastReceive)
        var merged = LatencyHistogram(latency)
        merged.merge(LatencyHistogram(other.latency))
        latency = merged.wire
    }
}

/// A fan-out receiver: checks every delivery for exactly-once and in-order against a bit per expected message
/// (M bits per client, allocated at the first message; an idle client allocates nothing).
struct FanoutBehaviour: ClientBehaviour {
    let recorder: FanoutRecorder
    private var seen: [UInt64] = []
    private var count = 0
    private var highest: Int = -1

    init(recorder: FanoutRecorder) { self.recorder = recorder }

    mutating func opened() { recorder.tally.opened += 1 }

    mutating func dataFrame(wireBytes: Int, compressed: Bool) {
        recorder.tally.dataFrames += 1
        recorder.tally.wireBytes += UInt64(wireBytes)
        if compressed { recorder.tally.compressedFrames += 1 }
    }

    mutating func start() -> [UInt8]? { nil }

    mutating func received(_ payload: UnsafeRawBufferPointer, at time: UInt64) -> [UInt8]? {
        switch Payload.decode(payload, runID: recorder.runID, size: recorder.size) {
        case .corrupt:
            recorder.tally.corrupt += 1
        case .foreign:
            recorder.tally.foreign += 1
        case .ok(let sequence, let publishedAt):
            let seq = Int(sequence)
            guard seq < recorder.messages else {
                recorder.tally.corrupt += 1
                return nil
            }
            if seen.isEmpty { seen = Array(repeating: 0, count: (recorder.messages + 63) / 64) }
            let bit: UInt64 = 1 << UInt64(seq & 63)
            if seen[seq >> 6] & bit != 0 {
                recorder.tally.duplicates += 1
                return nil
            }
            seen[seq >> 6] |= bit
            count += 1
            recorder.tally.unique += 1
            // Out of order: a message that arrives after a later one did (per client).
            if seq < highest { recorder.tally.outOfOrder += 1 } else { highest = seq }
            recorder.latency.record(sent: publishedAt, received: time)
            if recorder.tally.firstReceive == 0 || time < recorder.tally.firstReceive { recorder.tally.firstReceive = time }
            if time > recorder.tally.lastReceive { recorder.tally.lastReceive = time }
            if count == recorder.messages { recorder.tally.complete += 1 }
        }
        return nil
    }

    mutating func closed() {
        recorder.tally.closed += 1
        if count < recorder.messages { recorder.tally.closedEarly += 1 }
    }
}

/// Per-event-loop tallies of the echo round trip.
final class EchoRecorder {
    let messagesPerClient: Int
    let size: Int
    var opened = 0
    var finished = 0
    var closedEarly = 0
    var roundTrips: UInt64 = 0
    var mismatched: UInt64 = 0
    var lastReceive: UInt64 = 0
    var latency = LatencyHistogram()

    init(messagesPerClient: Int, size: Int) {
        self.messagesPerClient = messagesPerClient
        self.size = size
    }
}

/// One echo client: sends a message, waits for exactly that message back, sends the next. The round trip is timed
/// from just before the frame is handed to NIO to the read that completes the echo.
struct EchoBehaviour: ClientBehaviour {
    let recorder: EchoRecorder
    let client: UInt32
    private var sequence: UInt32 = 0
    private var sentAt: UInt64 = 0
    private var expected: [UInt8] = []
    private var done = false

    init(recorder: EchoRecorder, client: UInt32) {
        self.recorder = recorder
        self.client = client
    }

    mutating func opened() { recorder.opened += 1 }

    mutating func start() -> [UInt8]? {
        guard recorder.messagesPerClient > 0 else {
            finish()
            return nil
        }
        return next()
    }

    private mutating func next() -> [UInt8] {
        // "e" <client: 8 hex> <sequence: 8 hex> padding: distinct per message, so a stale or crossed echo is caught.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(recorder.size)
        Payload.encode(runID: client, sequence: sequence, publishedAt: 0, size: recorder.size, into: &bytes)
        bytes[0] = UInt8(ascii: "e")
        expected = bytes
        sentAt = Clock.now()
        return bytes
    }

    private mutating func finish() {
        guard !done else { return }
        done = true
        recorder.finished += 1
    }

    mutating func received(_ payload: UnsafeRawBufferPointer, at time: UInt64) -> [UInt8]? {
        guard !done else {
            recorder.mismatched += 1
            return nil
        }
        if !payload.elementsEqual(expected) { recorder.mismatched += 1 }
        recorder.roundTrips += 1
        recorder.latency.record(sent: sentAt, received: time)
        if time > recorder.lastReceive { recorder.lastReceive = time }
        sequence += 1
        if Int(sequence) >= recorder.messagesPerClient {
            finish()
            return nil
        }
        return next()
    }

    mutating func closed() {
        if !done { recorder.closedEarly += 1 }
    }
}

/// Sent down a pipeline to make an echo client begin (after every client is connected).
struct StartSending: Sendable {}
