import ArgumentParser
import Foundation

/// `hive status`: the master and every worker, live, from the shared registry.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the master and every worker, live.")

    @OptionGroup var target: RunDirOptions

    @Flag(help: "Print one JSON object (field names in Docs/OPERATIONS.md).")
    var json = false

    @Flag(help: "Refresh every second, with per-second rates, redrawn in place on a terminal (Ctrl-C to quit).")
    var watch = false

    /// Cursor home, then clear the screen (ANSI): the next report draws over the last one.
    static let homeAndClear = "\u{1B}[H\u{1B}[2J"

    func run() throws {
        try runReporting {
            _ = try target.requireMaster()
            let facts = try MasterFacts(client: ControlClient(runDirectory: target.runDirectory))
            var previous: StatusReport?
            // Like top on a terminal; into a file or pipe (or with --json) each report is appended, so a log of
            // them stays readable and a script sees whole objects.
            let redraw = watch && !json && isatty(1) == 1
            repeat {
                let report = StatusReport(facts: facts)
                if json {
                    print(try jsonText(report.json(previous: previous)))
                } else {
                    if redraw { print(Self.homeAndClear, terminator: "") }
                    print(report.text(previous: previous))
                }
                fflush(nil)
                previous = report
                if watch { Thread.sleep(forTimeInterval: 1) }
            } while watch
        }
    }
}

func jsonText(_ object: Any) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
}

/// Runs an operator command: an `OperatorError` or other failure is one line on stderr and exit status 1.
func runReporting(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as OperatorError {
        FileHandle.standardError.write(Data("hive: \(error)\n".utf8))
        throw ExitCode(1)
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(Data("hive: error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
