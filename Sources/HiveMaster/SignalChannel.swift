import HiveIPC

#if canImport(Glibc)
import CHiveShims
import Glibc
#endif

/// The master's signals as a readable descriptor: handled in the poll loop, no handler runs asynchronously, and
/// the process stays single-threaded (no Dispatch signal source).
struct SignalChannel {
    static let handled: [Int32] = [SIGTERM, SIGINT, SIGCHLD, SIGUSR1, SIGUSR2, SIGHUP]

    let fd: Int32

    init() throws {
        signal(SIGPIPE, SIG_IGN)
        var mask = sigset_t()
        sigemptyset(&mask)
        for sig in Self.handled { sigaddset(&mask, sig) }
        try syscall("sigprocmask", while: "blocking signals for the master's signalfd") {
            sigprocmask(SIG_BLOCK, &mask, nil)
        }
        fd = try syscall("signalfd", while: "creating the master's signal descriptor") {
            CHiveShims_signalfd(&mask)
        }
    }

    /// The next pending signal, or nil.
    func next() -> Int32? {
        let sig = CHiveShims_readSignal(fd)
        return sig > 0 ? sig : nil
    }
}
