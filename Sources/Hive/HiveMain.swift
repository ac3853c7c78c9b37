import ArgumentParser
import HiveConfig
import HiveIPC
import HiveWorker

#if canImport(Glibc)
import Glibc
#endif

/// The entry point of a Hive application: the whole `hive` command line (start, status, connections, push,
/// disconnect, publish, stop, reload, reopen-logs, config) serving `application`. Call it from the executable's
/// `main.swift`:
///
/// ```swift
/// import Hive
///
/// struct Upper: HiveApplication { ... }
///
/// try await HiveMain.run(Upper())
/// ```
///
/// `start` runs the master in this process; the master spawns each worker from this same executable (with a hidden
/// `worker` subcommand), so every worker serves `application`. The master stays single-threaded: nothing here
/// starts a thread before it has forked its workers.
///
/// So call it first and unconditionally in `main.swift`: a worker is this executable started again with
/// `worker ...` arguments, and only `run` knows to serve `application` then. Start nothing before it that makes a
/// thread (a `Task`, Dispatch, NIO, an `await` of anything but this call): the master refuses to start workers
/// when it is not the process's only thread.
public enum HiveMain {
    /// Runs the command line in `CommandLine.arguments` and exits the process with its status: it never returns.
    /// Exit statuses are those of Docs/OPERATIONS.md (1 for an invalid option).
    @MainActor
    public static func run<Application: HiveApplication>(_ application: Application) async throws {
        ApplicationSlot.current = application
        HiveCommand.main()
    }
}

/// The application of this process, set once by `HiveMain.run` before the command line is parsed, read by the
/// worker subcommand.
enum ApplicationSlot {
    nonisolated(unsafe) static var current: (any HiveApplication)?
}

struct HiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: executableName,
        abstract: "A multi-process WebSocket + HTTP push server (a master hands connections to forked workers).",
        subcommands: [Start.self, Status.self, Connections.self, Channels.self, Push.self, Disconnect.self, Stop.self, Reload.self, ReopenLogs.self, Publish.self, ConfigCommand.self, Worker.self]
    )

    /// The name this executable was started as: `hive`, or the user's own (`upper`).
    static let executableName: String = {
        let path = CommandLine.arguments.first ?? "hive"
        return path.split(separator: "/").last.map(String.init) ?? "hive"
    }()

    /// Like ArgumentParser's `main`, but an invalid option exits with status 1 (Docs/OPERATIONS.md), not 64.
    static func main() -> Never {
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
            Glibc.exit(0)
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
