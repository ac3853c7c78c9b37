import XCTest

@testable import HiveIPC

/// The master's health watch with a fake clock: events in, actions out.
final class WorkerHealthTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000

    /// Ticks every `interval` from `from` up to and including `until`, answering for the workers in `answering`.
    private func run(
        _ health: inout WorkerHealth, from: UInt64, until: UInt64, watched: [Int32], answering: Set<Int>
    ) -> [WorkerHealth.Action] {
        var actions: [WorkerHealth.Action] = []
        var now = from
        while now <= until {
            for action in health.tick(now: now, watched: watched) {
                if case .check(let id, let sequence) = action {
                    if answering.contains(id) {
                        if let more = health.answered(worker: id, pid: watched[id], sequence: sequence, now: now + 1_000_000) {
                            actions.append(more)
                        }
                    }
                } else {
                    actions.append(action)
                }
            }
            now += health.interval
        }
        return actions
    }

    func testInterval_isAFifthOfTheTimeout_butAtLeast100ms() {
        XCTAssertEqual(WorkerHealth(workers: 1, timeout: 5 * second).interval, second)
        XCTAssertEqual(WorkerHealth(workers: 1, timeout: 200_000_000).interval, 100_000_000)
    }

    func testTick_checksEveryWatchedWorker_andNotTheOthers() {
        var health = WorkerHealth(workers: 3, timeout: second)
        let actions = health.tick(now: 10 * second, watched: [100, 0, 300])
        XCTAssertEqual(actions, [.check(worker: 0, sequence: 10 * second), .check(worker: 2, sequence: 10 * second)])
        XCTAssertEqual(health.nextTick, 10 * second + health.interval)
    }

    func testAnsweringWorker_isNeverFlagged() {
        var health = WorkerHealth(workers: 2, timeout: second)
        let actions = run(&health, from: second, until: 20 * second, watched: [100, 200], answering: [0, 1])
        XCTAssertEqual(actions, [])
    }

    func testSilentWorker_isUnresponsiveAfterTheTimeout_andKilledAfterTwice() {
        var health = WorkerHealth(workers: 2, timeout: second)
        var now = 5 * second
        _ = health.tick(now: now, watched: [100, 200])
        var flagged: [UInt64: WorkerHealth.Action] = [:]
        while now < 5 * second + 3 * second {
            now += health.interval
            for action in health.tick(now: now, watched: [100, 200]) {
                if case .check(1, let sequence) = action {
                    _ = health.answered(worker: 1, pid: 200, sequence: sequence, now: now)
                } else if case .check = action {
                } else {
                    flagged[now - 5 * second] = action
                }
            }
        }
        XCTAssertEqual(flagged, [
            second: .unresponsive(worker: 0, pid: 100, silentFor: second),
            2 * second: .kill(worker: 0, pid: 100, silentFor: 2 * second),
        ])
    }

    /// "Does not answer within the timeout" counts from the first check left unanswered, not from the last answer:
    /// a worker that answered at 5.0 s and stopped right after is flagged a timeout after the 5.2 s check.
    func testTimeout_countsFromTheFirstUnansweredCheck() {
        var health = WorkerHealth(workers: 1, timeout: second)
        var flaggedAt: UInt64?
        var now = second
        while now <= 8 * second && flaggedAt == nil {
            for action in health.tick(now: now, watched: [100]) {
                if case .check(_, let sequence) = action, now <= 5 * second {
                    _ = health.answered(worker: 0, pid: 100, sequence: sequence, now: now)
                }
                if case .unresponsive(_, _, let silent) = action {
                    flaggedAt = now
                    XCTAssertEqual(silent, second)
                }
            }
            now += health.interval
        }
        XCTAssertEqual(flaggedAt, 5 * second + health.interval + second)
    }

    /// Answers to the checks sent during a stop arrive in order: the first one does not end the spell while a later
    /// check still waits past the timeout (no flapping between running and unresponsive).
    func testRecovery_waitsUntilNoCheckLeftIsLate() {
        var health = WorkerHealth(workers: 1, timeout: second)
        let flagged = run(&health, from: second, until: 2 * second + 800_000_000, watched: [100], answering: [])
        XCTAssertEqual(flagged, [.unresponsive(worker: 0, pid: 100, silentFor: second)])
        // Checks went out at 1.0, 1.2 … 2.8 s. At 2.8 s, answering up to 1.6 s leaves the 1.8 s check a whole
        // timeout late; answering up to 2.0 s leaves 2.2 s as the oldest, 0.6 s old.
        let now = 2 * second + 800_000_000
        XCTAssertNil(health.answered(worker: 0, pid: 100, sequence: 1_600_000_000, now: now))
        XCTAssertEqual(
            health.answered(worker: 0, pid: 100, sequence: 2 * second, now: now),
            .recovered(worker: 0, pid: 100, silentFor: second)
        )
        XCTAssertEqual(health.tick(now: 3 * second, watched: [100]), [.check(worker: 0, sequence: 3 * second)])
    }

    func testKilledWorker_getsNoMoreChecks_untilANewPIDIsWatched() {
        var health = WorkerHealth(workers: 1, timeout: second)
        _ = run(&health, from: second, until: 3 * second, watched: [100], answering: [])
        // Dead but not reaped yet: still listed with the old pid, nothing more is asked of it.
        XCTAssertEqual(health.tick(now: 3 * second + health.interval, watched: [100]), [])
        XCTAssertEqual(health.tick(now: 4 * second, watched: [0]), [])
        // The replacement gets a fresh watch.
        XCTAssertEqual(health.tick(now: 5 * second, watched: [101]), [.check(worker: 0, sequence: 5 * second)])
        XCTAssertEqual(run(&health, from: 5 * second + health.interval, until: 6 * second, watched: [101], answering: [0]), [])
    }

    func testUnresponsiveWorker_thatAnswersAgain_recovers_andIsNotKilled() {
        var health = WorkerHealth(workers: 1, timeout: second)
        let silent = run(&health, from: second, until: 2 * second + 500_000_000, watched: [100], answering: [])
        XCTAssertEqual(silent, [.unresponsive(worker: 0, pid: 100, silentFor: second)])
        let back = health.answered(worker: 0, pid: 100, sequence: 2 * second + 400_000_000, now: 2 * second + 600_000_000)
        XCTAssertEqual(back, .recovered(worker: 0, pid: 100, silentFor: 1_600_000_000))
        XCTAssertEqual(run(&health, from: 2 * second + 700_000_000, until: 10 * second, watched: [100], answering: [0]), [])
    }

    func testAnswers_fromAnotherPID_orToAnOlderWatch_doNotCount() {
        var health = WorkerHealth(workers: 1, timeout: second)
        _ = health.tick(now: second, watched: [100])
        _ = health.tick(now: 2 * second, watched: [101])  // replaced: a fresh watch from 2 s
        XCTAssertNil(health.answered(worker: 0, pid: 100, sequence: 2 * second, now: 2 * second))
        XCTAssertNil(health.answered(worker: 0, pid: 101, sequence: second, now: 2 * second))
        XCTAssertNil(health.answered(worker: 5, pid: 101, sequence: 2 * second, now: 2 * second))
        // Neither counted: silent since 2 s, so unresponsive at 3 s.
        XCTAssertEqual(
            health.tick(now: 3 * second, watched: [101]),
            [.unresponsive(worker: 0, pid: 101, silentFor: second), .check(worker: 0, sequence: 3 * second)]
        )
    }

    func testWorkerNoLongerWatched_isForgotten_andStartsAfreshWhenWatchedAgain() {
        var health = WorkerHealth(workers: 1, timeout: second)
        _ = health.tick(now: second, watched: [100])
        _ = health.tick(now: 1_500_000_000, watched: [100])
        // Retiring during a reload: not watched, so the silence that follows is not held against it.
        XCTAssertEqual(health.tick(now: 1_700_000_000, watched: [0]), [])
        XCTAssertEqual(health.tick(now: 1_900_000_000, watched: [0]), [])
        XCTAssertEqual(health.tick(now: 2_100_000_000, watched: [100]), [.check(worker: 0, sequence: 2_100_000_000)])
    }

    func testMasterAwayForATimeout_doesNotKillItsWorkers() {
        var health = WorkerHealth(workers: 2, timeout: second)
        _ = run(&health, from: second, until: 2 * second, watched: [100, 200], answering: [0, 1])
        // The master itself was suspended for 10 s: it could not read any answer.
        let actions = health.tick(now: 12 * second, watched: [100, 200])
        XCTAssertEqual(actions, [.check(worker: 0, sequence: 12 * second), .check(worker: 1, sequence: 12 * second)])
    }
}
