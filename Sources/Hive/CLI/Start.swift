import ArgumentParser
import HiveIPC
import HiveMaster

#if canImport(Glibc)
import Glibc
#endif

/// `hive start`: runs the master in the foreground. Synchronous on purpose: no thread may exist before the
/// master starts its workers.
struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start the master and its workers (foreground).")

    @Option(help: "Address to listen on (an IPv4 or IPv6 address).")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on; 0: a free port the kernel picks, named in the `ready` line and the run dir.")
    var port: Int = 9501

    @Option(help: "Number of worker processes (default: number of CPU cores).")
    var workers: Int = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    @Option(help: "How the master picks a worker: least-connections, round-robin or ip-hash.")
    var dispatch: String = DispatchMode.leastConnections.rawValue

    @Option(help: ArgumentHelp("Folder for the pid file and control socket, private to its user (default: hive-<port> "
        + "in /run/hive for root, else in $XDG_RUNTIME_DIR or $TMPDIR or /tmp)."))
    var runDir: String?

    @Option(help: "Registry capacity: connections open at once; more are answered 503.")
    var maxConnections: Int = 65_536

    @Option(help: "Channels with subscribers at once (the registry's channel table); a new channel beyond is refused.")
    var maxChannels: Int = SharedRegistry.defaultChannelCapacity

    @Option(help: "Seconds workers get to close their connections on stop before they are killed.")
    var grace: Double = 5

    @Option(help: ArgumentHelp("Seconds a worker's event loop may leave the master's health check unanswered: then it "
        + "gets no new connections (status `unresponsive`); twice that and it is killed and restarted."))
    var workerTimeout: Double = 5

    @Flag(help: "Detach: run in the background, log to --log-file; stop/reload/status find it through --run-dir.")
    var daemon = false

    @Option(help: "Log file of a --daemon master and its workers (default: hive.log in the run dir); reopened on SIGHUP or `hive reopen-logs`.")
    var logFile: String?

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9502; IPv6 in "
        + "brackets). Off by default; never on the client port."))
    var metricsListen: String?

    @Option(help: ArgumentHelp("YAML or JSON file of options (keys: these options without the dashes; default: "
        + "$HIVE_CONFIG). Each option is also read from $HIVE_<OPTION>; flags beat the environment, which beats the file.",
        valueName: "path"))
    var config: String?

    @OptionGroup var limits: LimitOptions

    @OptionGroup var redis: RedisOptions

    @OptionGroup var publishAPI: PublishAPIOptions
    @OptionGroup var history: HistoryOptions
    @OptionGroup var tokens: TokenOptions

    func validate() throws {
        guard (0...65_535).contains(port) else {
            throw ValidationError("--port must be between 0 (any free port) and 65535, got \(port)")
        }
        guard (1...ConnectionID.maxWorkers).contains(workers) else {
            throw ValidationError("--workers must be between 1 and \(ConnectionID.maxWorkers), got \(workers)")
        }
        guard DispatchMode(rawValue: dispatch) != nil else {
            let modes = DispatchMode.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("--dispatch must be one of \(modes); got \"\(dispatch)\"")
        }
        guard (1...ConnectionID.maxSlots).contains(maxConnections) else {
            throw ValidationError("--max-connections must be between 1 and \(ConnectionID.maxSlots), got \(maxConnections)")
        }
        guard (1...SharedRegistry.maxChannelCapacity).contains(maxChannels) else {
            throw ValidationError("--max-channels must be between 1 and \(SharedRegistry.maxChannelCapacity), got \(maxChannels)")
        }
        guard grace >= 0 else { throw ValidationError("--grace must be 0 or more seconds, got \(grace)") }
        // Checks go out every fifth of it, but at most every 100 ms: below 0.5 s a healthy worker could not answer
        // in time.
        guard workerTimeout >= 0.5, workerTimeout <= 86_400 else {
            throw ValidationError("--worker-timeout must be between 0.5 and 86400 seconds, got \(workerTimeout)")
        }
        if let metricsListen {
            let address = try ListenAddress.parse(metricsListen, option: "--metrics-listen").mapError {
                ValidationError($0.message)
            }.get()
            if address.port == port {
                throw ValidationError("--metrics-listen \(address) uses --port \(port), the client port; give the "
                    + "metrics another port (e.g. \(port == 9502 ? 9503 : 9502))")
            }
        }
    }

    func run() throws {
        // `--port 0`: bound first, so the run dir, the log and the `ready` line name the port the kernel chose.
        var (port, listener) = (self.port, Int32(-1))
        if port == 0 {
            do {
                (listener, port) = try MasterConfiguration.bindAnyPort(host: host)
            } catch {
                writeLine("hive: error: \(error)", to: 2)
                Glibc.exit(1)
            }
        }
        let runDirectory = runDir ?? RunDirectory.defaultPath(port: port)
        var readyNotification: Int32 = -1
        // Absolute, so a reopen after rotation finds the same file whatever the working directory.
        let logPath = daemon ? Daemon.absolutePath(logFile ?? runDirectory + "/hive.log") : nil
        if let logPath {
            do {
                // Checked before the log is opened in it: the master's own check comes after the detach.
                try RunDirectory(path: runDirectory).prepare()
                readyNotification = try Daemon.detach(logFile: logPath, keeping: listener)
            } catch {
                writeLine("hive: error: \(error)", to: 2)
                Glibc.exit(1)
            }
        }
        let logger = makeLogger(level: limits.logLevel, label: "hive")
        var configuration = MasterConfiguration(
            host: host,
            port: port,
            workers: workers,
            dispatch: DispatchMode(rawValue: dispatch)!,
            runDirectory: runDirectory,
            maxConnections: maxConnections,
            grace: grace,
            executable: MasterConfiguration.currentExecutable(),
            workerArguments: ["worker", "--grace", String(grace)] + (logPath.map { ["--log-file", $0] } ?? [])
                + limits.arguments
                + redis.workerArguments(maxMessageSize: limits.maxMessageSize) + history.workerArguments()
        )
        configuration.readyNotification = readyNotification
        configuration.listenerDescriptor = listener
        configuration.logFile = logPath
        configuration.workerTimeout = workerTimeout
        configuration.maxChannels = maxChannels
        configuration.metricsListen = metricsListen.flatMap { try? ListenAddress.parse($0, option: "").get() }
        let application = ApplicationSlot.current
        let subscription = redis.configuration(
            maxMessageSize: limits.maxMessageSize,
            declared: (application?.redisChannels ?? [], application?.redisPatterns ?? [])
        )
        configuration.workerEnvironment = RedisAddressOptions.workerEnvironment(subscription?.url)
            .merging(PublishAPIOptions.workerEnvironment(try? publishAPI.resolve())) { $1 }
            .merging(TokenOptions.workerEnvironment(try? tokens.resolve())) { $1 }
        publishAPI.warnings.forEach { logger.warning("\($0.message)", metadata: ["hint": "\($0.hint)"]) }
        if tokens.secretInArguments {
            logger.warning("the JWT secret is on the command line, where every local user can read it", metadata: [
                "hint": "give it in HIVE_JWT_SECRET in the environment (or jwt-secret in a --config file)",
            ])
        }
        if (try? redis.address.resolve())?.passwordInArguments == true {
            logger.warning("the Redis password is on the command line, where every local user can read it", metadata: [
                "hint": "give it with --redis-password-file, or in HIVE_REDIS_URL / HIVE_REDIS_PASSWORD in the environment",
            ])
        }
        if redis.address.passwordFileIsShared {
            logger.warning("the Redis password file is readable by other users", metadata: [
                "path": "\(redis.address.redisPasswordFile ?? "")", "hint": "chmod 600 it (it is read once, at start)",
            ])
        }
        if let subscription {
            configuration.redis = [
                "redis-address": subscription.url.description,
                "redis-channels": subscription.channels.joined(separator: ","),
                "redis-patterns": subscription.patterns.joined(separator: ","),
            ]
            // For `hive channels`: where each channel's history is (Docs/REDIS.md, "Channel history").
            if history.historyRules != nil {
                configuration.redis["history"] = "on"
                configuration.redis["history-prefix"] = "=" + redis.channelPrefix
            }
        }
        DescriptorLimit.raiseForWorkers(maxConnections: maxConnections, workers: workers, logger: logger)
        do {
            let status = try MasterLoop(configuration: configuration, logger: logger).run()
            Glibc.exit(status)
        } catch {
            writeLine("hive: error: \(error)", to: 2)
            if readyNotification >= 0 { writeLine("hive: error: \(error)", to: readyNotification) }
            Glibc.exit(1)
        }
    }
}
