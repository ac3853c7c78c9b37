import Glibc
import XCTest

@testable import HiveIPC

final class SharedRegistryTests: XCTestCase {
    let remote = RemoteAddress(family: .ipv4, bytes: (0x0100_007F, 0), port: 5555)

    func testReserve_thenActivate_makesTheConnectionVisibleAsHTTP() throws {
        let registry = SharedRegistry.heap(capacity: 4, workerCount: 2)
        let id = try XCTUnwrap(registry.reserve(worker: 1, remote: remote))
        XCTAssertEqual(id.worker, 1)
        XCTAssertNil(registry.lookup(id), "a reserved slot is not a live connection yet")
        XCTAssertTrue(registry.activate(id))
        let snapshot = try XCTUnwrap(registry.lookup(id))
        XCTAssertEqual(snapshot.protocolState, .http)
        XCTAssertEqual(snapshot.remote.description, "127.0.0.1:5555")
        XCTAssertEqual(registry.worker(1, .httpConnections).load(ordering: .relaxed), 1)
    }

    func testSetProtocol_movesPerWorkerCounts() throws {
        let registry = SharedRegistry.heap(capacity: 4, workerCount: 1)
        let id = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        XCTAssertTrue(registry.activate(id))
        registry.setProtocol(id, .websocketHandshake)
        registry.setProtocol(id, .websocket)
        XCTAssertEqual(registry.protocolState(of: id), .websocket)
        XCTAssertEqual(registry.worker(0, .httpConnections).load(ordering: .relaxed), 0)
        XCTAssertEqual(registry.worker(0, .webSocketConnections).load(ordering: .relaxed), 1)
        registry.free(id)
        XCTAssertEqual(registry.worker(0, .webSocketConnections).load(ordering: .relaxed), 0)
        XCTAssertEqual(registry.openConnections(ofWorker: 0), 0 + 0, "assigned is the master's count; none assigned here")
    }

    func testStaleID_afterSlotReuse_isNotFound() throws {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 1)
        let first = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        XCTAssertTrue(registry.activate(first))
        registry.free(first)
        let second = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        XCTAssertTrue(registry.activate(second))
        XCTAssertEqual(first.slot, second.slot)
        XCTAssertNotEqual(first, second, "the generation makes ids unique")
        XCTAssertNil(registry.lookup(first))
        XCTAssertNil(registry.protocolState(of: first))
        XCTAssertNotNil(registry.lookup(second))
        registry.free(first)  // a stale free must not end the new connection
        XCTAssertNotNil(registry.lookup(second))
    }

    func testReserve_whenFull_returnsNilAndNeverTakesALiveSlot() throws {
        let registry = SharedRegistry.heap(capacity: 2, workerCount: 1)
        let a = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        let b = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        XCTAssertTrue(registry.activate(a))
        XCTAssertNil(registry.reserve(worker: 0, remote: remote))
        XCTAssertTrue(registry.activate(b))
        XCTAssertNotNil(registry.lookup(a))
        registry.free(a)
        let c = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        XCTAssertEqual(c.slot, a.slot)
    }

    func testReserve_givesEachWorkerSlotsFromItsOwnShare_andSpillsOverWhenItIsFull() throws {
        // Slots of one worker share pages with no other worker's, which keeps each worker's RSS to its own pages.
        let registry = SharedRegistry.heap(capacity: 8, workerCount: 2)
        let zero = try (0..<3).map { _ in try XCTUnwrap(registry.reserve(worker: 0, remote: remote)).slot }
        let one = try (0..<3).map { _ in try XCTUnwrap(registry.reserve(worker: 1, remote: remote)).slot }
        XCTAssertEqual(zero, [0, 1, 2])
        XCTAssertEqual(one, [4, 5, 6])
        let spill = try (0..<2).map { _ in try XCTUnwrap(registry.reserve(worker: 0, remote: remote)).slot }
        XCTAssertEqual(spill, [3, 7], "a full share spills into free slots elsewhere")
        XCTAssertNil(registry.reserve(worker: 1, remote: remote), "every slot is taken")
    }

    func testRelease_ofAFailedHandOff_freesTheSlot() throws {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 1)
        let id = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        registry.release(id)
        XCTAssertFalse(registry.activate(id), "a worker must not adopt a released slot")
        XCTAssertNotNil(registry.reserve(worker: 0, remote: remote))
    }

    func testReclaimSlots_ofADeadWorker_freesOnlyItsSlots() throws {
        let registry = SharedRegistry.heap(capacity: 8, workerCount: 2)
        let mine = try (0..<3).map { _ in try XCTUnwrap(registry.reserve(worker: 0, remote: remote)) }
        let inFlight = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        let theirs = try XCTUnwrap(registry.reserve(worker: 1, remote: remote))
        for id in mine { XCTAssertTrue(registry.activate(id, pid: 100)) }
        XCTAssertTrue(registry.activate(theirs, pid: 200))
        XCTAssertEqual(registry.reclaimSlots(ofWorker: 0, pid: 100, includeReserved: true), 4)
        for id in mine + [inFlight] { XCTAssertNil(registry.lookup(id)) }
        XCTAssertFalse(registry.activate(inFlight, pid: 100))
        XCTAssertNotNil(registry.lookup(theirs))
        XCTAssertEqual(Array(registry.connections).map(\.id), [theirs])
        XCTAssertEqual(registry.worker(0, .httpConnections).load(ordering: .relaxed), 0)
    }

    /// During a reload the old and the new process share a worker id: the old one's death frees only its own
    /// connections, and never the sockets in flight to the new one.
    func testReclaimSlots_byPID_sparesTheOtherProcessOfTheSameWorkerID() throws {
        let registry = SharedRegistry.heap(capacity: 8, workerCount: 1)
        let old = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        let new = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        let inFlight = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        XCTAssertTrue(registry.activate(old, pid: 100))
        XCTAssertTrue(registry.activate(new, pid: 101))
        XCTAssertEqual(registry.reclaimSlots(ofWorker: 0, pid: 100, includeReserved: false), 1)
        XCTAssertNil(registry.lookup(old))
        XCTAssertNotNil(registry.lookup(new))
        XCTAssertTrue(registry.activate(inFlight, pid: 101), "a socket in flight to the new process stays reserved")
        XCTAssertEqual(registry.worker(0, .httpConnections).load(ordering: .relaxed), 2)
    }

    func testMemfdRegistry_attachedAgain_seesTheSameSlots() throws {
        let registry = try SharedRegistry.create(capacity: 16, workerCount: 2)
        defer { close(registry.fd) }
        let id = try XCTUnwrap(registry.reserve(worker: 1, remote: remote))
        let other = try SharedRegistry.attach(fd: registry.fd)
        XCTAssertEqual(other.capacity, 16)
        XCTAssertEqual(other.workerCount, 2)
        XCTAssertTrue(other.activate(id))
        XCTAssertEqual(registry.protocolState(of: id), .http)
    }

    /// Several processes write their own slots and counters at once; every write lands.
    func testConcurrentWriters_inSeveralProcesses_allLand() throws {
        let workers = 4
        let perWorker = 500
        let registry = try SharedRegistry.create(capacity: workers * perWorker, workerCount: workers)
        defer { close(registry.fd) }
        var ids: [[ConnectionID]] = []
        for worker in 0..<workers {
            ids.append(try (0..<perWorker).map { _ in try XCTUnwrap(registry.reserve(worker: worker, remote: remote)) })
        }
        var children: [pid_t] = []
        for worker in 0..<workers {
            let mine = ids[worker]
            let child = fork()
            if child == 0 {
                // Only atomics on the shared mapping, then _exit: safe in the child of a threaded test runner.
                for id in mine {
                    guard registry.activate(id) else { _exit(2) }
                    registry.setProtocol(id, .websocket)
                    for _ in 0..<10 { registry.add(7, to: .bytesIn, of: id) }
                }
                _exit(0)
            }
            XCTAssertGreaterThan(child, 0)
            children.append(child)
        }
        for child in children {
            var status: Int32 = 0
            waitpid(child, &status, 0)
            XCTAssertEqual(status, 0, "a writer process failed")
        }
        let live = Array(registry.connections)
        XCTAssertEqual(live.count, workers * perWorker)
        XCTAssertTrue(live.allSatisfy { $0.protocolState == .websocket && $0.bytesIn == 70 })
        for worker in 0..<workers {
            XCTAssertEqual(registry.worker(worker, .webSocketConnections).load(ordering: .relaxed), UInt64(perWorker))
        }
    }
}

extension SharedRegistryTests {
    func testAbandon_ofAReservedSlot_freesItAndCountsItClosed() throws {
        let registry = SharedRegistry.heap(capacity: 1, workerCount: 1)
        let id = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        registry.increment(worker: 0, .assigned)
        registry.abandon(id)
        XCTAssertEqual(registry.openConnections(ofWorker: 0), 0)
        XCTAssertFalse(registry.activate(id))
        XCTAssertNotNil(registry.reserve(worker: 0, remote: remote))
    }
}
