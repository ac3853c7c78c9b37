import ArgumentParser
import Foundation
import HiveIPC
import HiveWorker
import Logging

/// The hidden subcommand the master spawns for each worker. Not for people: its descriptors must be inherited, and
/// the Redis address and password come in its environment (`HIVE_REDIS_URL`, `HIVE_REDIS_PASSWORD`), not in argv.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one worker (started by the master).",
        shouldDisplay: false
    )

    @Option var workerID: Int
    @Option var registryFd: Int32
    @Option var inboxFd: Int32
    @Option var masterFd: Int32
    @Option var peerFds: String
    @Option var grace: Double = 5
    @Option var logFile: String?
    @OptionGroup var limits: LimitOptions
    @OptionGroup var redis: RedisOptions
    @OptionGroup var history: HistoryOptions

    func run() throws {
        let logger = makeLogger(level: limits.logLevel, label: "hive")
        let peers = peerFds.split(separator: ",").compactMap { Int32($0) }
        var configuration = WorkerConfiguration(
            workerID: workerID, registryFD: registryFd, inboxFD: inboxFd, masterFD: masterFd, peerFDs: peers,
            limits: limits.limits
        )
        configuration.grace = .seconds(grace)
        configuration.history = history.historyRules
        configuration.logFile = logFile
        configuration.apiKey = ProcessInfo.processInfo.environment[PublishAPIOptions.keyVariable]
        configuration.tokenKey = TokenOptions.workerKey()
        configuration.replacesRetiredProcess = ProcessInfo.processInfo.environment["HIVE_WORKER_REPLACES_RETIRED"] == "1"
        guard let application = ApplicationSlot.current else {
            writeLine("hive: worker \(workerID) error: no application to serve (HiveMain.run sets it)", to: 2)
            throw ExitCode(3)
        }
        configuration.redis = redis.configuration(
            maxMessageSize: limits.maxMessageSize, declared: (application.redisChannels, application.redisPatterns)
        )
        do {
            try Self.serve(application, configuration: configuration, logger: logger)
        } catch {
            writeLine("hive: worker \(workerID) error: \(error)", to: 2)
            throw ExitCode(3)
        }
    }

    /// Opens the application's existential: the worker is generic over the application, so its context keeps
    /// its type.
    private static func serve<Application: HiveApplication>(
        _ application: Application, configuration: WorkerConfiguration, logger: Logger
    ) throws -> Never {
        try WorkerProcess(configuration: configuration, application: application, logger: logger).run()
    }
}
