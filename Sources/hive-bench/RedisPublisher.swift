#if canImport(Glibc)
import Glibc
#endif

/// A blocking RESP client for the coordinator: PUBLISH (pipelined or one at a time), PUBSUB NUMSUB and INFO.
/// Hand-written rather than hiredis: pipelining thousands of PUBLISH commands needs control of when bytes are written
/// (each payload is stamped just before its batch is written), and the replies are tiny.
final class RedisPublisher {
    enum Reply {
        case integer(Int)
        case string([UInt8]?)
        case status(String)
        case error(String)
        case array([Reply])
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private let fd: Int32
    private var input: [UInt8] = []
    private var inputStart = 0

    /// `redis://[:password@]127.0.0.x:port`: loopback only, the benchmark never talks to anything off this machine.
    init(url: String, timeoutSeconds: Int = 10) throws {
        guard url.hasPrefix("redis://") else { throw Failure(description: "--redis must be redis://host:port, got \(url)") }
        var rest = Substring(url.dropFirst("redis://".count))
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            password = String(rest[..<at].drop { $0 == ":" })
            rest = rest[rest.index(after: at)...]
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        let parts = rest.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]), parts[0].hasPrefix("127.") else {
            throw Failure(description: "--redis must be redis://127.x.x.x:port (loopback only), got \(url)")
        }
        do {
            fd = try LoopbackTCP.connect(host: String(parts[0]), port: port, timeoutSeconds: timeoutSeconds, peer: "Redis at \(rest)")
        } catch let failure as LoopbackTCP.Failure {
            throw Failure(description: failure.description)
        }
        if let password, !password.isEmpty {
            if case .error(let message) = try command(["AUTH", password]) { throw Failure(description: "AUTH: \(message)") }
        }
    }

    deinit { Glibc.close(fd) }

    static func encode(_ arguments: [[UInt8]], into bytes: inout [UInt8]) {
        bytes.append(contentsOf: Array("*\(arguments.count)\r\n".utf8))
        for argument in arguments {
            bytes.append(contentsOf: Array("$\(argument.count)\r\n".utf8))
            bytes.append(contentsOf: argument)
            bytes.append(13)
            bytes.append(10)
        }
    }

    func command(_ arguments: [String]) throws -> Reply {
        var bytes: [UInt8] = []
        Self.encode(arguments.map { Array($0.utf8) }, into: &bytes)
        try send(bytes)
        return try readReply()
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "write to Redis failed: errno \(errno)")
            }
            offset += n
        }
    }

    /// Number of subscribers of `channel` as Redis sees them (Hive's worker 0 is one).
    func subscribers(of channel: String) throws -> Int {
        guard case .array(let items) = try command(["PUBSUB", "NUMSUB", channel]), items.count == 2,
            case .integer(let n) = items[1]
        else { throw Failure(description: "unexpected PUBSUB NUMSUB reply") }
        return n
    }

    /// used_cpu_user + used_cpu_sys of the Redis server, in seconds.
    func serverCPU() -> Double? {
        guard case .string(let bytes?) = try? command(["INFO", "cpu"]) else { return nil }
        var total = 0.0
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\r\n") {
            let pair = line.split(separator: ":")
            if pair.count == 2, pair[0] == "used_cpu_user" || pair[0] == "used_cpu_sys", let v = Double(pair[1]) { total += v }
        }
        return total
    }

    // MARK: reading replies

    private func fill() throws {
        if inputStart > 0 && inputStart == input.count {
            input.removeAll(keepingCapacity: true)
            inputStart = 0
        }
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                input.append(contentsOf: chunk[0..<n])
                return
            }
            if n < 0 && errno == EINTR { continue }
            throw Failure(description: n == 0 ? "Redis closed the connection" : "read from Redis failed: errno \(errno)")
        }
    }

    private func readLine() throws -> [UInt8] {
        while true {
            var i = inputStart
            while i + 1 < input.count {
                if input[i] == 13 && input[i + 1] == 10 {
                    let line = Array(input[inputStart..<i])
                    inputStart = i + 2
                    return line
                }
                i += 1
            }
            try fill()
        }
    }

    func readReply() throws -> Reply {
        let line = try readLine()
        guard let kind = line.first else { throw Failure(description: "empty reply line") }
        let body = String(decoding: line.dropFirst(), as: UTF8.self)
        switch kind {
        case UInt8(ascii: ":"): return .integer(Int(body) ?? 0)
        case UInt8(ascii: "+"): return .status(body)
        case UInt8(ascii: "-"): return .error(body)
        case UInt8(ascii: "$"):
            let length = Int(body) ?? -1
            guard length >= 0 else { return .string(nil) }
            while input.count - inputStart < length + 2 { try fill() }
            let bytes = Array(input[inputStart..<(inputStart + length)])
            inputStart += length + 2
            return .string(bytes)
        case UInt8(ascii: "*"):
            let count = Int(body) ?? -1
            guard count >= 0 else { return .array([]) }
            return .array(try (0..<count).map { _ in try readReply() })
        default:
            throw Failure(description: "unexpected reply byte \(kind)")
        }
    }
}
