import HiveIPC

#if canImport(Glibc)
import Glibc
#endif

/// Starts a worker with posix_spawn of the Hive executable (a hidden `worker` subcommand), not a bare fork: each
/// worker gets a fresh Swift runtime (NIO singletons, threads and locks start clean), and a reload runs the binary
/// that is on disk now. The descriptors a worker needs are the only ones it inherits: everything in the master
/// is close-on-exec, and `adddup2(fd, fd)` clears that flag for exactly the passed ones.
struct WorkerSpawner {
    let executable: String
    let baseArguments: [String]
    /// Set in the worker's environment on top of the master's own (same-name variables replaced).
    let environment: [String: String]

    struct Descriptors {
        var registry: Int32
        var inbox: Int32
        var master: Int32
        var peers: [Int32]
    }

    /// In a replacement's environment (`replacing`): a retired process of its worker id may hand it connections.
    static let replacementVariable = "HIVE_WORKER_REPLACES_RETIRED"

    /// - Parameter replacing: A retired process of this worker id still runs (a reload's replacement, or the
    ///   restart of one that died): the new process keeps a hand-over log (`HandOverLog`).
    func spawn(worker id: Int, descriptors: Descriptors, replacing: Bool = false) throws -> pid_t {
        let arguments = [executable] + baseArguments + [
            "--worker-id", String(id),
            "--registry-fd", String(descriptors.registry),
            "--inbox-fd", String(descriptors.inbox),
            "--master-fd", String(descriptors.master),
            "--peer-fds", descriptors.peers.map(String.init).joined(separator: ","),
        ]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in Set([descriptors.registry, descriptors.inbox, descriptors.master] + descriptors.peers) {
            posix_spawn_file_actions_adddup2(&actions, fd, fd)
        }

        // The master blocks its signals for signalfd; a worker must start with the default handlers and only SIGHUP
        // blocked: a log reopen sent while it starts then waits for its sigwait loop instead of killing it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var startMask = sigset_t()
        sigemptyset(&startMask)
        sigaddset(&startMask, SIGHUP)
        sigaddset(&startMask, SIGUSR2)  // a reload's hand-over signal (WorkerProcess waits for it)
        posix_spawnattr_setsigmask(&attributes, &startMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in SignalChannel.handled + [SIGPIPE] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = workerEnvironment(replacing: replacing)
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw MasterError.workerSpawn(
                worker: id, underlying: SystemError("posix_spawn", while: "starting \(executable)", errno: rc)
            )
        }
        return pid
    }

    /// The master's environment with `environment` laid over it, as a NULL-terminated array of `strdup`ed strings.
    private func workerEnvironment(replacing: Bool) -> [UnsafeMutablePointer<CChar>?] {
        var environment = self.environment
        environment[Self.replacementVariable] = replacing ? "1" : nil
        var entries: [UnsafeMutablePointer<CChar>?] = []
        var index = 0
        while let entry = environ[index] {
            index += 1
            let text = String(cString: entry)
            let name = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? text
            if environment[name] == nil, name != Self.replacementVariable { entries.append(strdup(entry)) }
        }
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) { entries.append(strdup("\(name)=\(value)")) }
        return entries + [nil]
    }

    /// The running executable, as a path that stays valid for respawns after the file is replaced on disk.
    static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return CommandLine.arguments[0] }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // After a rebuild the old inode shows as "<path> (deleted)": the new file at <path> is what we want.
        return path.hasSuffix(" (deleted)") ? String(path.dropLast(" (deleted)".count)) : path
    }
}
