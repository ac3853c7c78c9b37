import CHiveShims
import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

// The accept path: about 3 µs of master CPU per connection; keep-alive and WebSocket traffic never comes here.
extension MasterLoop {
    /// Accepts what is pending, up to a budget so signals and the inbox are not starved by a connection flood.
    func acceptConnections() {
        guard let listener else { return }
        for _ in 0..<256 {
            switch listener.accept() {
            case .connection(let fd, let remote):
                registry.header(.accepted).wrappingIncrement(ordering: .relaxed)
                handOff(fd, remote: remote)
            case .empty:
                return
            case .exhausted(let error):
                registry.header(.acceptErrors).wrappingIncrement(ordering: .relaxed)
                acceptPausedUntil = Clock.monotonicNanoseconds() + 100_000_000
                logger.warning(
                    "out of file descriptors; pausing accept for 100 ms",
                    metadata: ["error": "\(error)", "hint": "raise `ulimit -n` or lower --max-connections"]
                )
                return
            case .failed(let error):
                registry.header(.acceptErrors).wrappingIncrement(ordering: .relaxed)
                logger.warning("accept failed", metadata: ["error": "\(error)"])
                return
            }
        }
    }

    /// Picks a worker, reserves a registry slot and sends the socket. A full inbox means the next worker; when
    /// none can take it, or the registry is full, the client gets a 503 and the connection is counted.
    private func handOff(_ fd: Int32, remote: RemoteAddress) {
        let now = Clock.monotonicNanoseconds()
        var available = workers.indices.map { supervisor.workers[$0].isServing && workers[$0].busyUntil <= now }
        let load = workers.indices.map { registry.openConnections(ofWorker: $0) }
        while let id = dispatcher.choose(load: load, available: available, clientHash: remote.hostHash) {
            guard let connection = registry.reserve(worker: id, remote: remote) else {
                registry.header(.refusedFull).wrappingIncrement(ordering: .relaxed)
                logger.debug("registry full; refusing", metadata: ["remote": "\(remote)"])
                HTTPRefusal.send(
                    to: fd,
                    reason: "Hive is at its connection limit (--max-connections \(configuration.maxConnections)); "
                        + "retry shortly."
                )
                return
            }
            registry.increment(worker: id, .assigned)
            let result: RecordChannel.SendResult
            do {
                result = try workers[id].inbox.send.send(.connection(connection), attach: fd, blocking: false)
            } catch {
                logger.warning("cannot hand a connection to a worker", metadata: ["worker.id": "\(id)", "error": "\(error)"])
                result = .wouldBlock
            }
            if result == .sent {
                close(fd)  // the worker holds it now
                return
            }
            registry.release(connection)
            registry.worker(id, .assigned).wrappingDecrement(ordering: .relaxed)
            workers[id].busyUntil = now + 1_000_000_000
            available[id] = false
        }
        registry.header(.refusedBusy).wrappingIncrement(ordering: .relaxed)
        logger.warning("no worker can take a connection; refusing", metadata: ["remote": "\(remote)"])
        HTTPRefusal.send(to: fd, reason: "Hive's workers are all busy, unresponsive or restarting; retry shortly.")
    }
}

/// The 503 the master answers itself when it cannot place a connection.
enum HTTPRefusal {
    static func send(to fd: Int32, reason: String) {
        // Read what the client already sent, so closing does not turn into a reset that could discard the 503.
        var scratch = [UInt8](repeating: 0, count: 4096)
        while recv(fd, &scratch, scratch.count, Int32(MSG_DONTWAIT)) > 0 {}
        let body = reason + "\n"
        let response =
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        _ = response.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        close(fd)
    }
}
