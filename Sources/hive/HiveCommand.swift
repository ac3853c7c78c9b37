import ArgumentParser
import HiveConfig
import HiveIPC

#if canImport(Glibc)
import Glibc
#endif

@main
struct HiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hive",
        abstract: "A multi-process WebSocket + HTTP push server (a master hands connections to forked workers).",
        subcommands: [Start.self, Status.self, Connections.self, Push.self, Disconnect.self, Stop.self, Reload.self, ReopenLogs.self, Publish.self, ConfigCommand.self, Worker.self]
    )

    /// Like ArgumentParser's `main`, but an invalid option exits with status 1 (Docs/OPERATIONS.md), not 64.
    static func main() {
        do {
            var arguments = Array(CommandLine.arguments.dropFirst())
            // Help is shown whatever the environment or file says.
            let helpFlags: Set<String> = ["--help", "-h", "help", "--experimental-dump-help"]
            if arguments.first == "start", !arguments.contains(where: helpFlags.contains) {
                do {
                    arguments = ["start"] + (try StartConfiguration.prepare(startArguments: Array(arguments.dropFirst())).arguments)
                } catch let error as ConfigError {
                    writeLine("hive: error: \(error)", to: 2)
                    Glibc.exit(1)
                }
            }
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            var message = fullMessage(for: error)
            // ArgumentParser starts a validation error with "Error: "; after "hive: error: " that is said twice.
            if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
            if code == .success {
                writeLine(message)
                Glibc.exit(0)
            }
            if !message.isEmpty { writeLine("hive: error: \(message)", to: 2) }
            Glibc.exit(error is ExitCode ? code.rawValue : 1)
        }
    }
}
