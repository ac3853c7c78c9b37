import Foundation
import XCTest

@testable import HiveIPC

final class ChannelTableTests: XCTestCase {
    typealias Key = SharedRegistry.ChannelKey

    func testJoin_countsSubscribersPerWorker_andTheLastLeaveFreesTheSlot() throws {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 2, channelCapacity: 4)
        let news = try registry.joinChannel(Key("news"), worker: 0)
        XCTAssertEqual(try registry.joinChannel(Key("news"), worker: 1), news, "one slot per channel")
        XCTAssertEqual(try registry.joinChannel(Key("news"), worker: 1), news)
        XCTAssertEqual(registry.channelSnapshots().map(\.name), ["news"])
        XCTAssertEqual(registry.channelSnapshots().first?.subscribers, [1, 2])
        XCTAssertEqual(Set(registry.workersSubscribed(to: Key("news"))), [0, 1])
        XCTAssertEqual(registry.workersSubscribed(to: Key("sport")), [])

        registry.leaveChannel(news, worker: 0)
        XCTAssertEqual(registry.workersSubscribed(to: Key("news")), [1])
        registry.leaveChannel(news, worker: 1)
        XCTAssertNotNil(registry.findChannel(Key("news")), "worker 1 has one subscriber left")
        registry.leaveChannel(news, worker: 1)
        XCTAssertNil(registry.findChannel(Key("news")), "the last subscriber anywhere frees the slot")
        XCTAssertEqual(registry.channelSnapshots(), [])
        registry.leaveChannel(news, worker: 1)  // one leave too many never wraps the count
        XCTAssertEqual(registry.channelCount(news, worker: 1).load(ordering: .relaxed), 0)
    }

    func testNamesThatShareAPrefixOrAHashWordAreDistinct() throws {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 1, channelCapacity: 4)
        let long = String(repeating: "a", count: ChannelName.maxLength)
        let a = try registry.joinChannel(Key("news"), worker: 0)
        let b = try registry.joinChannel(Key("news2"), worker: 0)
        let c = try registry.joinChannel(Key(long), worker: 0)
        XCTAssertEqual(Set([a, b, c]).count, 3)
        XCTAssertEqual(Set(registry.channelSnapshots().map(\.name)), ["news", "news2", long])
    }

    func testFullTable_throwsAClearError_andAFreedSlotIsReused() throws {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 1, channelCapacity: 2)
        let a = try registry.joinChannel(Key("a"), worker: 0)
        _ = try registry.joinChannel(Key("b"), worker: 0)
        XCTAssertNoThrow(try registry.joinChannel(Key("a"), worker: 0), "an existing channel needs no new slot")
        XCTAssertThrowsError(try registry.joinChannel(Key("c"), worker: 0)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("channel c") && text.contains("full") && text.contains("--max-channels"), text)
        }
        registry.leaveChannel(a, worker: 0)
        registry.leaveChannel(a, worker: 0)
        XCTAssertEqual(try registry.joinChannel(Key("c"), worker: 0), a)
        XCTAssertNil(registry.findChannel(Key("a")), "the reused slot no longer answers to its old name")
    }

    func testClearChannels_ofADeadWorker_keepsTheOthersAndFreesWhatOnlyItHeld() throws {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 2, channelCapacity: 4)
        _ = try registry.joinChannel(Key("news"), worker: 0)
        _ = try registry.joinChannel(Key("news"), worker: 1)
        _ = try registry.joinChannel(Key("sport"), worker: 1)
        registry.clearChannels(ofWorker: 1)
        XCTAssertEqual(registry.channelSnapshots().map(\.name), ["news"])
        XCTAssertEqual(registry.channelSnapshots().first?.subscribers, [1, 0])
        XCTAssertNil(registry.findChannel(Key("sport")))
    }

    func testSnapshots_freeSlotsLeftWithoutSubscribers() throws {
        // A count zeroed behind the slot's back (a worker that died between its last leave and the release) is
        // collected by the periodic reader.
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 1, channelCapacity: 2)
        let index = try registry.joinChannel(Key("news"), worker: 0)
        registry.channelCount(index, worker: 0).store(0, ordering: .relaxed)
        XCTAssertNotNil(registry.findChannel(Key("news")))
        XCTAssertEqual(registry.channelSnapshots(freeUnused: true), [])
        XCTAssertNil(registry.findChannel(Key("news")))
    }

    func testAnOldRegistryWithoutAChannelTable_refusesWithTheFullError() {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 1, channelCapacity: 0)
        XCTAssertThrowsError(try registry.joinChannel(Key("news"), worker: 0))
        XCTAssertEqual(registry.channelSnapshots(), [])
    }

    /// Threads stand in for worker processes (the words are the same atomics in shared memory): they join and
    /// leave two channels as fast as they can in a table barely bigger than that, so slots are freed and taken by
    /// the other name all the time. A joined slot must keep its name until its subscriber leaves (its count pins
    /// it), and at the end every count is 0 and every slot is free.
    func testConcurrentJoinAndLeave_fromManyThreads_neverLosesASlotUnderASubscriber() throws {
        let workers = 4
        let registry = SharedRegistry.heap(capacity: 1, workerCount: workers, channelCapacity: 3)
        let names = ["a", "b"].map(Key.init)
        let rounds = 50_000
        let violations = ManagedCounter()
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var held: [(slot: Int, name: Int)] = []
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<rounds {
                let name = Int.random(in: 0..<names.count, using: &generator)
                if let slot = try? registry.joinChannel(names[name], worker: worker) {
                    if registry.channelName(at: slot) != names[name].name { violations.add() }
                    held.append((slot, name))
                }
                if held.count > 1 || (!held.isEmpty && Bool.random(using: &generator)) {
                    let (slot, name) = held.removeFirst()
                    if registry.channelName(at: slot) != names[name].name { violations.add() }
                    registry.leaveChannel(slot, worker: worker)
                }
            }
            for (slot, name) in held {
                if registry.channelName(at: slot) != names[name].name { violations.add() }
                registry.leaveChannel(slot, worker: worker)
            }
        }
        XCTAssertEqual(violations.value, 0, "a slot changed name or was freed under a subscriber")
        XCTAssertEqual(registry.channelSnapshots(), [], "every subscriber left")
        for index in 0..<registry.channelCapacity {
            XCTAssertNil(registry.channelName(at: index), "slot \(index) kept a name")
            for worker in 0..<workers {
                XCTAssertEqual(registry.channelCount(index, worker: worker).load(ordering: .relaxed), 0)
            }
        }
    }

    /// Many threads create the same new channel at the same moment: each ends up counted, and once all are in, the
    /// table shows the channel once with every subscriber.
    func testConcurrentCreation_ofOneChannel_countsEverySubscriberOnce() throws {
        for _ in 0..<50 {
            let workers = 4
            let registry = SharedRegistry.heap(capacity: 1, workerCount: workers, channelCapacity: 8)
            let slots = LockedArray()
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                if let slot = try? registry.joinChannel(Key("news"), worker: worker) { slots.append(slot) }
            }
            XCTAssertEqual(slots.values.count, workers)
            let snapshot = registry.channelSnapshots()
            XCTAssertEqual(snapshot.map(\.name), ["news"])
            XCTAssertEqual(snapshot.first?.subscribers, [1, 1, 1, 1])
            XCTAssertEqual(Set(registry.workersSubscribed(to: Key("news"))), [0, 1, 2, 3])
        }
    }

    func testChannelNameRules() {
        XCTAssertNil(ChannelName.problem("news"))
        XCTAssertNil(ChannelName.problem("room:42/chat_1.a-b@x"))
        XCTAssertNil(ChannelName.problem(String(repeating: "x", count: ChannelName.maxLength)))
        XCTAssertEqual(ChannelName.problem(""), "a channel name must not be empty")
        XCTAssertTrue(ChannelName.problem(String(repeating: "x", count: ChannelName.maxLength + 1))!.contains("the limit is 64"))
        XCTAssertTrue(ChannelName.problem("a b")!.contains("\" \""))
        XCTAssertTrue(ChannelName.problem("a\nb")!.contains("byte 0xa"))
        XCTAssertTrue(ChannelName.problem("né")!.contains("byte 0xc3"))
        XCTAssertTrue(ChannelName.problem("a,b")!.contains("\",\""))
    }

    func testChannelList_parsesChecksAndDeduplicates() throws {
        XCTAssertEqual(try ChannelName.parseList("news,sport,news").get(), ["news", "sport"])
        XCTAssertThrowsError(try ChannelName.parseList("news,,sport").get()) {
            XCTAssertTrue("\($0)".contains("must not be empty"), "\($0)")
        }
        XCTAssertThrowsError(try ChannelName.parseList("news,spo rt").get()) {
            XCTAssertTrue("\($0)".contains("spo rt"), "\($0)")
        }
        let many = (0...ChannelName.maxPerConnection).map { "c\($0)" }.joined(separator: ",")
        XCTAssertThrowsError(try ChannelName.parseList(many).get()) {
            XCTAssertTrue("\($0)".contains("more than \(ChannelName.maxPerConnection)"), "\($0)")
        }
    }
}

/// A counter threads add to.
private final class ManagedCounter: @unchecked Sendable {
    // All access to `count` is guarded by `lock`.
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

private final class LockedArray: @unchecked Sendable {
    // All access to `storage` is guarded by `lock`.
    private let lock = NSLock()
    private var storage: [Int] = []
    func append(_ value: Int) { lock.withLock { storage.append(value) } }
    var values: [Int] { lock.withLock { storage } }
}
