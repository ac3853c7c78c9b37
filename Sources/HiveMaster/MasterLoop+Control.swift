import HiveIPC
import Logging

#if canImport(Glibc)
import Glibc
#endif

// Requests on the control socket. Each is answered at once from the master's own state; the registry travels to
// the CLI as a descriptor, so `status` and `connections` are computed by the CLI, not here.
extension MasterLoop {
    func handleControl(client: Int32) {
        guard let control, let request = control.read(client: client) else { return }
        switch request {
        case .hello:
            control.reply(client, helloText(), attach: registry.fd)
        case .push(let id, let text):
            control.reply(client, route(.push(id, opcode: 0x1, payload: Array(text.utf8)), to: id))
        case .disconnect(let id, let code):
            control.reply(client, route(.disconnect(id, code: code, reason: "disconnected by an operator"), to: id))
        case .refused(let reason):
            control.reply(client, "error \(reason)")
        }
    }

    /// Sends a push or disconnect to the connection's owning worker, after the same checks as the library API, so
    /// the shell sees the same typed error text.
    private func route(_ record: IPCMessage, to id: ConnectionID) -> String {
        guard let state = registry.protocolState(of: id) else { return "error \(HiveError.unknownConnection(id))" }
        if case .push = record, state != .websocket { return "error \(HiveError.notWebSocket(id, state))" }
        let sent = (try? workers[id.worker].inbox.send.send(record, blocking: false)) ?? .wouldBlock
        guard sent == .sent else { return "error \(HiveError.workerBusy(id, worker: id.worker))" }
        return "ok connection \(id) on worker \(id.worker)"
    }

    private func helloText() -> String {
        [
            "version \(HiveVersion.current)",
            "pid \(pid)",
            "listen \(configuration.listenDescription)",
            "dispatch \(configuration.dispatch.rawValue)",
            "run-dir \(configuration.runDirectory)",
            "workers \(configuration.workers)",
            "max-connections \(configuration.maxConnections)",
            "started \(registry.header(.startedAt).load(ordering: .relaxed))",
            "reloading \(reload != nil)",
        ].joined(separator: "\n") + configuration.redis.sorted { $0.key < $1.key }.map { "\n\($0.key) \($0.value)" }.joined()
    }
}
