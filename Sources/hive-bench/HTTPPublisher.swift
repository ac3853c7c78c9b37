#if canImport(Glibc)
import Glibc
#endif

/// Publishes through Hive itself, `POST /api/publish?channel=NAME` on one keep-alive connection, so every message
/// goes through the worker's history script and gets a position, as an application's back end would publish.
/// Blocking and one request at a time: the recovery scenario paces 100 messages a second, and a request must be
/// answered before the next one is written (that is what makes a retry after a dead connection safe, see `publish`).
final class HTTPPublisher {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private let host: String
    private let port: Int
    private let apiKey: String
    private var fd: Int32 = -1
    private var input: [UInt8] = []

    init(host: String, port: Int, apiKey: String) {
        self.host = host
        self.port = port
        self.apiKey = apiKey
    }

    deinit { disconnect() }

    private func disconnect() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        input.removeAll()
    }

    private func connect() throws {
        do {
            fd = try LoopbackTCP.connect(host: host, port: UInt16(port), timeoutSeconds: 5, peer: "hive at \(host):\(port)")
        } catch let failure as LoopbackTCP.Failure {
            throw Failure(description: failure.description)
        }
    }

    /// One request and its answer. Throws `Failure` when the connection failed before an answer came (the caller
    /// may retry on a new one), returns the status and body otherwise.
    func post(channel: String, body: [UInt8]) throws -> (status: Int, body: String) {
        if fd < 0 { try connect() }
        var request = Array(("POST /api/publish?channel=\(channel) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
            + "Authorization: apikey \(apiKey)\r\nContent-Length: \(body.count)\r\n\r\n").utf8)
        request.append(contentsOf: body)
        do {
            try write(request)
            return try readResponse()
        } catch {
            disconnect()
            throw error
        }
    }

    private func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "write to hive failed: errno \(errno)")
            }
            offset += n
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                input.append(contentsOf: chunk[0..<n])
                return
            }
            if n < 0 && errno == EINTR { continue }
            throw Failure(description: n == 0 ? "hive closed the connection before answering" : "read from hive failed: errno \(errno)")
        }
    }

    private func readResponse() throws -> (status: Int, body: String) {
        var headEnd: Int?
        while headEnd == nil {
            if input.count >= 4 {
                for i in 3..<input.count where input[i] == 10 && input[i - 1] == 13 && input[i - 2] == 10 && input[i - 3] == 13 {
                    headEnd = i + 1
                    break
                }
            }
            if headEnd == nil {
                guard input.count < 16_384 else { throw Failure(description: "response head over 16 KiB") }
                try fill()
            }
        }
        let head = String(decoding: input[0..<headEnd!], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        let status = lines.first.flatMap { line in line.split(separator: " ").dropFirst().first.flatMap { Int($0) } } ?? 0
        var length = 0
        for line in lines.dropFirst() {
            let pair = line.split(separator: ":", maxSplits: 1)
            if pair.count == 2, pair[0].lowercased() == "content-length" {
                length = Int(pair[1].filter { $0 != " " }) ?? 0
            }
        }
        while input.count < headEnd! + length { try fill() }
        let body = String(decoding: input[headEnd!..<(headEnd! + length)], as: UTF8.self)
        input.removeFirst(headEnd! + length)
        if head.lowercased().contains("connection: close") { disconnect() }
        return (status, body)
    }
}
