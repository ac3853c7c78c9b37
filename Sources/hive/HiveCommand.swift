import ArgumentParser

@main
struct HiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hive",
        abstract: "A multi-process WebSocket + HTTP push server (a master hands connections to forked workers).",
        subcommands: [Start.self, Worker.self]
    )
}
