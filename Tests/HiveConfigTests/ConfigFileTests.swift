import Foundation
import XCTest

@testable import HiveConfig

final class ConfigFileTests: XCTestCase {
    private func parse(_ text: String) throws -> [String: ConfigValue] {
        try ConfigFile.parse(Data(text.utf8), name: "hive.yaml")
    }

    private func error(_ text: String) -> String {
        do {
            _ = try parse(text)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    func testParse_yamlOfEveryKind_givesTheValuesAsText() throws {
        let values = try parse("""
            # comment
            port: 9600
            grace: 2.5
            daemon: yes
            host: "::1"
            allowed-origin:
              - https://a.example
              - https://b.example
            channel: news
            """)
        XCTAssertEqual(values["port"], .scalar("9600"))
        XCTAssertEqual(values["grace"], .scalar("2.5"))
        XCTAssertEqual(values["daemon"], .scalar("true"))
        XCTAssertEqual(values["host"], .scalar("::1"))
        XCTAssertEqual(values["allowed-origin"], .list(["https://a.example", "https://b.example"]))
        XCTAssertEqual(values["channel"], .list(["news"]), "one item on its own is a list of one")
        XCTAssertEqual(values.count, 6)
    }

    func testParse_json_isAccepted() throws {
        let values = try parse(#"{"max-message-size": 4096, "channel": ["a", "b"], "daemon": false}"#)
        XCTAssertEqual(values["max-message-size"], .scalar("4096"))
        XCTAssertEqual(values["channel"], .list(["a", "b"]))
        XCTAssertEqual(values["daemon"], .scalar("false"))
    }

    func testParse_emptyFileOrOnlyComments_isNoOptions() throws {
        XCTAssertEqual(try parse(""), [:])
        XCTAssertEqual(try parse("# nothing here\n"), [:])
    }

    func testParse_unknownKey_namesItAndTheFileAndSuggests() {
        XCTAssertEqual(
            error("port: 1\nmax-ouput-buffer: 3\n"),
            #"hive.yaml:2: unknown key "max-ouput-buffer" (did you mean "max-output-buffer"?)"#)
        XCTAssertEqual(
            error("zzzzzzzzzzzz: 1\n"),
            #"hive.yaml:1: unknown key "zzzzzzzzzzzz"; the keys are the options of `hive start --help` without the dashes"#)
    }

    func testParse_valueOfTheWrongKind_namesFileKeyAndValue() {
        XCTAssertEqual(
            error("max-output-buffer: lots\n"),
            #"hive.yaml: max-output-buffer must be a positive number of bytes, got "lots""#)
        XCTAssertEqual(error("grace: soon\n"), #"hive.yaml: grace must be 0 or more seconds, got "soon""#)
        XCTAssertEqual(error("grace: .nan\n"), #"hive.yaml: grace must be 0 or more seconds, got ".nan""#)
        XCTAssertEqual(error("daemon: maybe\n"), #"hive.yaml: daemon must be true or false, got "maybe""#)
        XCTAssertEqual(error("port: [1, 2]\n"), "hive.yaml: port must be a port number between 0 (any free port) and 65535, got a list")
        XCTAssertEqual(error("host: {a: 1}\n"), "hive.yaml: host must be an IPv4 or IPv6 address, got a mapping")
        XCTAssertEqual(
            error("channel: [[a]]\n"), "hive.yaml: channel must be a list of channel names, got a list holding a list")
    }

    func testParse_notAMappingOrTwiceTheSameKey_isAnError() {
        XCTAssertTrue(error("- a\n- b\n").hasPrefix("hive.yaml: the top level must map option names to values"))
        XCTAssertTrue(error("just text\n").hasPrefix("hive.yaml: the top level must map option names to values"))
        XCTAssertTrue(error("port: 1\nport: 2\n").contains("given twice"), error("port: 1\nport: 2\n"))
    }

    func testParse_badYaml_saysWhereInOneLine() {
        let message = error("port: [1\nhost: x\n")
        XCTAssertTrue(message.hasPrefix("hive.yaml: not valid YAML: line "), message)
        XCTAssertFalse(message.contains("\n"), message)
    }

    func testParse_notUTF8_isAnError() {
        XCTAssertThrowsError(try ConfigFile.parse(Data([0x70, 0x3A, 0xFF, 0xFE]), name: "x.yaml")) {
            XCTAssertEqual("\($0)", "x.yaml: not UTF-8 text; a configuration file is YAML or JSON in UTF-8")
        }
    }

    /// Garbage of every sort gives a ConfigError (or a valid empty result), never a crash or a hang.
    func testParse_randomGarbage_isACleanErrorNeverACrash() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("port: -[]{}\"'\n\t #&*!|>%@`,?:\\ab1\u{0}\u{FFFD}".utf8)
        let clock = ContinuousClock()
        let start = clock.now
        for round in 0..<2000 {
            let length = Int.random(in: 0...200, using: &generator)
            let bytes: [UInt8] = round % 2 == 0
                ? (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                : (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            do {
                _ = try ConfigFile.parse(Data(bytes), name: "fuzz.yaml")
            } catch let error as ConfigError {
                XCTAssertTrue(error.description.hasPrefix("fuzz.yaml"), error.description)
                XCTAssertFalse(error.description.contains("\n"), error.description)
            } catch {
                XCTFail("not a ConfigError: \(error)")
            }
        }
        XCTAssertLessThan(clock.now - start, .seconds(30))
    }

    /// Hostile shapes within the size limit: deep nesting (libyaml stops at 1000 levels, before the recursive
    /// composer could exhaust the stack) and aliases of aliases (shared, not expanded): an error, at once.
    func testParse_deepNestingAndAliasBombs_areCleanErrorsAtOnce() {
        let clock = ContinuousClock()
        let start = clock.now
        let deep = "channel: " + String(repeating: "[", count: 500_000) + String(repeating: "]", count: 500_000)
        XCTAssertTrue(error(deep).hasPrefix("hive.yaml: not valid YAML: line 1, column "), error(deep))
        // Each level anchors a list of 9 aliases of the one before (9^30 leaves if expanded), all inside the value of
        // a list key: its items are lists, which is the error.
        var levels = ["&a0 [x, x, x, x, x, x, x, x, x]"]
        for level in 1..<30 {
            levels.append("&a\(level) [" + Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ", ") + "]")
        }
        let bomb = "pattern: [" + levels.joined(separator: ", ") + "]\n"
        XCTAssertEqual(error(bomb), "hive.yaml: pattern must be a list of glob patterns, got a list holding a list")
        XCTAssertLessThan(clock.now - start, .seconds(10))
    }

    func testLoad_fileOverTheLimit_isRefusedUnparsed() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("hive-big-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(("# " + String(repeating: "x", count: ConfigFile.maxSize) + "\n").utf8).write(to: url)
        XCTAssertThrowsError(try ConfigFile.load(path: url.path)) {
            XCTAssertEqual("\($0)", "\(url.path): the configuration file is over 1048576 bytes; an option file is a few hundred")
        }
    }

    func testLoad_missingFileOrDirectory_isAnErrorNamingIt() {
        XCTAssertThrowsError(try ConfigFile.load(path: "/nonexistent/hive.yaml")) {
            XCTAssertEqual("\($0)", "/nonexistent/hive.yaml: cannot read the configuration file (No such file or directory)")
        }
        XCTAssertThrowsError(try ConfigFile.load(path: "/tmp")) {
            XCTAssertTrue("\($0)".hasPrefix("/tmp: not a regular file"))
        }
    }
}
