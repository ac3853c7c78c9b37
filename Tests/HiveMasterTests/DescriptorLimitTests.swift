import XCTest

@testable import HiveMaster

#if canImport(Glibc)
import Glibc
#endif

/// The descriptor limit the master raises for its workers, and the sizing it reports: 100,000 connections under a
/// 20,000-descriptor hard limit need 6 workers.
final class DescriptorLimitTests: XCTestCase {
    func testRaised_goesToTheHardLimit_neverDown() {
        XCTAssertEqual(DescriptorLimit(soft: 1_024, hard: 20_000).raised(nrOpen: 1_048_576).soft, 20_000)
        XCTAssertEqual(DescriptorLimit(soft: 20_000, hard: 20_000).raised(nrOpen: 1_048_576).soft, 20_000)
        // An unlimited hard limit is capped at fs.nr_open, the most setrlimit accepts.
        let unlimited = DescriptorLimit(soft: 1_024, hard: UInt64.max).raised(nrOpen: 1_048_576)
        XCTAssertEqual(unlimited.soft, 1_048_576)
        XCTAssertEqual(unlimited.hard, UInt64.max)
    }

    func testWorkersNeeded_for100kUnder20kDescriptors() {
        let limit = DescriptorLimit(soft: 20_000, hard: 20_000)
        XCTAssertEqual(limit.connectionsPerWorker, 19_900)
        XCTAssertEqual(limit.workersNeeded(maxConnections: 100_000), 6)
        XCTAssertEqual(limit.workersNeeded(maxConnections: 19_900), 1)
    }

    func testShortfall_namesTheShareTheLimitAndTheWorkersNeeded() throws {
        let limit = DescriptorLimit(soft: 20_000, hard: 20_000)
        XCTAssertNil(limit.shortfall(maxConnections: 110_000, workers: 6))
        let text = try XCTUnwrap(limit.shortfall(maxConnections: 110_000, workers: 2))
        XCTAssertTrue(text.contains("up to 55000 connections per worker"), text)
        XCTAssertTrue(text.contains("only 20000 descriptors"), text)
        XCTAssertTrue(text.contains("start at least 6 workers"), text)
    }

    func testRaiseToHard_raisesThisProcess() throws {
        var saved = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
        defer { setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved) }
        guard saved.rlim_max > 600 else { throw XCTSkip("hard limit \(saved.rlim_max) is too low to lower and raise") }
        var lowered = rlimit(rlim_cur: 512, rlim_max: saved.rlim_max)
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lowered), 0)
        let (before, after, error) = DescriptorLimit.raiseToHard()
        XCTAssertNil(error)
        XCTAssertEqual(before.soft, 512)
        XCTAssertEqual(after.soft, min(UInt64(saved.rlim_max), DescriptorLimit.kernelCeiling()))
        XCTAssertEqual(DescriptorLimit.current(), after)
    }
}
