import CHiveShims
import HiveIPC

#if canImport(Glibc)
import Glibc
#endif

/// The master's control socket: `<run-dir>/hive.sock`, a Unix stream socket with mode 0600 whose peers must run as
/// the same user (or root). The CLI asks, the master answers at once from its own state, one request per
/// connection; it never waits on a client (non-blocking, bounded requests, a deadline per client).
///
/// Requests, one line each:
///   `hello`                      -> facts about this master, with the registry memfd attached (SCM_RIGHTS): the CLI
///                                   reads every counter itself, so `status` costs the master nothing per connection
///   `push <id> <length>\n<bytes>` -> the text message is routed to the connection's owning worker
///   `disconnect <id> <code>`      -> the owning worker closes the connection
///   `reopen-logs`                 -> a `--daemon` master reopens its log file, and has its workers do the same
/// Replies: `ok ...` or `error <sentence>`, then the master closes the connection.
final class ControlServer {
    static let maxRequest = 64 * 1024 + 256
    static let clientDeadline: UInt64 = 2_000_000_000

    let path: String
    let fd: Int32
    private(set) var clients: [Int32: (buffer: [UInt8], deadline: UInt64)] = [:]

    init(path: String) throws {
        unlink(path)  // the pid file check proved no live master owns it
        let fd = socket(AF_UNIX, CHiveShims_SOCK_STREAM | CHiveShims_SOCK_CLOEXEC | CHiveShims_SOCK_NONBLOCK, 0)
        guard fd >= 0 else { throw SystemError("socket", while: "creating the control socket \(path)") }
        // Created 0600 from the start (umask), not chmod-ed after: no moment where others could connect.
        let previous = umask(0o177)
        defer { umask(previous) }
        let rc: Int32
        do {
            rc = try UnixSocketAddress.with(path: path, for: "bind", while: "creating the control socket") { bind(fd, $0, $1) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        guard rc == 0, listen(fd, 64) == 0 else {
            let error = SystemError("bind", while: "creating the control socket \(path)")
            Glibc.close(fd)
            throw error
        }
        self.path = path
        self.fd = fd
    }

    func close() {
        for client in clients.keys { Glibc.close(client) }
        clients = [:]
        Glibc.close(fd)
        unlink(path)
    }

    /// Accepts pending clients; those that are not the same user (or root) are dropped at once.
    func acceptClients(now: UInt64) {
        while true {
            let client = CHiveShims_accept4(fd, nil, nil)
            guard client >= 0 else { return }
            let uid = CHiveShims_peerUID(client)
            guard uid == Int64(geteuid()) || uid == 0 else {
                Glibc.close(client)
                continue
            }
            clients[client] = ([], now + Self.clientDeadline)
        }
    }

    /// Reads what a client sent; returns its complete request (and forgets the client's buffer) when there is one.
    func read(client: Int32) -> ControlRequest? {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = recv(client, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            if n > 0 {
                clients[client]?.buffer += chunk[0..<n]
                if (clients[client]?.buffer.count ?? 0) > Self.maxRequest {
                    reply(client, "error request too large (over \(Self.maxRequest) bytes)")
                    return nil
                }
                continue
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            drop(client)  // closed or failed before a whole request
            return nil
        }
        return clients[client].flatMap { ControlRequest.parse($0.buffer) }
    }

    /// Answers and closes the client. The reply is small and the client waits for it: one non-blocking send.
    func reply(_ client: Int32, _ text: String, attach descriptor: Int32 = -1) {
        let line = text.hasSuffix("\n") ? text : text + "\n"
        _ = Array(line.utf8).withUnsafeBytes {
            CHiveShims_sendRecord(client, $0.baseAddress, $0.count, descriptor, Int32(MSG_DONTWAIT))
        }
        drop(client)
    }

    func drop(_ client: Int32) {
        clients[client] = nil
        Glibc.close(client)
    }

    /// Drops clients that did not finish their request in time, so a stuck client costs nothing.
    func expire(now: UInt64) {
        for (client, state) in clients where state.deadline <= now { drop(client) }
    }
}
