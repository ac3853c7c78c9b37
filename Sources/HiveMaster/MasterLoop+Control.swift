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
        case .reopenLogs:
            control.reply(client, reopenLogs(trigger: "hive reopen-logs"))
        case .push(let id, let text):
            control.reply(client, route(.push(id, opcode: 0x1, payload: Array(text.utf8)), to: id))
        case .pushUser(let user, let text):
            control.reply(client, routeToUser(user, text))
        case .disconnect(let id, let code):
            control.reply(client, route(.disconnect(id, code: code, reason: "disconnected by an operator"), to: id))
        case .refused(let reason):
            control.reply(client, "error \(reason)")
        }
    }

    /// Sends a push or disconnect to the connection's owning worker, after the same checks as the library API. The
    /// refusals are worded for an operator at a shell (the library's `HiveError` speaks to a programmer).
    private func route(_ record: IPCMessage, to id: ConnectionID) -> String {
        guard let state = registry.protocolState(of: id) else {
            return "error connection \(id) does not exist (never opened, or already closed); "
                + "`hive connections` lists the open ones"
        }
        if case .push = record, state != .websocket { return "error \(Self.pushRefusal(id, state))" }
        let sent = (try? workers[id.worker].inbox.send.send(record, blocking: false)) ?? .wouldBlock
        guard sent == .sent else {
            return "error connection \(id) belongs to worker \(id.worker), which is too busy to take it now "
                + "(its inbox is full); nothing was sent: try again in a moment"
        }
        return "ok connection \(id) on worker \(id.worker)"
    }

    /// `hive push --user`: one worker (0 when it serves) sends it as `send(toUser:)` does, so it takes the same
    /// way as the application's: through Redis to every host when Redis is configured.
    private func routeToUser(_ user: String, _ text: String) -> String {
        let serving = supervisor.workers.indices.filter { supervisor.workers[$0].isServing }
        guard let worker = serving.contains(0) ? 0 : serving.first else {
            return "error no worker is serving now (starting, restarting or stopping); nothing was sent: try again in a moment"
        }
        let record = IPCMessage.userPush(user: user, opcode: 0x1, payload: Array(text.utf8))
        let sent = (try? workers[worker].inbox.send.send(record, blocking: false)) ?? .wouldBlock
        guard sent == .sent else {
            return "error worker \(worker) is too busy to take the message for user \(user) now (its inbox is full); "
                + "nothing was sent: try again in a moment"
        }
        let route = configuration.redis["redis-address"] != nil
            ? "through Redis to every Hive host" : "to the user's connections on every worker"
        return "ok message for user \(user) handed to worker \(worker), which sends it \(route)"
    }

    static func pushRefusal(_ id: ConnectionID, _ state: ProtocolState) -> String {
        let only = "only WebSocket connections can receive pushes"
        switch state {
        case .http:
            return "connection \(id) is a plain HTTP connection (protocol http), not a WebSocket; \(only)"
        case .websocketHandshake:
            return "connection \(id) is still in its WebSocket handshake (protocol websocket-handshake); try again "
                + "once `hive connections` shows it as websocket"
        case .closing:
            return "connection \(id) is closing its WebSocket (protocol closing), so it takes no more pushes"
        case .closed, .websocket:
            return "connection \(id) has just closed, so it takes no more pushes"
        }
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
            "reloading \(supervisor.isReloading)",
        ].joined(separator: "\n") + configuration.redis.sorted { $0.key < $1.key }.map { "\n\($0.key) \($0.value)" }.joined()
    }
}
