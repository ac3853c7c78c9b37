import HiveIPC
import XCTest

@testable import HiveMaster

/// The master's worker supervision without processes: a fake clock and fake pids, so the cases that are slow or racy
/// to reach with real workers (a worker dying during a reload, a replacement that never becomes ready, a stop during
/// a reload, back-off growth) are exact.
final class SupervisorTests: XCTestCase {
    private static let ms: UInt64 = 1_000_000
    private static let second: UInt64 = 1_000_000_000

    /// The supervisor plus what `MasterLoop` does: spawns succeed (with fresh pids) unless `failSpawns` says not,
    /// and a `retire` fits into the inbox unless `refuseRetire` says not. Every action performed is recorded.
    private struct Harness {
        var supervisor: Supervisor
        var now: UInt64 = 1_000 * SupervisorTests.second
        var nextPID: Int32 = 100
        var failSpawns = false
        var refuseRetire = false

        init(workers: Int = 2, grace: Double = 3, workerTimeout: Double = 5) {
            supervisor = Supervisor(workers: workers, grace: grace, workerTimeout: workerTimeout)
        }

        /// Boots every worker and makes it ready.
        mutating func boot() {
            for case .spawn(let id) in supervisor.bootActions { _ = perform(supervisor.handle(.spawned(worker: id, pid: takePID(), now: now))) }
            for id in supervisor.workers.indices { _ = send(.ready(worker: id, pid: pid(id), now: now)) }
        }

        mutating func takePID() -> Int32 {
            defer { nextPID += 1 }
            return nextPID
        }

        func pid(_ id: Int) -> Int32 { supervisor.workers[id].pid }

        @discardableResult
        mutating func send(_ event: Supervisor.Event) -> [Supervisor.Action] {
            perform(supervisor.handle(event))
        }

        @discardableResult
        mutating func tick(after delay: UInt64) -> [Supervisor.Action] {
            now += delay
            return send(.tick(now: now))
        }

        private mutating func perform(_ actions: [Supervisor.Action]) -> [Supervisor.Action] {
            var performed: [Supervisor.Action] = []
            for action in actions {
                performed.append(action)
                switch action {
                case .spawn(let id):
                    let outcome: Supervisor.Event =
                        failSpawns ? .spawnFailed(worker: id, error: "test", now: now) : .spawned(worker: id, pid: takePID(), now: now)
                    performed += perform(supervisor.handle(outcome))
                case .send(let id, .retire) where refuseRetire:
                    performed += perform(supervisor.handle(.retireRefused(worker: id, now: now)))
                default:
                    break
                }
            }
            return performed
        }
    }

    private func messages(_ actions: [Supervisor.Action]) -> [String] {
        actions.compactMap { if case .log(let line) = $0 { line.message } else { nil } }
    }

    private func spawns(_ actions: [Supervisor.Action]) -> [Int] {
        actions.compactMap { if case .spawn(let id) = $0 { id } else { nil } }
    }

    // MARK: Start, exit, back-off

    func testBootAnnouncesReadyOnceWhenEveryWorkerRuns() {
        var h = Harness(workers: 2)
        for case .spawn(let id) in h.supervisor.bootActions { h.send(.spawned(worker: id, pid: h.takePID(), now: h.now)) }
        XCTAssertFalse(h.send(.ready(worker: 0, pid: h.pid(0), now: h.now)).contains(.announce(.ready)))
        XCTAssertTrue(h.send(.ready(worker: 1, pid: h.pid(1), now: h.now)).contains(.announce(.ready)))
        XCTAssertEqual(h.supervisor.workers.map(\.state), [.running, .running])
        // A later restart's ready is not a second announcement.
        let old = h.pid(0)
        h.send(.exited(pid: old, status: 9, now: h.now + Self.second))
        h.tick(after: Self.second + 1)
        XCTAssertNotEqual(h.pid(0), 0)
        XCTAssertFalse(h.send(.ready(worker: 0, pid: h.pid(0), now: h.now)).contains(.announce(.ready)))
    }

    func testReadyFromAnEarlierProcessIsIgnored() {
        var h = Harness(workers: 1)
        for case .spawn(let id) in h.supervisor.bootActions { h.send(.spawned(worker: id, pid: 100, now: h.now)) }
        XCTAssertEqual(h.send(.ready(worker: 0, pid: 99, now: h.now)), [])
        XCTAssertEqual(h.supervisor.workers[0].state, .starting)
    }

    func testCrashReclaimsSlotsDrainsTheInboxAndRestarts() {
        var h = Harness(workers: 2)
        h.boot()
        let old = h.pid(0)
        let actions = h.send(.exited(pid: old, status: 9, now: h.now))  // killed by signal 9
        XCTAssertEqual(Array(actions.prefix(3)), [
            .publishExit(worker: 0, status: 9), .reclaimSlots(worker: 0, pid: old, includeReserved: true),
            .drainInbox(worker: 0),
        ])
        XCTAssertTrue(actions.contains(.publishState(worker: 0, .restarting)))
        guard case .log(let line)? = actions.last else { return XCTFail("no log line: \(actions)") }
        XCTAssertEqual(line.message, "worker exited unexpectedly; restarting it")
        XCTAssertEqual(line.metadata["exit"], "signal 9")
        XCTAssertEqual(line.reclaimedKey, "connections.closed")
        XCTAssertEqual(h.supervisor.workers[0].restarts, 1)
        XCTAssertEqual(spawns(h.tick(after: 1)), [0])
        XCTAssertEqual(h.supervisor.workers[0].state, .starting)
        XCTAssertNotEqual(h.pid(0), old)
    }

    func testBackOffGrowsWhileTheWorkerDiesYoungAndResetsAfterALongLife() {
        var h = Harness(workers: 1)
        h.boot()
        var delays: [UInt64] = []
        for _ in 0..<9 {
            h.now += Self.second  // dies a second after it started: young
            h.send(.exited(pid: h.pid(0), status: 1 << 8, now: h.now))
            let delay = h.supervisor.workers[0].respawnAt - h.now
            delays.append(delay / Self.ms)
            // Not a nanosecond early: the tick just before the due time spawns nothing.
            XCTAssertEqual(spawns(h.tick(after: delay - 1)), [])
            XCTAssertEqual(spawns(h.tick(after: 1)), [0])
        }
        XCTAssertEqual(delays, [0, 100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000])
        XCTAssertEqual(h.supervisor.workers[0].restarts, 9)

        h.now += Self.stableLifeSeconds * Self.second + 1  // a long life: the next crash is a first one again
        h.send(.exited(pid: h.pid(0), status: 1 << 8, now: h.now))
        XCTAssertEqual(h.supervisor.workers[0].respawnAt - h.now, 1)
        XCTAssertEqual(h.supervisor.workers[0].quickCrashes, 0)
    }

    private static let stableLifeSeconds = Supervisor.stableLife / second

    func testAFailedRespawnIsRetriedASecondLater() {
        var h = Harness(workers: 1)
        h.boot()
        h.send(.exited(pid: h.pid(0), status: 0, now: h.now))
        h.failSpawns = true
        let actions = h.tick(after: 1)
        XCTAssertEqual(messages(actions), ["cannot restart worker; retrying in 1 s"])
        XCTAssertEqual(h.supervisor.workers[0].respawnAt, h.now + Self.second)
        h.failSpawns = false
        XCTAssertEqual(spawns(h.tick(after: Self.second - 1)), [])
        XCTAssertEqual(spawns(h.tick(after: 1)), [0])
    }

    // MARK: Reload

    /// Runs worker `id`'s reload steps to the end: retired, replacement spawned and ready. Returns the old pid.
    @discardableResult
    private func replace(_ id: Int, in h: inout Harness) -> Int32 {
        let old = h.pid(id)
        h.send(.retired(worker: id, pid: old, now: h.now))
        XCTAssertNotEqual(h.pid(id), old)
        h.send(.ready(worker: id, pid: h.pid(id), now: h.now))
        return old
    }

    func testReloadReplacesOneWorkerAtATime() {
        var h = Harness(workers: 2)
        h.boot()
        let first = h.pid(0)
        let begin = h.send(.reloadRequested(now: h.now))
        XCTAssertEqual(begin, [.announce(.reloading), .send(worker: 0, .retire), .publishState(worker: 0, .restarting)])
        XCTAssertTrue(h.supervisor.isReloading)

        let step2 = h.send(.retired(worker: 0, pid: first, now: h.now))
        XCTAssertEqual(spawns(step2), [0])
        XCTAssertEqual(h.supervisor.livePIDs.sorted(), [first, h.pid(0), h.pid(1)].sorted())
        let step3 = h.send(.ready(worker: 0, pid: h.pid(0), now: h.now))
        XCTAssertTrue(step3.contains(.signal(pid: first, .handOver)), "the old process hands its clients over")
        XCTAssertTrue(step3.contains(.send(worker: 1, .retire)), "then the next worker: \(step3)")

        let second = replace(1, in: &h)
        XCTAssertFalse(h.supervisor.isReloading)
        // The retired processes leave; they are not restarted.
        let exit = h.send(.exited(pid: first, status: 0, now: h.now))
        XCTAssertEqual(exit.first, .reclaimSlots(worker: 0, pid: first, includeReserved: false))
        XCTAssertEqual(messages(exit), ["retired worker exited"])
        h.send(.exited(pid: second, status: 0, now: h.now))
        XCTAssertEqual(h.supervisor.workers.map(\.restarts), [0, 0])
        XCTAssertTrue(h.supervisor.retiring.isEmpty)
    }

    /// The master marks a process it starts as a replacement (it then keeps a hand-over log) only while a retired
    /// process of that worker id runs: not at boot, not for another worker id, not after the retired one left.
    func testOnlyAProcessStartedWhileARetiredOneOfItsWorkerIDRuns_isAReplacement() {
        var h = Harness(workers: 2)
        h.boot()
        XCTAssertFalse(h.supervisor.hasRetiredProcess(ofWorker: 0), "at boot")
        let old = h.pid(0)
        h.send(.reloadRequested(now: h.now))
        XCTAssertFalse(h.supervisor.hasRetiredProcess(ofWorker: 0), "asked to retire, not retired yet")
        let spawned = h.send(.retired(worker: 0, pid: old, now: h.now))
        XCTAssertEqual(spawns(spawned), [0])
        XCTAssertTrue(h.supervisor.hasRetiredProcess(ofWorker: 0), "its replacement is spawned now")
        XCTAssertFalse(h.supervisor.hasRetiredProcess(ofWorker: 1))
        h.send(.ready(worker: 0, pid: h.pid(0), now: h.now))
        h.send(.exited(pid: old, status: 0, now: h.now))
        XCTAssertFalse(h.supervisor.hasRetiredProcess(ofWorker: 0), "the retired one left")
    }

    func testReloadWithDropConnectionsTerminatesTheOldProcessInsteadOfAHandOver() {
        var h = Harness(workers: 1, grace: 2)
        h.boot()
        let old = h.pid(0)
        h.send(.reloadRequested(now: h.now, dropConnections: true))
        h.send(.retired(worker: 0, pid: old, now: h.now))
        let ready = h.send(.ready(worker: 0, pid: h.pid(0), now: h.now))
        XCTAssertTrue(ready.contains(.signal(pid: old, .terminate)), "\(ready)")
        XCTAssertFalse(ready.contains(.signal(pid: old, .handOver)))
        XCTAssertEqual(h.supervisor.retiring[old]?.killAt, h.now + 3 * Self.second, "grace + 1 s")
    }

    func testAHandingOverProcessGetsTheHandOverTimeoutBeforeItsGrace() {
        var h = Harness(workers: 1, grace: 2)
        h.boot()
        let old = h.pid(0)
        h.send(.reloadRequested(now: h.now))
        h.send(.retired(worker: 0, pid: old, now: h.now))
        h.send(.ready(worker: 0, pid: h.pid(0), now: h.now))
        XCTAssertEqual(h.supervisor.retiring[old]?.killAt, h.now + Supervisor.handOverTimeout + 3 * Self.second)
        XCTAssertFalse(h.tick(after: Supervisor.handOverTimeout + 3 * Self.second - 1).contains(.signal(pid: old, .kill)))
        XCTAssertTrue(h.tick(after: 1).contains(.signal(pid: old, .kill)))
    }

    func testReloadCompleteIsAnnouncedAfterTheLastWorker() {
        var h = Harness(workers: 2)
        h.boot()
        h.send(.reloadRequested(now: h.now))
        h.send(.retired(worker: 0, pid: h.pid(0), now: h.now))
        XCTAssertFalse(h.send(.ready(worker: 0, pid: h.pid(0), now: h.now)).contains(.announce(.reloadComplete)))
        h.send(.retired(worker: 1, pid: h.pid(1), now: h.now))
        XCTAssertTrue(h.send(.ready(worker: 1, pid: h.pid(1), now: h.now)).contains(.announce(.reloadComplete)))
        XCTAssertEqual(h.send(.reloadRequested(now: h.now)).first, .announce(.reloading), "a new reload may begin")
    }

    func testASecondReloadRequestDuringAReloadIsIgnored() {
        var h = Harness(workers: 2)
        h.boot()
        h.send(.reloadRequested(now: h.now))
        XCTAssertEqual(h.send(.reloadRequested(now: h.now)), [.announce(.reloadAlreadyInProgress)])
    }

    func testAWorkerDyingBeforeItRetiredIsRestartedAndTheReloadGoesOn() {
        var h = Harness(workers: 2)
        h.boot()
        h.send(.reloadRequested(now: h.now))
        let old = h.pid(0)
        let actions = h.send(.exited(pid: old, status: 11, now: h.now))  // it crashed instead of answering `retired`
        XCTAssertTrue(actions.contains(.reclaimSlots(worker: 0, pid: old, includeReserved: true)))
        XCTAssertTrue(actions.contains(.send(worker: 1, .retire)), "the reload goes on with worker 1: \(actions)")
        XCTAssertEqual(messages(actions).last, "worker exited unexpectedly; restarting it")
        XCTAssertEqual(spawns(h.tick(after: 1)), [0], "restarted from the executable on disk now")
        h.send(.ready(worker: 0, pid: h.pid(0), now: h.now))
        // A late `retired` from the dead process changes nothing.
        XCTAssertEqual(h.send(.retired(worker: 0, pid: old, now: h.now)), [])
        replace(1, in: &h)
        XCTAssertFalse(h.supervisor.isReloading)
    }

    func testAReplacementDyingBeforeItIsReadyIsRestartedAndTheOldOneStillLeaves() {
        var h = Harness(workers: 1, grace: 2)
        h.boot()
        let old = h.pid(0)
        h.send(.reloadRequested(now: h.now))
        h.send(.retired(worker: 0, pid: old, now: h.now))
        let replacement = h.pid(0)
        h.send(.exited(pid: replacement, status: 1 << 8, now: h.now))
        XCTAssertEqual(h.supervisor.workers[0].state, .restarting)
        XCTAssertTrue(h.supervisor.isReloading, "the step waits for the replacement it started")
        // That replacement never becomes ready: at the start timeout the old process is stopped anyway.
        h.tick(after: 1)  // the restart
        let timeout = h.tick(after: Supervisor.startTimeout)
        XCTAssertEqual(messages(timeout), ["replacement worker is not ready in time; stopping the old one anyway"])
        XCTAssertTrue(timeout.contains(.signal(pid: old, .terminate)))
        XCTAssertFalse(h.supervisor.isReloading)
    }

    func testAReplacementNeverReadyTimesOutThenTheOldProcessIsKilledAfterGrace() {
        var h = Harness(workers: 2, grace: 2, workerTimeout: 1_000)
        h.boot()
        let old = h.pid(0)
        h.send(.reloadRequested(now: h.now))
        h.tick(after: 0)  // the first health check; the next is 200 s away
        h.send(.retired(worker: 0, pid: old, now: h.now))
        XCTAssertEqual(h.supervisor.nextDeadline, h.now + Supervisor.startTimeout)
        XCTAssertEqual(messages(h.tick(after: Supervisor.startTimeout - 1)), [])
        let timeout = h.tick(after: 1)
        XCTAssertEqual(messages(timeout), ["replacement worker is not ready in time; stopping the old one anyway"])
        XCTAssertTrue(timeout.contains(.signal(pid: old, .terminate)))
        XCTAssertTrue(timeout.contains(.send(worker: 1, .retire)), "the reload goes on: \(timeout)")
        // The old process ignores SIGTERM: grace + 1 s later it is killed, once.
        XCTAssertEqual(messages(h.tick(after: 3 * Self.second - 1)), [])
        let kill = h.tick(after: 1)
        XCTAssertEqual(messages(kill), ["retired worker did not exit; killing it"])
        XCTAssertTrue(kill.contains(.signal(pid: old, .kill)))
        XCTAssertFalse(h.tick(after: Self.second).contains(.signal(pid: old, .kill)))
    }

    func testAReloadAsksAnUnresponsiveWorkerToRetireAndSkipsOneThatIsRestarting() {
        var h = Harness(workers: 3, workerTimeout: 1)
        h.boot()
        h.tick(after: 0)
        for _ in 0..<10 { h.tick(after: 100 * Self.ms) }
        for id in [1, 2] { h.send(.answered(worker: id, pid: h.pid(id), sequence: h.now, now: h.now)) }
        XCTAssertEqual(h.supervisor.workers.map(\.state), [.unresponsive, .running, .running])
        h.now += Self.second
        h.send(.exited(pid: h.pid(1), status: 1 << 8, now: h.now))  // waits for its restart
        let begin = h.send(.reloadRequested(now: h.now))
        XCTAssertTrue(begin.contains(.send(worker: 0, .retire)), "the unresponsive one is asked too: \(begin)")
        replace(0, in: &h)
        XCTAssertEqual(h.supervisor.reload?.current?.id, 2, "worker 1 comes up from the new executable anyway")
    }

    func testTheNextDeadlineIsTheEarliestRespawn() {
        var h = Harness(workers: 2, workerTimeout: 1_000)
        h.boot()
        h.tick(after: 0)  // the next health check is 200 s away
        for _ in 0..<3 {
            h.now += Self.second
            h.send(.exited(pid: h.pid(0), status: 1 << 8, now: h.now))
            XCTAssertEqual(h.supervisor.nextDeadline, h.supervisor.workers[0].respawnAt)
            h.tick(after: h.supervisor.workers[0].respawnAt - h.now)
        }
        XCTAssertEqual(h.supervisor.nextDeadline, h.supervisor.health.nextTick)
    }

    func testAWorkerThatNeverRetiresIsKilledAndTheReloadGoesOn() {
        var h = Harness(workers: 2, workerTimeout: 1_000)
        h.boot()
        let old = h.pid(0)
        h.send(.reloadRequested(now: h.now))
        let timeout = h.tick(after: Supervisor.retireTimeout)
        XCTAssertEqual(messages(timeout), ["worker did not retire in time; killing it"])
        XCTAssertTrue(timeout.contains(.signal(pid: old, .kill)))
        XCTAssertTrue(timeout.contains(.send(worker: 1, .retire)))
        h.send(.exited(pid: old, status: 9, now: h.now))
        XCTAssertEqual(spawns(h.tick(after: 1)), [0], "the ordinary restart brings up the new executable")
    }

    func testAWorkerWhoseInboxRefusesRetireIsKilled() {
        var h = Harness(workers: 2)
        h.boot()
        let first = h.pid(0)
        let second = h.pid(1)
        h.refuseRetire = true
        let actions = h.send(.reloadRequested(now: h.now))
        XCTAssertEqual(messages(actions), ["cannot ask worker to retire; killing it", "cannot ask worker to retire; killing it"])
        XCTAssertTrue(actions.contains(.signal(pid: first, .kill)))
        XCTAssertTrue(actions.contains(.signal(pid: second, .kill)))
        XCTAssertTrue(actions.contains(.announce(.reloadComplete)))
    }

    func testAReplacementThatCannotBeStartedIsRetriedAndTheOldOneLeaves() {
        var h = Harness(workers: 1)
        h.boot()
        let old = h.pid(0)
        h.send(.reloadRequested(now: h.now))
        h.failSpawns = true
        let actions = h.send(.retired(worker: 0, pid: old, now: h.now))
        XCTAssertEqual(messages(actions), ["cannot start a replacement worker; retrying in 1 s"])
        XCTAssertTrue(actions.contains(.signal(pid: old, .terminate)))
        XCTAssertTrue(actions.contains(.announce(.reloadComplete)))
        h.failSpawns = false
        XCTAssertEqual(spawns(h.tick(after: Self.second)), [0])
    }

    // MARK: Stop

    func testStopSignalsEveryWorkerAndKillsTheRestAfterGrace() {
        var h = Harness(workers: 2, grace: 3)
        h.boot()
        let pids = [h.pid(0), h.pid(1)]
        let stop = h.send(.stopRequested(reason: "SIGTERM", now: h.now))
        XCTAssertEqual(stop.first, .announce(.stopping(reason: "SIGTERM")))
        XCTAssertTrue(stop.contains(.signal(pid: pids[0], .terminate)))
        XCTAssertTrue(stop.contains(.signal(pid: pids[1], .terminate)))
        XCTAssertEqual(h.supervisor.workers.map(\.state), [.stopping, .stopping])
        XCTAssertEqual(h.send(.stopRequested(reason: "SIGINT", now: h.now)), [], "a second stop changes nothing")

        let exit = h.send(.exited(pid: pids[0], status: 0, now: h.now))
        XCTAssertEqual(messages(exit), ["worker exited"])
        XCTAssertEqual(h.supervisor.workers[0].state, .exited)
        XCTAssertEqual(spawns(h.tick(after: Self.second)), [], "nothing restarts while stopping")
        XCTAssertEqual(h.send(.reloadRequested(now: h.now)), [], "no reload while stopping")
        let kill = h.tick(after: 2 * Self.second)
        XCTAssertEqual(messages(kill), ["worker did not stop within the grace period; killing it"])
        XCTAssertTrue(kill.contains(.signal(pid: pids[1], .kill)))
        XCTAssertFalse(h.supervisor.isFinished)
        h.send(.exited(pid: pids[1], status: 9, now: h.now))
        XCTAssertTrue(h.supervisor.isFinished)
    }

    func testStopDuringAReloadEndsItAndStopsTheRetiredProcessToo() {
        var h = Harness(workers: 2, grace: 3)
        h.boot()
        let old = h.pid(0)
        h.send(.reloadRequested(now: h.now))
        h.send(.retired(worker: 0, pid: old, now: h.now))
        let replacement = h.pid(0)
        let stop = h.send(.stopRequested(reason: "SIGTERM", now: h.now))
        XCTAssertFalse(h.supervisor.isReloading)
        XCTAssertTrue(stop.contains(.signal(pid: old, .terminate)), "the retired process: \(stop)")
        XCTAssertTrue(stop.contains(.signal(pid: replacement, .terminate)))
        XCTAssertTrue(stop.contains(.signal(pid: h.pid(1), .terminate)))
        // The replacement's late `ready` neither finishes the reload step nor announces anything.
        XCTAssertFalse(h.send(.ready(worker: 0, pid: replacement, now: h.now)).contains(.signal(pid: old, .terminate)))

        h.send(.exited(pid: replacement, status: 0, now: h.now))
        h.send(.exited(pid: h.pid(1), status: 0, now: h.now))
        XCTAssertFalse(h.supervisor.isFinished, "the retired process still runs")
        let kill = h.tick(after: 3 * Self.second)
        XCTAssertTrue(kill.contains(.signal(pid: old, .kill)))
        h.send(.exited(pid: old, status: 9, now: h.now))
        XCTAssertTrue(h.supervisor.isFinished)
        XCTAssertEqual(h.supervisor.workers.map(\.restarts), [0, 0])
    }

    /// A bug found while moving this out of `MasterLoop`: a worker that became ready after a stop began (SIGTERM
    /// during start-up) was shown as running again, and once all were, the master printed "hive: ready" and told
    /// systemd READY=1 after STOPPING=1.
    func testAWorkerReadyAfterTheStopBeganStaysStoppingAndIsNotAnnounced() {
        var h = Harness(workers: 2)
        for case .spawn(let id) in h.supervisor.bootActions { h.send(.spawned(worker: id, pid: h.takePID(), now: h.now)) }
        h.send(.stopRequested(reason: "SIGINT", now: h.now))
        XCTAssertEqual(h.send(.ready(worker: 0, pid: h.pid(0), now: h.now)), [])
        XCTAssertEqual(h.send(.ready(worker: 1, pid: h.pid(1), now: h.now)), [], "no .announce(.ready)")
        XCTAssertEqual(h.supervisor.workers.map(\.state), [.stopping, .stopping])
        XCTAssertFalse(h.supervisor.announcedReady)
    }

    func testAWorkerWaitingForItsRestartIsNotStartedOnceStopping() {
        var h = Harness(workers: 1)
        h.boot()
        h.now += Self.second
        h.send(.exited(pid: h.pid(0), status: 1 << 8, now: h.now))
        h.send(.stopRequested(reason: "SIGTERM", now: h.now))
        XCTAssertEqual(h.supervisor.workers[0].respawnAt, 0)
        XCTAssertTrue(h.supervisor.isFinished)
    }

    // MARK: Health

    func testASilentWorkerIsUnresponsiveThenKilledAndRestarted() {
        var h = Harness(workers: 1, workerTimeout: 1)
        h.boot()
        let pid = h.pid(0)
        let first = h.tick(after: 0)
        XCTAssertTrue(first.contains { if case .send(0, .healthCheck) = $0 { true } else { false } })
        var unresponsiveAt: UInt64?
        var killedAt: UInt64?
        let start = h.now
        while killedAt == nil && h.now - start < 5 * Self.second {
            let actions = h.tick(after: 100 * Self.ms)
            if actions.contains(.publishState(worker: 0, .unresponsive)) { unresponsiveAt = h.now - start }
            if actions.contains(.signal(pid: pid, .kill)) { killedAt = h.now - start }
        }
        XCTAssertEqual(unresponsiveAt.map { $0 / (100 * Self.ms) }, 10, "after --worker-timeout")
        XCTAssertEqual(killedAt.map { $0 / (100 * Self.ms) }, 20, "after twice --worker-timeout")
        XCTAssertFalse(h.supervisor.workers[0].isServing)
        h.send(.exited(pid: pid, status: 9, now: h.now))
        XCTAssertEqual(spawns(h.tick(after: 1)), [0])
    }

    func testAnUnresponsiveWorkerThatAnswersTakesConnectionsAgain() {
        var h = Harness(workers: 1, workerTimeout: 1)
        h.boot()
        let pid = h.pid(0)
        h.tick(after: 0)
        for _ in 0..<10 { h.tick(after: 100 * Self.ms) }
        XCTAssertEqual(h.supervisor.workers[0].state, .unresponsive)
        let answer = h.send(.answered(worker: 0, pid: pid, sequence: h.now, now: h.now))
        XCTAssertEqual(messages(answer), ["worker answers again; it takes new connections"])
        XCTAssertTrue(h.supervisor.workers[0].isServing)
    }

    func testNoHealthChecksWhileStopping() {
        var h = Harness(workers: 1, workerTimeout: 1)
        h.boot()
        h.send(.stopRequested(reason: "SIGTERM", now: h.now))
        let actions = h.tick(after: Self.second)
        XCTAssertFalse(actions.contains { if case .send = $0 { true } else { false } })
    }
}
