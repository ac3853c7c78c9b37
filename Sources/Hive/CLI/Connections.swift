import ArgumentParser
import Foundation
import HiveIPC

/// `hive connections`: one row per open connection, with its protocol: the favicon keep-alive connection shows as
/// `http`, the page's WebSocket as `websocket`.
struct Connections: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List open connections with their protocol and counters.")

    @OptionGroup var target: RunDirOptions

    @Flag(help: "Print a JSON array.")
    var json = false

    @Option(help: "Only connections in this protocol state: http, websocket-handshake, websocket, closing.")
    var `protocol`: String?

    @Option(help: "Only connections owned by this worker.")
    var worker: Int?

    @Option(help: "Only connections bound to this user id.")
    var user: String?

    func validate() throws {
        if let name = `protocol`, ProtocolState(name: name) == nil {
            throw ValidationError("--protocol must be one of http, websocket-handshake, websocket, closing; got \"\(name)\"")
        }
    }

    func run() throws {
        try runReporting {
            _ = try target.requireMaster()
            let registry = try MasterFacts(client: ControlClient(runDirectory: target.runDirectory)).registry
            let wanted = `protocol`.flatMap(ProtocolState.init(name:))
            let now = Clock.wallNanoseconds()
            let rows = registry.connections.filter {
                (wanted == nil || $0.protocolState == wanted) && (worker == nil || $0.worker == worker)
                    && (user == nil || $0.user == user)
            }
            if json {
                print(try jsonText(rows.map { connection -> [String: Any] in
                    [
                        "id": connection.id.rawValue, "worker": connection.worker,
                        "pid": registry.slot(connection.id.slot, .ownerPID).load(ordering: .relaxed),
                        "protocol": connection.protocolState.description, "remote": connection.remote.description,
                        "connectedSeconds": Double(now &- connection.connectedAt) / 1e9,
                        "idleSeconds": Double(now &- connection.lastActivity) / 1e9,
                        "bytesIn": connection.bytesIn, "bytesOut": connection.bytesOut,
                        "framesIn": connection.framesIn, "framesOut": connection.framesOut,
                        "queuedOut": connection.queuedOut, "requests": connection.requests,
                        "user": connection.user ?? NSNull(),
                    ]
                }))
                return
            }
            var table = [["id", "worker", "protocol", "remote", "connected", "idle", "bytes in", "bytes out",
                          "frames in", "frames out", "queued", "user"]]
            for connection in rows {
                table.append([
                    connection.id.description, String(connection.worker), connection.protocolState.description,
                    connection.remote.description, StatusReport.duration(Double(now &- connection.connectedAt) / 1e9),
                    StatusReport.duration(Double(now &- connection.lastActivity) / 1e9), String(connection.bytesIn),
                    String(connection.bytesOut), String(connection.framesIn), String(connection.framesOut),
                    String(connection.queuedOut), connection.user ?? "-",
                ])
            }
            print(StatusReport.table(table).joined(separator: "\n"))
            print("\(rows.count) connections")
        }
    }
}
