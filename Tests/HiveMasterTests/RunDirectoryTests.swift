import Foundation
import XCTest

@testable import HiveMaster

/// Which pid file names a live master: an application built on Hive runs under its own name (`upper`), and its
/// operator commands must still find it; a pid that now belongs to another program must not be taken for it.
final class RunDirectoryTests: XCTestCase {
    func testCommandLine_ofAHiveMaster_orOfAnApplicationUnderItsOwnName_isAMaster() {
        XCTAssertTrue(RunDirectory.isHiveCommandLine("/usr/local/bin/hive start --port 9501", own: "hive status"))
        XCTAssertTrue(RunDirectory.isHiveCommandLine("/srv/app/upper start --port 80", own: "./upper status --port 80"))
        XCTAssertTrue(RunDirectory.isHiveCommandLine("upper start", own: "/srv/app/upper stop"))
        XCTAssertFalse(RunDirectory.isHiveCommandLine("/usr/sbin/nginx -g daemon off;", own: "./upper stop"))
        XCTAssertFalse(RunDirectory.isHiveCommandLine("/bin/upperdir start", own: "./upper stop"))
        XCTAssertFalse(RunDirectory.isHiveCommandLine("", own: ""))
    }

    /// A pid file naming a process of this very program (here the test runner, whose path does not say hive) is a
    /// running master; one naming a process of another program is stale.
    func testRunningMasterPID_acceptsAProcessOfThisProgram_andRefusesAnotherProgram() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("run-dir-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: directory) }
        let runDirectory = RunDirectory(path: directory.path)
        let own = try XCTUnwrap(RunDirectory.read("/proc/self/cmdline"))
        try XCTSkipIf(own.contains("hive"), "the test runner's command line says hive: \(own)")

        try "\(getpid())\n".write(toFile: runDirectory.pidFile, atomically: true, encoding: .utf8)
        XCTAssertEqual(runDirectory.runningMasterPID(), getpid())

        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["10"]
        try sleeper.run()
        defer { sleeper.terminate(); sleeper.waitUntilExit() }
        try "\(sleeper.processIdentifier)\n".write(toFile: runDirectory.pidFile, atomically: true, encoding: .utf8)
        XCTAssertNil(runDirectory.runningMasterPID())
    }
}
