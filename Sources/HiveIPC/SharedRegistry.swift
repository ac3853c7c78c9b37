import Atomics

#if canImport(Glibc)
import CHiveShims
import Glibc
#endif

/// The shared connection registry: one `MAP_SHARED` mapping that every process reads, made by the master before
/// the first worker starts. It holds only fixed-size records of 64-bit atomic words: no classes, strings or
/// pointers, because each process maps it at its own address.
///
/// Layout, all little-endian UInt64 words:
///
///     [ header: 16 words ][ redis: 32 words ][ workers: workerCount x 32 words ][ slots: capacity x 16 words ]
///     [ channels: channelCapacity x (ChannelField.words + workerCount) words ][ users: capacity x 9 words ]
///
/// Each field has exactly one writer, named next to it in `Header`, `WorkerField` and `SlotField`. Writers
/// publish a slot by storing its `state` last (release); readers load `state` first (acquire) and then check the
/// generation against the id they hold.
package final class SharedRegistry: @unchecked Sendable {
    // @unchecked: the instance only holds the mapping's address and sizes, fixed after init; every access to the
    // mapped words goes through UnsafeAtomic. The master's allocation cursor is touched by the master alone.

    package enum Header: Int, CaseIterable {
        case magic = 0          // master, at creation
        case version            // master, at creation
        case capacity           // master, at creation
        case workerCount        // master, at creation
        case masterPID          // master
        case startedAt          // master: wall clock ns
        case accepted           // master: connections accepted
        case refusedFull        // master: answered 503 because the registry was full
        case refusedBusy        // master: no worker could take the socket (all inboxes full)
        case acceptErrors       // master: EMFILE/ENFILE and other accept failures
        case channelCapacity    // master, at creation: channel slots after the connection slots
        case userCapacity       // master, at creation: user records after the channel slots (one per connection
                                // slot; 0 in a registry of a master older than users)
        static let words = 16
    }

    /// The Redis subscription, written by the worker-0 process that holds it (one at a time: a reload retires the
    /// old one before its replacement subscribes).
    package enum RedisField: Int, CaseIterable {
        case state = 0          // RedisState
        case messages           // messages received
        case bytes              // payload bytes received
        case reconnects         // successful subscriptions after the first
        case lastMessageAt      // wall clock ns
        case subscribedSince    // wall clock ns, 0 when not subscribed
        case dropped            // messages dropped because worker 0's queue was full
        case lastErrorLength    // bytes of text in lastError..., stored after the text
        case lastError          // 16 words (128 bytes) of UTF-8 text
        case oversized = 24     // messages over --max-redis-message, skipped unread (after lastError's 16 words)
        case spliceDone = 25    // the old worker 0 of a reload, once it delivered all it had before the splice
                                // marker: `RedisSplice.fingerprint` of that marker (the new worker 0 waits for it)
        static let words = 32
        static let errorWords = 16
    }

    package enum WorkerField: Int, CaseIterable {
        case pid = 0            // master
        case state              // master (WorkerState)
        case startedAt          // master: wall clock ns
        case restarts           // master
        case lastExitStatus     // master: raw wait status of the previous process, or 0
        case assigned           // master: connections handed to this worker id, total
        // The counters below are written by the worker process(es) holding this id: normally one, two for a moment
        // during a reload, so they are updated with atomic read-modify-write operations.
        case closed             // worker: connections it finished, total (assigned - closed = open)
        case httpConnections    // worker: open connections in .http
        case webSocketConnections // worker: open connections in .websocket
        case requests           // worker: HTTP requests answered
        case messagesIn         // worker: WebSocket messages received
        case messagesOut        // worker: WebSocket messages sent (one per connection reached)
        case pushesFailed       // worker: pushes refused (not a WebSocket, unknown id, inbox full)
        case slowConsumers      // worker: connections closed because their output queue overflowed
        case protocolErrors     // worker: connections failed for bad HTTP or WebSocket input
        case broadcasts         // worker: broadcasts delivered to this worker's connections
        // Bytes of finished connections, added once per connection as it ends (by its worker, or by the master
        // when it frees a dead worker's slots): a live connection's bytes stay in its slot, off the per-read path.
        case closedBytesIn      // worker (master for a dead worker's slots)
        case closedBytesOut     // worker (master for a dead worker's slots)
        // Broadcast write latency (`BroadcastLatency`): from a broadcast reaching the worker to its frames' write to
        // the last client it reached. Bucket words count the observations in their own range only (not cumulative).
        case broadcastLatencyCount      // worker
        case broadcastLatencySum        // worker: nanoseconds
        case broadcastLatencyBuckets    // worker: BroadcastLatency.bounds.count words from here
        static let words = 32
    }

    package enum SlotField: Int, CaseIterable {
        case generation = 0     // master, while reserving
        case state              // master: free -> reserved; owner: reserved -> active -> free, or reserved -> free
                                // when the socket was lost on the way (SlotState)
        case worker             // master, while reserving
        case addressHigh        // master, while reserving
        case addressLow         // master, while reserving
        case portAndFamily      // master, while reserving: port << 8 | family
        case connectedAt        // master, while reserving: wall clock ns
        case protocolState      // owner worker (ProtocolState)
        case lastActivity       // owner worker: wall clock ns
        case bytesIn            // owner worker
        case bytesOut           // owner worker
        case framesIn           // owner worker: WebSocket frames (or HTTP requests before the upgrade)
        case framesOut          // owner worker
        case queuedOut          // owner worker: bytes queued in the worker for the socket, as of the last change of
                                // the channel's writability (kept off the per-write path)
        case requests           // owner worker: HTTP requests on this connection
        case ownerPID           // owner worker, at activation: the process holding the socket (two processes
                                // share a worker id while a reload replaces one; the master frees by pid)
        static let words = 16
    }

    static let magic: UInt64 = 0x4849_5645_5245_4731  // "HIVEREG1"
    static let version: UInt64 = 3

    package let capacity: Int
    package let workerCount: Int
    /// Channel slots (`SharedRegistry+Channels.swift`): distinct channels with subscribers, at most.
    package let channelCapacity: Int
    /// User records (`SharedRegistry+Users.swift`): one per connection slot, or 0 (no users) when attached to the
    /// registry of an older master.
    package let userCapacity: Int
    /// The memfd behind the mapping (-1 for a heap registry in tests). Passed to spawned workers.
    package let fd: Int32
    let base: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>
    let byteCount: Int
    let ownsHeap: Bool
    /// Master only: where each worker's next free-slot search starts, so allocation is O(1) amortized until nearly
    /// full. Each worker starts at its own share of the slots (worker w at w/workerCount of the way), so a worker's
    /// connections fill pages of their own: a page of slots is then mapped by the master and one worker instead of
    /// every worker, which is 128 B of RSS per connection per extra worker.
    lazy var cursors: [Int] = (0..<workerCount).map { $0 * capacity / workerCount }
    /// Master only: which runs of `slotsPerChunk` slots (a 4 KiB page) ever held a connection. Only the master
    /// reserves slots, so a walk of the others would only read free slots, and would map every page of the table
    /// into the master (8 MiB at the default capacity) for nothing.
    lazy var reservedChunks: [Bool] = Array(repeating: false, count: (capacity + Self.slotsPerChunk - 1) / Self.slotsPerChunk)
    static let slotsPerChunk = 4096 / (SlotField.words * 8)

    package static func byteCount(
        capacity: Int, workerCount: Int, channelCapacity: Int = defaultChannelCapacity, userCapacity: Int? = nil
    ) -> Int {
        (Header.words + RedisField.words + workerCount * WorkerField.words + capacity * SlotField.words
            + channelCapacity * channelWords(workerCount: workerCount) + (userCapacity ?? capacity) * UserField.words) * 8
    }

    /// Creates a registry in a new memfd (master, before any worker exists).
    package static func create(
        capacity: Int, workerCount: Int, channelCapacity: Int = defaultChannelCapacity
    ) throws -> SharedRegistry {
        precondition(capacity > 0 && capacity <= ConnectionID.maxSlots)
        precondition(workerCount > 0 && workerCount <= ConnectionID.maxWorkers)
        precondition(channelCapacity >= 0 && channelCapacity <= maxChannelCapacity)
        let size = byteCount(capacity: capacity, workerCount: workerCount, channelCapacity: channelCapacity)
        let fd = try syscall("memfd_create", while: "creating the connection registry") {
            CHiveShims_memfd_create("hive-registry", UInt32(CHiveShims_MFD_CLOEXEC))
        }
        do {
            try syscall("ftruncate", while: "sizing the connection registry to \(size) bytes") {
                ftruncate(fd, off_t(size))
            }
            let pointer = try map(fd: fd, size: size)
            let registry = SharedRegistry(
                base: pointer, byteCount: size, capacity: capacity, workerCount: workerCount,
                channelCapacity: channelCapacity, userCapacity: capacity, fd: fd, ownsHeap: false
            )
            registry.initializeHeader()
            return registry
        } catch {
            close(fd)
            throw error
        }
    }

    /// Maps a registry made by the master (worker, from the fd it inherited).
    package static func attach(fd: Int32) throws -> SharedRegistry {
        var st = stat()
        try syscall("fstat", while: "reading the size of the connection registry (fd \(fd))") { fstat(fd, &st) }
        let size = Int(st.st_size)
        guard size >= Header.words * 8 else {
            throw SystemError("mmap", while: "attaching a registry of \(size) bytes: too small", errno: EINVAL)
        }
        let pointer = try map(fd: fd, size: size)
        let header = UnsafeAtomic<UInt64>(at: pointer)
        guard header.load(ordering: .acquiring) == magic else {
            munmap(pointer, size)
            throw SystemError("mmap", while: "attaching fd \(fd): it is not a Hive registry", errno: EINVAL)
        }
        let capacity = Int(UnsafeAtomic<UInt64>(at: pointer + Header.capacity.rawValue).load(ordering: .relaxed))
        let workers = Int(UnsafeAtomic<UInt64>(at: pointer + Header.workerCount.rawValue).load(ordering: .relaxed))
        let channels = Int(UnsafeAtomic<UInt64>(at: pointer + Header.channelCapacity.rawValue).load(ordering: .relaxed))
        let users = Int(UnsafeAtomic<UInt64>(at: pointer + Header.userCapacity.rawValue).load(ordering: .relaxed))
        // A registry of an older master (a reload to a newer binary) has no channel table: its word is 0 there.
        guard capacity <= ConnectionID.maxSlots, workers <= ConnectionID.maxWorkers, channels <= maxChannelCapacity,
            users == 0 || users == capacity,
            byteCount(capacity: capacity, workerCount: workers, channelCapacity: channels, userCapacity: users) <= size
        else {
            munmap(pointer, size)
            throw SystemError("mmap", while: "attaching fd \(fd): header does not match its size", errno: EINVAL)
        }
        return SharedRegistry(
            base: pointer, byteCount: size, capacity: capacity, workerCount: workers, channelCapacity: channels,
            userCapacity: users, fd: fd, ownsHeap: false
        )
    }

    /// A registry on zeroed heap memory, for unit tests of the slot logic without processes.
    package static func heap(capacity: Int, workerCount: Int, channelCapacity: Int = 16) -> SharedRegistry {
        let size = byteCount(capacity: capacity, workerCount: workerCount, channelCapacity: channelCapacity)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        let pointer = raw.bindMemory(to: UnsafeAtomic<UInt64>.Storage.self, capacity: size / 8)
        let registry = SharedRegistry(
            base: pointer, byteCount: size, capacity: capacity, workerCount: workerCount,
            channelCapacity: channelCapacity, userCapacity: capacity, fd: -1, ownsHeap: true
        )
        registry.initializeHeader()
        return registry
    }

    private static func map(fd: Int32, size: Int) throws -> UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage> {
        let raw = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        // MAP_FAILED is not imported into Swift: it is (void *)-1.
        guard let raw, raw != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw SystemError("mmap", while: "mapping the connection registry (\(size) bytes)")
        }
        return raw.bindMemory(to: UnsafeAtomic<UInt64>.Storage.self, capacity: size / 8)
    }

    private init(
        base: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>,
        byteCount: Int,
        capacity: Int,
        workerCount: Int,
        channelCapacity: Int,
        userCapacity: Int,
        fd: Int32,
        ownsHeap: Bool
    ) {
        self.base = base
        self.byteCount = byteCount
        self.capacity = capacity
        self.workerCount = workerCount
        self.channelCapacity = channelCapacity
        self.userCapacity = userCapacity
        self.fd = fd
        self.ownsHeap = ownsHeap
    }

    deinit {
        if ownsHeap {
            UnsafeMutableRawPointer(base).deallocate()
        } else {
            munmap(base, byteCount)
        }
    }

    private func initializeHeader() {
        header(.capacity).store(UInt64(capacity), ordering: .relaxed)
        header(.workerCount).store(UInt64(workerCount), ordering: .relaxed)
        header(.channelCapacity).store(UInt64(channelCapacity), ordering: .relaxed)
        header(.userCapacity).store(UInt64(userCapacity), ordering: .relaxed)
        header(.version).store(Self.version, ordering: .relaxed)
        header(.magic).store(Self.magic, ordering: .releasing)
    }

    // MARK: - Word access

    @inline(__always)
    package func header(_ field: Header) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: base + field.rawValue)
    }

    @inline(__always)
    package func redis(_ field: RedisField, word: Int = 0) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: base + Header.words + field.rawValue + word)
    }

    @inline(__always)
    package func worker(_ id: Int, _ field: WorkerField, word: Int = 0) -> UnsafeAtomic<UInt64> {
        precondition(id >= 0 && id < workerCount, "worker \(id) is outside the registry (\(workerCount) workers)")
        precondition(field.rawValue + word < WorkerField.words, "\(field) + \(word) is outside a worker record")
        return UnsafeAtomic(at: base + Header.words + RedisField.words + id * WorkerField.words + field.rawValue + word)
    }

    @inline(__always)
    package func slot(_ index: Int, _ field: SlotField) -> UnsafeAtomic<UInt64> {
        precondition(index >= 0 && index < capacity, "slot \(index) is outside the registry (\(capacity) slots)")
        return UnsafeAtomic(
            at: base + Header.words + RedisField.words + workerCount * WorkerField.words + index * SlotField.words
                + field.rawValue
        )
    }

    /// Word `word` of channel slot `index` (`ChannelField`; the subscriber counts follow it, one per worker).
    @inline(__always)
    package func channelWord(_ index: Int, _ word: Int) -> UnsafeAtomic<UInt64> {
        precondition(index >= 0 && index < channelCapacity, "channel slot \(index) is outside the registry (\(channelCapacity))")
        let stride = Self.channelWords(workerCount: workerCount)
        precondition(word >= 0 && word < stride, "word \(word) is outside a channel slot")
        return UnsafeAtomic(
            at: base + Header.words + RedisField.words + workerCount * WorkerField.words + capacity * SlotField.words
                + index * stride + word
        )
    }

    /// Word `word` of the user record of connection slot `index` (`UserField`).
    @inline(__always)
    package func userWord(_ index: Int, _ word: Int) -> UnsafeAtomic<UInt64> {
        precondition(index >= 0 && index < userCapacity, "user record \(index) is outside the registry (\(userCapacity))")
        precondition(word >= 0 && word < UserField.words, "word \(word) is outside a user record")
        return UnsafeAtomic(
            at: base + Header.words + RedisField.words + workerCount * WorkerField.words + capacity * SlotField.words
                + channelCapacity * Self.channelWords(workerCount: workerCount) + index * UserField.words + word
        )
    }

    /// The last Redis error, as text (at most 128 bytes). Written by the subscriber only.
    package var redisLastError: String {
        get {
            let length = min(Int(redis(.lastErrorLength).load(ordering: .acquiring)), RedisField.errorWords * 8)
            let words = (0..<RedisField.errorWords).map { redis(.lastError, word: $0).load(ordering: .relaxed) }
            return words.withUnsafeBytes { String(decoding: $0.prefix(length), as: UTF8.self) }
        }
        set {
            var bytes: [UInt8] = []
            for scalar in newValue.unicodeScalars {  // whole characters only
                let encoded = Array(String(scalar).utf8)
                if bytes.count + encoded.count > RedisField.errorWords * 8 { break }
                bytes += encoded
            }
            var words = [UInt64](repeating: 0, count: RedisField.errorWords)
            words.withUnsafeMutableBytes { $0.copyBytes(from: bytes) }
            for (index, word) in words.enumerated() { redis(.lastError, word: index).store(word, ordering: .relaxed) }
            redis(.lastErrorLength).store(UInt64(bytes.count), ordering: .releasing)
        }
    }
}
