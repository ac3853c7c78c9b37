import HiveIPC

/// What the master needs to run. Built by the CLI from `hive start` options.
package struct MasterConfiguration: Sendable {
    package var host: String
    package var port: Int
    package var workers: Int
    package var dispatch: DispatchMode
    package var runDirectory: String
    package var maxConnections: Int
    /// Seconds to wait for workers to finish on stop before SIGKILL.
    package var grace: Double
    /// The executable started as each worker (normally /proc/self/exe resolved at startup).
    package var executable: String
    /// Arguments after the executable that make it a worker: the hidden `worker` subcommand and the forwarded
    /// options. The master appends the descriptor numbers and the worker id.
    package var workerArguments: [String]
    /// Variables set (or replaced) in each worker's environment: secrets (the Redis password) go here, never in
    /// `workerArguments`, which every local user can read in /proc/PID/cmdline.
    package var workerEnvironment: [String: String] = [:]
    /// A descriptor that receives the `ready` line (or the start error) and is then closed: how `start --daemon`
    /// learns that the detached master serves. -1 when running in the foreground.
    package var readyNotification: Int32 = -1
    /// The absolute path of a `--daemon` master's log file (its fds 1 and 2), reopened on SIGHUP; nil in the foreground.
    package var logFile: String?
    /// Seconds a worker's event loop may leave the master's health check unanswered before it is shown
    /// `unresponsive` and gets no new connections; twice that and it is killed and restarted.
    package var workerTimeout: Double = 5
    /// What `hive status` shows about the Redis subscription (address, channels, patterns); empty when off.
    package var redis: [String: String] = [:]
    /// Where the master serves `/metrics` for Prometheus (`--metrics-listen`); nil: not served.
    package var metricsListen: ListenAddress?
    /// A client socket already listening on `host:port` (`--port 0`: see `bindAnyPort`), which the master serves
    /// on instead of binding; -1: the master binds `host:port` itself, after claiming the run dir.
    package var listenerDescriptor: Int32 = -1
    /// Slots of the registry's channel table (`--max-channels`).
    package var maxChannels = SharedRegistry.defaultChannelCapacity

    package init(
        host: String, port: Int, workers: Int, dispatch: DispatchMode, runDirectory: String, maxConnections: Int,
        grace: Double, executable: String, workerArguments: [String]
    ) {
        self.host = host
        self.port = port
        self.workers = workers
        self.dispatch = dispatch
        self.runDirectory = runDirectory
        self.maxConnections = maxConnections
        self.grace = grace
        self.executable = executable
        self.workerArguments = workerArguments
    }

    package var listenDescription: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

extension MasterConfiguration {
    /// The running executable, which the master starts again as each worker.
    package static func currentExecutable() -> String { WorkerSpawner.currentExecutable() }
}
