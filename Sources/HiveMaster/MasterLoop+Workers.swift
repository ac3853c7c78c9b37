import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

// Starting and reaping worker processes: the system calls behind the supervisor's `spawn` and `exited`.
extension MasterLoop {
    /// Starts a process for worker `id` and records its pid in the registry; the supervisor hears of it as `spawned`.
    func spawnProcess(_ id: Int) throws -> pid_t {
        let descriptors = WorkerSpawner.Descriptors(
            registry: registry.fd,
            inbox: workers[id].inbox.receive.fd,
            master: masterInbox.send.fd,
            peers: workers.map { $0.inbox.send.fd }
        )
        let workerPID = try spawner.spawn(
            worker: id, descriptors: descriptors, replacing: supervisor.hasRetiredProcess(ofWorker: id))
        registry.worker(id, .pid).store(UInt64(workerPID), ordering: .relaxed)
        registry.worker(id, .startedAt).store(Clock.wallNanoseconds(), ordering: .relaxed)
        registry.worker(id, .restarts).store(supervisor.workers[id].restarts, ordering: .relaxed)
        return workerPID
    }

    func reapChildren() {
        while true {
            var status: Int32 = 0
            let child = waitpid(-1, &status, WNOHANG)
            if child <= 0 { return }
            perform(supervisor.handle(.exited(pid: child, status: status, now: Clock.monotonicNanoseconds())))
        }
    }

    /// Drops what was queued for a dead worker: sockets in flight are closed (their slots were just reclaimed),
    /// pushes for its connections have nobody to reach.
    func drainInbox(of id: Int) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IPCMessage.maxRecordSize, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            guard let received = try? workers[id].inbox.receive.receive(blocking: false, buffer: buffer) else { return }
            if received.descriptor >= 0 { close(received.descriptor) }
        }
    }
}
