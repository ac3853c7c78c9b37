import Foundation
import XCTest

@testable import HiveConfig

final class ConfigResolutionTests: XCTestCase {
    private func resolve(
        _ commandLine: [String] = [], environment: [String: String] = [:], file: [String: ConfigValue]? = nil
    ) throws -> ConfigResolution {
        try ConfigResolution.resolve(commandLine: commandLine, environment: environment, file: file, fileName: "h.yaml")
    }

    func testPrecedence_fileBeatsDefault() throws {
        let resolution = try resolve(file: ["max-message-size": .scalar("4096")])
        XCTAssertEqual(resolution.sources["max-message-size"], .file("h.yaml"))
        XCTAssertEqual(resolution.arguments, ["--max-message-size=4096"])
        XCTAssertEqual(resolution.sources["port"], .default)
    }

    func testPrecedence_environmentBeatsFile() throws {
        let resolution = try resolve(
            environment: ["HIVE_MAX_MESSAGE_SIZE": "2048"], file: ["max-message-size": .scalar("4096")])
        XCTAssertEqual(resolution.sources["max-message-size"], .environment("HIVE_MAX_MESSAGE_SIZE"))
        XCTAssertEqual(resolution.arguments, ["--max-message-size=2048"])
    }

    func testPrecedence_flagBeatsEnvironmentAndFile() throws {
        for flag in [["--max-message-size", "1000"], ["--max-message-size=1000"]] {
            let resolution = try resolve(
                flag, environment: ["HIVE_MAX_MESSAGE_SIZE": "2048"], file: ["max-message-size": .scalar("4096")])
            XCTAssertEqual(resolution.sources["max-message-size"], .flag)
            XCTAssertEqual(resolution.arguments, [], "nothing added: the flag stands")
        }
    }

    func testPrecedence_emptyVariable_isNotSet() throws {
        let resolution = try resolve(environment: ["HIVE_PORT": ""], file: ["port": .scalar("9600")])
        XCTAssertEqual(resolution.sources["port"], .file("h.yaml"))
    }

    func testLists_environmentIsCommaSeparated_andReplacesTheFilesList() throws {
        let resolution = try resolve(
            environment: ["HIVE_CHANNEL": "a, b,c"], file: ["channel": .list(["x"]), "pattern": .list(["p*", "q*"])])
        XCTAssertEqual(resolution.arguments, ["--channel=a", "--channel=b", "--channel=c", "--pattern=p*", "--pattern=q*"])
    }

    func testFlags_trueAddsTheFlag_falseAddsNothing() throws {
        XCTAssertEqual(try resolve(file: ["daemon": .scalar("true")]).arguments, ["--daemon"])
        XCTAssertEqual(try resolve(environment: ["HIVE_DAEMON": "0"], file: ["daemon": .scalar("true")]).arguments, [])
    }

    func testRedisSecrets_fromTheFile_goToTheEnvironmentNotTheArguments() throws {
        let resolution = try resolve(file: ["redis": .scalar("redis://:pw@h:1"), "redis-password-file": .scalar("/p")])
        XCTAssertEqual(resolution.environment, ["HIVE_REDIS_URL": "redis://:pw@h:1"])
        XCTAssertEqual(resolution.arguments, ["--redis-password-file=/p"])
        // The environment's own value wins, and stays where the option parser reads it.
        let fromEnvironment = try resolve(
            environment: ["HIVE_REDIS_URL": "none", "HIVE_REDIS_PASSWORD": "s"],
            file: ["redis": .scalar("redis://h:1"), "redis-password": .scalar("t")])
        XCTAssertEqual(fromEnvironment.environment, [:])
        XCTAssertEqual(fromEnvironment.arguments, [])
        XCTAssertEqual(fromEnvironment.sources["redis"], .environment("HIVE_REDIS_URL"))
        XCTAssertEqual(fromEnvironment.sources["redis-password"], .environment("HIVE_REDIS_PASSWORD"))
    }

    func testEnvironment_badValue_namesTheVariable() {
        XCTAssertThrowsError(try resolve(environment: ["HIVE_MAX_OUTPUT_BUFFER": "lots"])) {
            XCTAssertEqual("\($0)", #"$HIVE_MAX_OUTPUT_BUFFER must be a positive number of bytes, got "lots""#)
        }
    }

    func testSecret_badValue_isNotRepeated() {
        do {
            _ = try ConfigFile.parse(Data("redis-password: \"pass\\nword\"\n".utf8), name: "h.yaml")
            XCTFail("a password on two lines was accepted")
        } catch {
            XCTAssertEqual("\(error)", "h.yaml: redis-password must be the Redis password on one line")
        }
        // The environment's Redis variables are left to the option parser, as before the file existed.
        XCTAssertEqual(try resolve(environment: ["HIVE_REDIS_PASSWORD": "a\nb"]).arguments, [])
    }

    func testValueStartingWithADash_staysAValue() throws {
        XCTAssertEqual(try resolve(file: ["host": .scalar("-x")]).arguments, ["--host=-x"])
    }

    func testConfigPath_fromFlagThenEnvironment() {
        XCTAssertEqual(ConfigResolution.configPath(commandLine: ["--config", "a.yaml"], environment: [:]), "a.yaml")
        XCTAssertEqual(ConfigResolution.configPath(commandLine: ["--config=b.yaml"], environment: ["HIVE_CONFIG": "c"]), "b.yaml")
        XCTAssertEqual(ConfigResolution.configPath(commandLine: ["--port", "1"], environment: ["HIVE_CONFIG": "c"]), "c")
        XCTAssertNil(ConfigResolution.configPath(commandLine: [], environment: [:]))
        XCTAssertEqual(ConfigResolution.configPath(commandLine: ["--config", "a", "--config=b"], environment: [:]), "b")
    }

    func testKeys_environmentNames() {
        XCTAssertEqual(ConfigKey.named("max-output-buffer")?.environmentName, "HIVE_MAX_OUTPUT_BUFFER")
        XCTAssertEqual(ConfigKey.named("redis")?.environmentName, "HIVE_REDIS_URL")
        XCTAssertEqual(ConfigKey.named("redis-password")?.environmentName, "HIVE_REDIS_PASSWORD")
        XCTAssertEqual(Set(ConfigKey.all.map(\.name)).count, ConfigKey.all.count, "a key twice")
        XCTAssertEqual(ConfigKey.suggestion(for: "max-ouput-buffer"), "max-output-buffer")
        XCTAssertEqual(ConfigKey.suggestion(for: "PORT"), "port")
        XCTAssertNil(ConfigKey.suggestion(for: ""))
        XCTAssertNil(ConfigKey.suggestion(for: "something-else-entirely"))
    }
}
