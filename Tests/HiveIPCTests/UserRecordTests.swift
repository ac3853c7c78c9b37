import Atomics
import Foundation
import XCTest

@testable import HiveIPC

final class UserRecordTests: XCTestCase {
    private func activeConnection(_ registry: SharedRegistry, worker: Int = 0) throws -> ConnectionID {
        let id = try XCTUnwrap(registry.reserve(worker: worker, remote: .unknown))
        XCTAssertTrue(registry.activate(id))
        return id
    }

    func testBindShowsTheUser_rebindReplaces_unbindClears() throws {
        let registry = SharedRegistry.heap(capacity: 4, workerCount: 1)
        let id = try activeConnection(registry)
        XCTAssertNil(registry.user(of: id))
        XCTAssertNil(registry.lookup(id)?.user)
        registry.setUser("alice", of: id)
        XCTAssertEqual(registry.user(of: id), "alice")
        XCTAssertEqual(registry.lookup(id)?.user, "alice")
        registry.setUser("bob", of: id)
        XCTAssertEqual(registry.user(of: id), "bob", "a rebind replaces, with no bytes of the longer id left")
        registry.setUser(nil, of: id)
        XCTAssertNil(registry.user(of: id))
    }

    func testTheWholeSixtyFourByteIdAndMultibyteUTF8RoundTrip() throws {
        let registry = SharedRegistry.heap(capacity: 2, workerCount: 1)
        let id = try activeConnection(registry)
        let long = String(repeating: "ü", count: 32)  // 64 bytes
        XCTAssertNil(UserID.problem(long))
        registry.setUser(long, of: id)
        XCTAssertEqual(registry.user(of: id), long)
        registry.setUser("名前 with space", of: id)
        XCTAssertEqual(registry.user(of: id), "名前 with space")
    }

    func testARecordOfAnEarlierConnectionIsNotShownForTheSlotsNextOne() throws {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 1)
        let first = try activeConnection(registry)
        registry.setUser("alice", of: first)
        registry.free(first)  // an owner that did not clear it (it always does; the generation guards anyway)
        let second = try activeConnection(registry)
        XCTAssertEqual(second.slot, first.slot)
        XCTAssertNil(registry.user(of: second))
        XCTAssertNil(registry.lookup(second)?.user)
        XCTAssertNil(registry.user(of: first), "a stale id finds nothing either")
    }

    func testAWriterCaughtHalfwayIsNeverRead_andTheNextWriteRecovers() throws {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 1)
        let id = try activeConnection(registry)
        registry.setUser("alice", of: id)
        // A writer killed between its two sequence stores: the sequence stays odd.
        let head = registry.userWord(id.slot, 0)
        head.store(head.load(ordering: .relaxed) &+ (1 << 32), ordering: .relaxed)
        XCTAssertNil(registry.user(of: id), "an odd sequence means a write in progress: not readable")
        registry.setUser("carol", of: id)
        XCTAssertEqual(registry.user(of: id), "carol")
    }

    func testReclaimingADeadWorkersSlotsClearsTheirRecords() throws {
        let registry = SharedRegistry.heap(capacity: 2, workerCount: 1)
        let id = try activeConnection(registry)
        registry.setUser("alice", of: id)
        XCTAssertEqual(registry.reclaimSlots(ofWorker: 0, pid: getpid(), includeReserved: true), 1)
        for word in 0..<SharedRegistry.UserField.idWords {
            XCTAssertEqual(registry.userWord(id.slot, 1 + word).load(ordering: .relaxed), 0)
        }
    }

    /// A reader racing a writer that alternates two ids of different lengths only ever sees one of them whole.
    func testConcurrentReadsAreNeverTorn() throws {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 1)
        let id = try activeConnection(registry)
        let ids = [String(repeating: "a", count: 64), "b", String(repeating: "c", count: 33)]
        registry.setUser(ids[0], of: id)
        let done = ManagedAtomic(false)
        let writer = Thread {
            var index = 0
            while !done.load(ordering: .relaxed) {
                index = (index + 1) % ids.count
                registry.setUser(ids[index], of: id)
            }
        }
        writer.start()
        defer { done.store(true, ordering: .relaxed) }
        var seen = Set<String>()
        let deadline = Date().addingTimeInterval(0.5)
        while Date() < deadline {
            if let user = registry.user(of: id) {
                XCTAssertTrue(ids.contains(user), "torn read: \(user)")
                seen.insert(user)
            }
        }
        XCTAssertFalse(seen.isEmpty)
    }

    func testLayoutAddsNineWordsPerConnectionSlot() {
        let without = SharedRegistry.byteCount(capacity: 100, workerCount: 2, userCapacity: 0)
        let with = SharedRegistry.byteCount(capacity: 100, workerCount: 2)
        XCTAssertEqual(with - without, 100 * 72)
    }
}

final class UserIDTests: XCTestCase {
    func testLimits() {
        XCTAssertNil(UserID.problem("alice"))
        XCTAssertNil(UserID.problem(String(repeating: "x", count: 64)))
        XCTAssertNotNil(UserID.problem(""))
        let long = UserID.problem(String(repeating: "x", count: 65))
        XCTAssertTrue(long?.contains("65 bytes") == true && long?.contains("64") == true, long ?? "")
        let control = UserID.problem("al\nice")
        XCTAssertTrue(control?.contains("U+A") == true, control ?? "")
        XCTAssertNotNil(UserID.problem("a\u{0}b"))
        XCTAssertNotNil(UserID.problem("a\u{7F}b"))
        XCTAssertNotNil(UserID.problem("a\u{85}b"), "C1 controls too")
        let error = HiveError.invalidUser(UserID.problem("")!)
        XCTAssertEqual(error.code, .invalidArgument)
        XCTAssertTrue(error.description.contains("1 to 64 bytes"), error.description)
    }
}

final class UserEnvelopeTests: XCTestCase {
    func testRoundTrip() throws {
        for envelope in [
            UserEnvelope(user: "alice", opcode: 1, payload: Array("hello ✓".utf8)),
            UserEnvelope(user: String(repeating: "é", count: 32), opcode: 2, payload: [0, 0xFF, 0x80]),
            UserEnvelope(user: "bob", opcode: 1, payload: []),
        ] {
            XCTAssertEqual(try UserEnvelope.parse(envelope.encoded()).get(), envelope)
        }
        XCTAssertEqual(UserEnvelope.channel(prefix: "app:"), "app:__hive:user")
    }

    func testRefusesWhatHiveDidNotWrite() {
        let good = UserEnvelope(user: "alice", opcode: 1, payload: Array("hi".utf8)).encoded()
        func reason(_ bytes: [UInt8]) -> String? {
            if case .failure(let refusal) = UserEnvelope.parse(bytes) { return refusal.reason }
            return nil
        }
        XCTAssertNotNil(reason([]))
        XCTAssertNotNil(reason(Array(good.prefix(4))))
        XCTAssertTrue(reason(Array("hello alice".utf8))?.contains("HU") == true)
        var bad = good; bad[2] = 9
        XCTAssertTrue(reason(bad)?.contains("version 9") == true)
        bad = good; bad[3] = 8
        XCTAssertTrue(reason(bad)?.contains("opcode 8") == true)
        bad = good; bad[4] = 0
        XCTAssertTrue(reason(bad)?.contains("length 0") == true)
        bad = good; bad[4] = 65
        XCTAssertNotNil(reason(bad))
        bad = good; bad[4] = 60
        XCTAssertTrue(reason(bad)?.contains("past the end") == true)
        bad = good; bad[5] = 0x0A
        XCTAssertTrue(reason(bad)?.contains("control") == true)
        bad = good; bad[5] = 0xFF
        XCTAssertTrue(reason(bad)?.contains("not UTF-8") == true)
        bad = good + [0xC3]
        XCTAssertTrue(reason(bad)?.contains("not valid UTF-8") == true, "a text payload must be UTF-8")
        bad[3] = 2
        XCTAssertNil(reason(bad), "a binary payload may be any bytes")
    }

    func testTheUserChannelIsNoClientChannel() {
        XCTAssertNotNil(ChannelName.problem("__hive:user"))
        XCTAssertNil(ChannelName.problem("__hive"))
    }
}
