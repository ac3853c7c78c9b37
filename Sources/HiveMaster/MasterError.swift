/// Why the master could not start or had to stop. Each case reads as a sentence that says what to do.
package enum MasterError: Error, CustomStringConvertible {
    case portInUse(address: String)
    case cannotListen(address: String, underlying: Error)
    case alreadyRunning(runDirectory: String, pid: Int32)
    case runDirectory(path: String, underlying: Error)
    case multiThreaded(threads: Int)
    case workerSpawn(worker: Int, underlying: Error)
    case metricsCannotListen(address: String, reason: String)

    package var description: String {
        switch self {
        case .portInUse(let address):
            "cannot listen on \(address): the address is already in use; stop the process that holds it "
                + "(`ss -ltnp`) or choose another port with --port"
        case .cannotListen(let address, let underlying):
            "cannot listen on \(address): \(underlying)"
        case .alreadyRunning(let runDirectory, let pid):
            "run dir \(runDirectory) already belongs to a running Hive master (pid \(pid)); stop it with "
                + "`hive stop --run-dir \(runDirectory)` or choose another --run-dir"
        case .runDirectory(let path, let underlying):
            "cannot use run dir \(path): \(underlying)"
        case .multiThreaded(let threads):
            "the master has \(threads) threads before starting workers; it must have exactly 1 so that starting "
                + "workers is safe (something started a thread: Dispatch, Task or NIO in the master is a bug)"
        case .workerSpawn(let worker, let underlying):
            "cannot start worker \(worker): \(underlying)"
        case .metricsCannotListen(let address, let reason):
            "cannot serve metrics on \(address) (--metrics-listen): \(reason)"
        }
    }
}
