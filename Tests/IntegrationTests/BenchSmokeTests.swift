import Foundation
import XCTest

/// The benchmark generator's smoke mode against a real hive and redis-server: a few hundred clients, every
/// message exactly once and in order, nothing on plain HTTP connections. Keeps `make bench` from rotting.
final class BenchSmokeTests: HiveTestCase {
    func testBenchSmoke_deliversEverythingOnce_andNothingToHTTP() throws {
        let redis = try startRedis()
        let (_, port) = try startHive(workers: 2, ["--redis", redis.url])
        try redis.waitForSubscribers(channel: "test", count: 1)

        let process = Process()
        process.executableURL = HiveProcess.binaryURL().deletingLastPathComponent().appendingPathComponent("hive-bench")
        process.arguments = ["smoke", "--port", String(port), "--redis", redis.url]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("lost 0, duplicated 0, out of order 0"), text)
    }
}
