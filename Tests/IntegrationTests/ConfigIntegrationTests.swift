#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest

/// `hive start --config FILE`, `HIVE_<OPTION>` variables and `hive config check`, against the real binary: a value
/// from the file is enforced by the workers, the environment beats the file and a flag beats both, bad input is one
/// clear line and exit status 1, and a Redis password from the file never reaches a command line.
final class ConfigIntegrationTests: LimitsTestCase {
    private var files: [URL] = []

    override func tearDown() {
        for file in files { try? FileManager.default.removeItem(at: file) }
        files = []
        super.tearDown()
    }

    private func writeConfig(_ text: String, extension ext: String = "yaml") throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("hive-config-\(UUID().uuidString.prefix(8)).\(ext)")
        try Data(text.utf8).write(to: url)
        files.append(url)
        return url.path
    }

    /// Like `launch`, with variables in hive's environment.
    private func launch(_ extra: [String], environment: [String: String]) throws -> Launched {
        let process = try HiveProcess(
            arguments: ["--port", "0", "--workers", "1", "--redis", "none"] + extra, environment: environment)
        launched.append(process)
        let port = try process.startAndReadPort()
        let registry = try RegistryProbe.attach(masterPID: try XCTUnwrap(process.pid))
        return Launched(process: process, port: port, registry: registry)
    }

    /// A message of `fits` bytes is echoed; one of `tooLarge` bytes is closed with 1009.
    private func assertMaxMessageSize(_ hive: Launched, fits: Int, tooLarge: Int, _ what: String) throws {
        let (client, _) = try openWebSocket(hive)
        let atLimit = [UInt8](repeating: 0x61, count: fits)
        try client.sendBinary(atLimit)
        XCTAssertEqual(try client.receiveMessage(), .binary(atLimit), "\(fits) bytes, \(what)")
        let (offender, _) = try openWebSocket(hive)
        try sendIgnoringEarlyClose(offender, opcode: WebSocketOpcode.binary, [UInt8](repeating: 0x61, count: tooLarge))
        try expectCloseFrame(offender, code: 1009, "\(tooLarge) bytes, \(what)")
    }

    func testConfigFile_maxMessageSize_isEnforcedByTheWorkers() throws {
        let path = try writeConfig("# from the file\nmax-message-size: 4096\n")
        let hive = try launch(["--config", path], environment: [:])
        try assertMaxMessageSize(hive, fits: 4096, tooLarge: 4097, "max-message-size 4096 from the file")
    }

    func testEnvironment_overridesTheFile() throws {
        let path = try writeConfig("max-message-size: 4096\n")
        let hive = try launch(["--config", path], environment: ["HIVE_MAX_MESSAGE_SIZE": "2048"])
        try assertMaxMessageSize(hive, fits: 2048, tooLarge: 3000, "HIVE_MAX_MESSAGE_SIZE 2048 over the file's 4096")
    }

    func testFlag_overridesTheEnvironmentAndTheFile_andHIVE_CONFIGNamesTheFile() throws {
        let path = try writeConfig(#"{"max-message-size": 1024}"#, extension: "json")
        let hive = try launch(
            ["--max-message-size", "8192"], environment: ["HIVE_CONFIG": path, "HIVE_MAX_MESSAGE_SIZE": "2048"])
        try assertMaxMessageSize(hive, fits: 8192, tooLarge: 9000, "--max-message-size 8192 over the environment and file")
    }

    func testStart_unknownKeyOrBadValue_exitsWith1NamingFileAndKey() throws {
        let typo = try writeConfig("max-ouput-buffer: 1048576\n")
        var result = try HiveCLI.run(["start", "--config", typo, "--port", "0"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr, "hive: error: \(typo):1: unknown key \"max-ouput-buffer\" (did you mean \"max-output-buffer\"?)\n")

        let bad = try writeConfig("max-output-buffer: lots\n")
        result = try HiveCLI.run(["start", "--config", bad, "--port", "0"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr, "hive: error: \(bad): max-output-buffer must be a positive number of bytes, got \"lots\"\n")

        // In range for its kind but not for the option: the option's own check, relabelled.
        let zero = try writeConfig("max-output-buffer: 0\n")
        result = try HiveCLI.run(["start", "--config", zero, "--port", "0"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr, "hive: error: \(zero): max-output-buffer must be a positive number of bytes, got 0\n")

        result = try HiveCLI.run(["start", "--port", "0"], environment: ["HIVE_WORKERS": "0"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasPrefix("hive: error: $HIVE_WORKERS must be between 1 and "), result.stderr)

        result = try HiveCLI.run(["start", "--config", "/nonexistent/hive.yaml"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr, "hive: error: /nonexistent/hive.yaml: cannot read the configuration file (No such file or directory)\n")
    }

    /// A garbage file is one line on stderr and exit status 1, never a crash.
    func testStart_garbageFile_isACleanError() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5 {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("hive-garbage-\(UUID().uuidString.prefix(8)).yaml")
            try Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: url)
            files.append(url)
            let result = try HiveCLI.run(["config", "check", url.path])
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertTrue(result.stderr.hasPrefix("hive: error: \(url.path)"), result.stderr)
            XCTAssertEqual(result.stderr.filter { $0 == "\n" }.count, 1, result.stderr)
        }
    }

    func testConfigCheck_printsEverySourceAndRedactsThePassword() throws {
        let path = try writeConfig("""
            port: 9600
            max-message-size: 4096
            redis: "redis://:s3cret-pw@127.0.0.1:6390"
            channel: [news, alerts]
            """)
        let result = try HiveCLI.run(
            ["config", "check", path], environment: ["HIVE_MAX_MESSAGE_SIZE": "2048", "HIVE_REDIS_URL": ""])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertFalse(result.stdout.contains("s3cret"), result.stdout)
        let lines = Dictionary(result.stdout.split(separator: "\n").dropFirst().map {
            let parts = $0.split(separator: " ", maxSplits: 1)
            return (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces))
        }, uniquingKeysWith: { $1 })
        XCTAssertEqual(lines["port"], "9600  (file \(path))")
        XCTAssertEqual(lines["max-message-size"], "2048  (env HIVE_MAX_MESSAGE_SIZE)")
        XCTAssertEqual(lines["host"], "127.0.0.1  (default)")
        XCTAssertEqual(lines["redis"], "redis://127.0.0.1:6390 (with password ***)  (file \(path))")
        XCTAssertEqual(lines["redis-password"], "***  (in redis)")
        XCTAssertEqual(lines["channel"], "[news, alerts]  (file \(path))")
    }

    func testConfigFile_withThePasswordReadableByOthers_isWarnedAbout() throws {
        let path = try writeConfig("redis: \"redis://:pw@127.0.0.1:6390\"\n")
        chmod(path, 0o644)
        let warning = "hive: warning: \(path) holds the Redis password and is readable by other users"
        var result = try HiveCLI.run(["config", "check", path], environment: ["HIVE_REDIS_URL": ""])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix(warning), result.stderr)
        chmod(path, 0o600)
        result = try HiveCLI.run(["config", "check", path], environment: ["HIVE_REDIS_URL": ""])
        XCTAssertEqual(result.stderr, "")
    }

    func testStartHelp_isShownWhateverTheEnvironmentSays() throws {
        let result = try HiveCLI.run(["start", "--help"], environment: ["HIVE_PORT": "many"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("--config <path>"), result.stdout)
    }

    /// Every option of `hive start` is a key of the file (and a variable): `config check` lists them all.
    func testConfigKeys_coverEveryStartOption() throws {
        let help = try HiveCLI.run(["start", "--experimental-dump-help"])
        XCTAssertEqual(help.status, 0, help.stderr)
        let tool = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(help.stdout.utf8)) as? [String: Any])
        let command = try XCTUnwrap(tool["command"] as? [String: Any])
        let arguments = try XCTUnwrap(command["arguments"] as? [[String: Any]])
        let options = Set(arguments.flatMap { ($0["names"] as? [[String: Any]]) ?? [] }
            .filter { $0["kind"] as? String == "long" }.compactMap { $0["name"] as? String })
            .subtracting(["help", "version", "config"])
        let check = try HiveCLI.run(["config", "check", try writeConfig("")])
        XCTAssertEqual(check.status, 0, check.stderr)
        let keys = Set(check.stdout.split(separator: "\n").dropFirst().map { String($0.prefix { $0 != " " }) })
        XCTAssertEqual(options.subtracting(keys), [], "options of hive start that the file cannot give")
        XCTAssertEqual(keys.subtracting(options), ["redis-password"], "keys that are no option of hive start")
        XCTAssertFalse(check.stdout.contains("  ?  "), "a key without an effective value:\n\(check.stdout)")
    }

    func testConfigCheck_theExampleInDocs_isValid() throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Docs/hive.yaml")
        let result = try HiveCLI.run(["config", "check", example.path], environment: ["HIVE_REDIS_PASSWORD": "x"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("\(example.path): valid\n"), result.stdout)
    }

    /// The Redis password in the file reaches worker 0 in its environment, and no command line, of the master or
    /// a worker.
    func testRedisPasswordFromTheFile_isInNoCommandLine() throws {
        let path = try writeConfig("redis: \"redis://:s3cret-pw@127.0.0.1:\(HiveProcess.freePort())\"\nredis-timeout: 1\n")
        let process = try HiveProcess(
            arguments: ["--port", "0", "--workers", "1", "--config", path],
            environment: ["HIVE_REDIS_URL": "", "HIVE_REDIS_PASSWORD": ""])
        launched.append(process)
        try process.start()
        let master = try XCTUnwrap(process.pid)
        let workers = process.workerPIDs()
        XCTAssertFalse(workers.isEmpty)
        for pid in [master] + workers {
            let commandLine = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
            XCTAssertNil(commandLine.range(of: Data("s3cret".utf8)), "the password is in the command line of \(pid)")
        }
        let environment = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(workers[0])/environ"))
        XCTAssertNotNil(environment.range(of: Data("HIVE_REDIS_PASSWORD=s3cret-pw\u{0}".utf8)),
                        "worker 0 did not get the password in its environment")
        XCTAssertFalse(process.log().contains("s3cret"), "the password is in the log")
    }
}
