import CHiveShims
import HiveIPC

#if canImport(Glibc)
import Glibc
#endif

/// `--metrics-listen`: a minimal HTTP/1.1 server for Prometheus, inside the master's poll loop. It reads the
/// shared registry, not the workers, so a scrape works while a worker hangs; and it never blocks the loop:
/// non-blocking sockets, a request head of at most `maxRequest` bytes, a deadline per client, at most `maxClients`
/// at once (more wait in the kernel's backlog), and a response sent as far as the socket takes it, the rest on
/// POLLOUT. One request per connection (`Connection: close`), which is how Prometheus scrapes anyway.
final class MetricsServer {
    static let maxRequest = 8 * 1024
    static let maxClients = 8
    static let clientDeadline: UInt64 = 2_000_000_000

    struct Client {
        var request: [UInt8] = []
        /// The response once the request is complete; `sent` bytes of it are on their way.
        var response: [UInt8]?
        var sent = 0
        var deadline: UInt64
    }

    let address: ListenAddress
    let fd: Int32
    private(set) var clients: [Int32: Client] = [:]

    init(address: ListenAddress) throws {
        do {
            fd = try Listener(host: address.host, port: address.port, backlog: 64).fd
        } catch MasterError.portInUse {
            throw MasterError.metricsCannotListen(
                address: address.description,
                reason: "the address is already in use; stop the process that holds it (`ss -ltnp`) or give another "
                    + "address with --metrics-listen"
            )
        } catch MasterError.cannotListen(_, let underlying) {
            throw MasterError.metricsCannotListen(
                address: address.description,
                reason: "\(underlying); give an address of this machine with --metrics-listen, or leave the option out"
            )
        }
        self.address = address
    }

    var accepting: Bool { clients.count < Self.maxClients }

    func close() {
        for client in clients.keys { Glibc.close(client) }
        clients = [:]
        Glibc.close(fd)
    }

    func acceptClients(now: UInt64) {
        while accepting {
            let client = CHiveShims_accept4(fd, nil, nil)
            guard client >= 0 else { return }
            adopt(client, now: now)
        }
    }

    /// Serves a connected socket from now on (accepted here, or a socketpair end in tests).
    func adopt(_ client: Int32, now: UInt64) {
        clients[client] = Client(deadline: now + Self.clientDeadline)
    }

    /// POLLIN while the request is coming, POLLOUT while the response is going.
    func events(of client: Int32) -> Int16 {
        clients[client]?.response == nil ? Int16(POLLIN) : Int16(POLLOUT)
    }

    /// Reads or writes what the client is ready for. `render` makes the metrics page, called only for a valid
    /// `GET /metrics`.
    func serve(_ client: Int32, render: () -> String) {
        guard let state = clients[client] else { return }
        if state.response == nil {
            guard let head = readHead(client) else { return }
            clients[client]?.response = Self.respond(to: head, render: render)
        }
        flush(client)
    }

    /// Drops clients past their deadline: a scraper that stops reading costs at most 2 s and one slot.
    func expire(now: UInt64) {
        for (client, state) in clients where state.deadline <= now { drop(client) }
    }

    // MARK: - Private

    /// The request head once it is complete (up to the blank line), nil while more is to come or the client is gone.
    private func readHead(_ client: Int32) -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(client, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            if n > 0 {
                clients[client]?.request += chunk[0..<n]
                if let end = Self.headEnd(clients[client]?.request ?? []) { return Array(clients[client]!.request[..<end]) }
                if (clients[client]?.request.count ?? 0) > Self.maxRequest {
                    return clients[client]!.request  // answered 431 by `respond`, which sees no end of head
                }
                continue
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return nil }
            drop(client)  // closed or failed before a whole request
            return nil
        }
    }

    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 0x0D && bytes[index + 1] == 0x0A && bytes[index + 2] == 0x0D && bytes[index + 3] == 0x0A {
            return index
        }
        return nil
    }

    /// The whole response for a request head: 200 with the page for `GET /metrics` (or `HEAD`), else a status and
    /// one sentence.
    static func respond(to head: [UInt8], render: () -> String) -> [UInt8] {
        guard head.count <= maxRequest else {
            return response(431, "Request Header Fields Too Large", "the request head is over \(maxRequest) bytes")
        }
        let requestLine = head.split(separator: 0x0D, maxSplits: 1).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let words = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard words.count == 3, words[2].hasPrefix("HTTP/1."), words[1].hasPrefix("/") else {
            return response(400, "Bad Request", "expected an HTTP/1.x request line such as `GET /metrics HTTP/1.1`")
        }
        let path = words[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard path == "/metrics" else {
            return response(404, "Not Found", "only /metrics is served here")
        }
        guard words[0] == "GET" || words[0] == "HEAD" else {
            return response(405, "Method Not Allowed", "/metrics answers GET only", extra: "Allow: GET, HEAD\r\n")
        }
        let body = Array(render().utf8)
        let headers = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            + "Content-Length: \(body.count)\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        return Array(headers.utf8) + (words[0] == "HEAD" ? [] : body)
    }

    private static func response(_ status: Int, _ reason: String, _ sentence: String, extra: String = "") -> [UInt8] {
        let body = "\(sentence)\n"
        return Array(("HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\(extra)Connection: close\r\n\r\n\(body)").utf8)
    }

    /// Sends what the socket takes now; the rest waits for POLLOUT. Done or failed: closed.
    private func flush(_ client: Int32) {
        guard let state = clients[client], let response = state.response else { return }
        var sent = state.sent
        while sent < response.count {
            let n = response.withUnsafeBytes {
                send(client, $0.baseAddress! + sent, response.count - sent, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            if n > 0 {
                sent += n
                continue
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                clients[client]?.sent = sent
                return
            }
            break  // the scraper went away
        }
        drop(client)
    }

    private func drop(_ client: Int32) {
        clients[client] = nil
        Glibc.close(client)
    }
}
