import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `hive start` raises the descriptor limit (RLIMIT_NOFILE) to the hard limit before spawning its workers, so a
/// worker started from a shell with a low soft limit can still hold its share of --max-connections; and it says
/// how many workers --max-connections needs when the hard limit is too low for it.
final class DescriptorLimitIntegrationTests: HiveTestCase {
    private static func softLimit(of pid: Int32) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8) else { return nil }
        // "Max open files            20000                20000                files"
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Max open files") }) else { return nil }
        return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.flatMap { UInt64($0) }
    }

    func testStart_withALowSoftLimit_workersGetTheHardLimit() throws {
        var saved = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
        guard saved.rlim_max >= 2_048 else { throw XCTSkip("hard limit \(saved.rlim_max): nothing to raise to") }
        // The child inherits the test process's limits: lowered for its start only.
        var lowered = rlimit(rlim_cur: 512, rlim_max: saved.rlim_max)
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lowered), 0)
        let started = Result { try startHive(workers: 2, ["--log-level", "info"]) }
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
        let (hive, _) = try started.get()

        let expected = min(UInt64(saved.rlim_max), 1_048_576)
        let workers = hive.workerPIDs()
        XCTAssertEqual(workers.count, 2, hive.log())
        for pid in workers + [try XCTUnwrap(hive.pid)] {
            XCTAssertEqual(Self.softLimit(of: pid), expected, "pid \(pid): \(hive.log())")
        }
        XCTAssertTrue(hive.log().contains("raised the descriptor limit (RLIMIT_NOFILE) from 512"), hive.log())
    }

    func testStart_maxConnectionsOverTheLimit_saysHowManyWorkersItNeeds() throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        guard limit.rlim_max < 1_000_000 else { throw XCTSkip("hard limit \(limit.rlim_max): every size fits") }
        let perWorker = Int(limit.rlim_max) - 100
        let (hive, _) = try startHive(workers: 1, ["--max-connections", String(perWorker * 3)])
        XCTAssertTrue(hive.log().contains("start at least 3 workers"), hive.log())
        XCTAssertFalse(hive.log().contains(" warning "), hive.log())
    }
}
