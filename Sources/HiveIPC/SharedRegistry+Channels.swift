import Atomics

#if canImport(Glibc)
import Glibc
#endif

/// The channel table: which worker has how many subscribers of which channel. Worker 0 reads it to keep its Redis
/// subscription in step, and a channel message is sent only to the workers it names, so neither ever asks another
/// worker.
///
/// `channelCapacity` slots after the connection slots, each `ChannelField.words + workerCount` words:
///
/// | word | writer | meaning |
/// |---|---|---|
/// | state | CAS by any worker (and the master for a dead worker): see below | `generation << 8 \| ChannelPhase` |
/// | hash, length, name (8 words) | the worker that moved the slot free → writing, before it publishes it | the name |
/// | count of worker w | worker w's process(es), atomic add/subtract (two share an id during a reload); the master sets it to 0 when worker w died | subscribers on worker w |
///
/// Claiming, without locks (a process may die anywhere, so nothing may wait for another):
/// - **join** an existing slot: find it by name (active or releasing), add 1 to our count, then re-read the state.
///   Same generation and active: joined. Same generation and releasing: our count is above 0, so the right outcome
///   of that release is "active": CAS it there ourselves (whoever wins, the slot stays right). Anything else (freed
///   or reused): take the 1 back and start over.
/// - **create**: CAS a free slot to writing with the next generation, write the name, add 1 to our count, publish
///   it active. Two workers that create the same name at once may both succeed; a creator that then finds the name
///   at a lower index moves there. Readers merge slots by name, so a duplicate left by a closer race costs a slot,
///   never a delivery.
/// - **release**: a count that falls to 0 tries: CAS active → releasing, read every count, then CAS releasing →
///   free if all are 0, else back to active. Counts are only ever added to and taken from (never reset, except for
///   a dead worker's by the master), so a joiner's count and the releaser's check always see each other
///   (sequentially consistent operations on both sides).
extension SharedRegistry {
    package enum ChannelField: Int {
        case state = 0
        case hash
        case length
        case name           // ChannelName.maxLength bytes, 8 words
        static let nameWords = ChannelName.maxLength / 8
        static let words = 3 + nameWords  // then one count per worker
    }

    package enum ChannelPhase: UInt64 {
        case free = 0, writing, active, releasing
    }

    package static let defaultChannelCapacity = 1024
    package static let maxChannelCapacity = 1 << 16

    static func channelWords(workerCount: Int) -> Int { ChannelField.words + workerCount }

    /// A channel name as the table stores it: its hash and its bytes in whole words, compared word by word.
    package struct ChannelKey: Sendable, Hashable {
        package let name: String
        let hash: UInt64
        let length: Int
        let words: [UInt64]

        /// `name` must be valid (`ChannelName.problem` is nil).
        package init(_ name: String) {
            precondition(ChannelName.problem(name) == nil, "invalid channel name \(name)")
            self.name = name
            let bytes = Array(name.utf8)
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            self.hash = hash
            length = bytes.count
            var words = [UInt64](repeating: 0, count: ChannelField.nameWords)
            words.withUnsafeMutableBytes { $0.copyBytes(from: bytes) }
            self.words = words
        }
    }

    /// The channel table is full: no slot is free for a new channel.
    package struct ChannelTableFull: Error, CustomStringConvertible {
        package var channel: String
        package var capacity: Int
        package var description: String {
            "channel \(channel) cannot be added: the registry's channel table is full (\(capacity) channels with "
                + "subscribers); raise --max-channels, or use fewer distinct channels"
        }
    }

    @inline(__always)
    private func channelState(_ index: Int) -> UnsafeAtomic<UInt64> { channelWord(index, ChannelField.state.rawValue) }

    @inline(__always)
    package func channelCount(_ index: Int, worker: Int) -> UnsafeAtomic<UInt64> {
        precondition(worker >= 0 && worker < workerCount, "worker \(worker) is outside the registry")
        return channelWord(index, ChannelField.words + worker)
    }

    @inline(__always)
    private static func phase(_ state: UInt64) -> ChannelPhase { ChannelPhase(rawValue: state & 0xFF) ?? .free }

    /// The slot holding `key` (the lowest one when a race left two), and the state it was read in, or nil.
    package func findChannel(_ key: ChannelKey) -> (index: Int, state: UInt64)? {
        for index in 0..<channelCapacity {
            let state = channelState(index).load(ordering: .acquiring)
            let phase = Self.phase(state)
            guard phase == .active || phase == .releasing,
                channelWord(index, ChannelField.hash.rawValue).load(ordering: .relaxed) == key.hash,
                matches(index, key)
            else { continue }
            // The name is only written while the slot is `writing` (a new generation): the same state after
            // reading it means it was read whole (a seqlock read).
            atomicMemoryFence(ordering: .acquiring)
            if channelState(index).load(ordering: .relaxed) == state { return (index, state) }
        }
        return nil
    }

    private func matches(_ index: Int, _ key: ChannelKey) -> Bool {
        guard channelWord(index, ChannelField.length.rawValue).load(ordering: .relaxed) == UInt64(key.length) else {
            return false
        }
        for word in 0..<ChannelField.nameWords
        where channelWord(index, ChannelField.name.rawValue + word).load(ordering: .relaxed) != key.words[word] {
            return false
        }
        return true
    }

    /// Counts one more subscriber of `key` on `worker`, creating the channel's slot if needed. Returns the slot,
    /// which the caller passes to `leaveChannel` for each subscriber that leaves.
    /// - Throws: `ChannelTableFull` when the channel is new and no slot is free.
    package func joinChannel(_ key: ChannelKey, worker: Int) throws -> Int {
        // Each pass either joins, creates, or saw the slot it tried change under it (another process moved it);
        // the bound only keeps a pathological interleaving from spinning forever.
        for _ in 0..<1000 {
            if let (index, state) = findChannel(key) {
                if join(index, state: state, worker: worker) { return index }
                continue
            }
            guard let index = create(key, worker: worker) else {
                if findChannel(key) != nil { continue }  // someone created it meanwhile
                throw ChannelTableFull(channel: key.name, capacity: channelCapacity)
            }
            if let (lower, state) = findChannel(key), lower < index, join(lower, state: state, worker: worker) {
                leaveChannel(index, worker: worker)
                return lower
            }
            return index
        }
        throw ChannelTableFull(channel: key.name, capacity: channelCapacity)
    }

    private func join(_ index: Int, state: UInt64, worker: Int) -> Bool {
        channelCount(index, worker: worker).wrappingIncrement(ordering: .sequentiallyConsistent)
        let generation = state >> 8
        while true {
            let now = channelState(index).load(ordering: .sequentiallyConsistent)
            guard now >> 8 == generation else { break }
            switch Self.phase(now) {
            case .active:
                return true
            case .releasing:
                // Our count is above 0: the release must end in `active`. Settle it (or see whoever did).
                _ = channelState(index).compareExchange(
                    expected: now, desired: generation << 8 | ChannelPhase.active.rawValue,
                    ordering: .sequentiallyConsistent
                )
            case .free, .writing:
                break
            }
            if Self.phase(now) != .releasing { break }
        }
        leaveChannel(index, worker: worker)
        return false
    }

    /// Takes a free slot for `key` with `worker` as its first subscriber, or nil when none is free.
    private func create(_ key: ChannelKey, worker: Int) -> Int? {
        for index in 0..<channelCapacity {
            let state = channelState(index).load(ordering: .acquiring)
            guard Self.phase(state) == .free else { continue }
            let generation = (state >> 8) &+ 1
            let writing = generation << 8 | ChannelPhase.writing.rawValue
            guard channelState(index).compareExchange(
                expected: state, desired: writing, ordering: .sequentiallyConsistent
            ).exchanged else { continue }
            channelWord(index, ChannelField.hash.rawValue).store(key.hash, ordering: .relaxed)
            channelWord(index, ChannelField.length.rawValue).store(UInt64(key.length), ordering: .relaxed)
            for word in 0..<ChannelField.nameWords {
                channelWord(index, ChannelField.name.rawValue + word).store(key.words[word], ordering: .relaxed)
            }
            channelCount(index, worker: worker).wrappingIncrement(ordering: .sequentiallyConsistent)
            channelState(index).store(generation << 8 | ChannelPhase.active.rawValue, ordering: .sequentiallyConsistent)
            return index
        }
        return nil
    }

    /// Counts one subscriber of slot `index` on `worker` less; the last one anywhere frees the slot.
    package func leaveChannel(_ index: Int, worker: Int) {
        let count = channelCount(index, worker: worker)
        var current = count.load(ordering: .sequentiallyConsistent)
        while true {
            guard current > 0 else { return }  // the master zeroed a dead worker's counts
            let (exchanged, original) = count.compareExchange(
                expected: current, desired: current - 1, ordering: .sequentiallyConsistent
            )
            if exchanged { break }
            current = original
        }
        if current == 1 { releaseChannelIfUnused(index) }
    }

    /// Frees slot `index` if no worker counts a subscriber in it. Safe to call from any process at any time.
    @discardableResult
    package func releaseChannelIfUnused(_ index: Int) -> Bool {
        let state = channelState(index).load(ordering: .sequentiallyConsistent)
        guard Self.phase(state) == .active, !hasSubscribers(index) else { return false }
        let generation = state >> 8
        let releasing = generation << 8 | ChannelPhase.releasing.rawValue
        guard channelState(index).compareExchange(
            expected: state, desired: releasing, ordering: .sequentiallyConsistent
        ).exchanged else { return false }
        let outcome: ChannelPhase = hasSubscribers(index) ? .active : .free
        return channelState(index).compareExchange(
            expected: releasing, desired: generation << 8 | outcome.rawValue, ordering: .sequentiallyConsistent
        ).exchanged && outcome == .free
    }

    private func hasSubscribers(_ index: Int) -> Bool {
        (0..<workerCount).contains { channelCount(index, worker: $0).load(ordering: .sequentiallyConsistent) > 0 }
    }

    /// The workers with subscribers of `key`, by id (every slot holding the name counts).
    package func workersSubscribed(to key: ChannelKey) -> [Int] {
        var workers: [Int] = []
        for index in 0..<channelCapacity {
            let state = channelState(index).load(ordering: .acquiring)
            let phase = Self.phase(state)
            guard phase == .active || phase == .releasing,
                channelWord(index, ChannelField.hash.rawValue).load(ordering: .relaxed) == key.hash,
                matches(index, key)
            else { continue }
            for worker in 0..<workerCount
            where channelCount(index, worker: worker).load(ordering: .relaxed) > 0 && !workers.contains(worker) {
                workers.append(worker)
            }
        }
        return workers
    }

    /// Master, when a worker process died and no other process holds its id: its subscribers died with it.
    /// The slots left without subscribers are freed here too.
    package func clearChannels(ofWorker worker: Int) {
        for index in 0..<channelCapacity where channelCount(index, worker: worker).load(ordering: .relaxed) > 0 {
            channelCount(index, worker: worker).store(0, ordering: .sequentiallyConsistent)
            releaseChannelIfUnused(index)
        }
    }

    /// The name slot `index` holds while it is in use (active or releasing), or nil.
    package func channelName(at index: Int) -> String? {
        let state = channelState(index).load(ordering: .acquiring)
        let phase = Self.phase(state)
        guard phase == .active || phase == .releasing else { return nil }
        let length = min(Int(channelWord(index, ChannelField.length.rawValue).load(ordering: .relaxed)), ChannelName.maxLength)
        let words = (0..<ChannelField.nameWords).map { channelWord(index, ChannelField.name.rawValue + $0).load(ordering: .relaxed) }
        atomicMemoryFence(ordering: .acquiring)
        guard channelState(index).load(ordering: .relaxed) >> 8 == state >> 8 else { return nil }
        return words.withUnsafeBytes { String(decoding: $0.prefix(length), as: UTF8.self) }
    }

    /// One channel and its subscribers per worker (summed over the slots holding it).
    package struct ChannelSnapshot: Sendable, Hashable {
        package var name: String
        package var subscribers: [UInt64]
        package var total: UInt64 { subscribers.reduce(0, &+) }
    }

    /// Every channel with at least one subscriber, by name. Frees, on the way, slots that have none left (a
    /// worker died before it could): worker 0 calls this periodically, so such a slot is never kept for long.
    package func channelSnapshots(freeUnused: Bool = false) -> [ChannelSnapshot] {
        var byName: [String: [UInt64]] = [:]
        var order: [String] = []
        for index in 0..<channelCapacity {
            let state = channelState(index).load(ordering: .acquiring)
            let phase = Self.phase(state)
            guard phase == .active || phase == .releasing else { continue }
            let length = min(Int(channelWord(index, ChannelField.length.rawValue).load(ordering: .relaxed)), ChannelName.maxLength)
            let words = (0..<ChannelField.nameWords).map {
                channelWord(index, ChannelField.name.rawValue + $0).load(ordering: .relaxed)
            }
            let counts = (0..<workerCount).map { channelCount(index, worker: $0).load(ordering: .relaxed) }
            atomicMemoryFence(ordering: .acquiring)
            guard channelState(index).load(ordering: .relaxed) == state else { continue }  // changed while read
            guard counts.contains(where: { $0 > 0 }) else {
                if freeUnused { releaseChannelIfUnused(index) }
                continue
            }
            let name = words.withUnsafeBytes { String(decoding: $0.prefix(length), as: UTF8.self) }
            if let existing = byName[name] {
                byName[name] = zip(existing, counts).map { $0 &+ $1 }
            } else {
                byName[name] = counts
                order.append(name)
            }
        }
        return order.map { ChannelSnapshot(name: $0, subscribers: byName[$0]!) }
    }
}
