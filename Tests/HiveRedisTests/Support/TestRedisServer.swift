import Foundation
import XCTest

@testable import HiveRedis

#if canImport(Glibc)
import Glibc
#endif

/// A private `redis-server` on a free loopback port for HiveRedis' own tests (a small cut of IntegrationTests'
/// RedisServer, which this target cannot import): no persistence, readiness by PING answered with +PONG, polled
/// every 10 ms; only the pid started here is ever signalled, and its directory goes with it. `start()` again after `kill(SIGKILL)` uses the same port.
final class TestRedisServer {
    let port: Int
    let password: String?
    let directory: URL
    private var process: Process?

    var url: RedisURL { RedisURL(endpoint: .tcp(host: "127.0.0.1", port: port), password: password) }

    /// Skips the test with a clear message when there is no redis-server (`make deps` installs it).
    init(password: String? = nil) throws {
        guard let executable = Self.executable else {
            throw XCTSkip("redis-server is not installed: run `make deps`, or set REDIS_SERVER to its path")
        }
        _ = executable
        self.password = password
        port = freeLoopbackPort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-pub-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    static var executable: String? {
        if let path = ProcessInfo.processInfo.environment["REDIS_SERVER"], !path.isEmpty { return path }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        return (path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"])
            .map { "\($0)/redis-server" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    func start(timeout: Double = 10) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable!)
        process.arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", directory.appendingPathComponent("redis.log").path, "--dir", directory.path,
        ] + (password.map { ["--requirepass", $0] } ?? [])
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = Monotonic.seconds() + timeout
        var last = "no attempt yet"
        while Monotonic.seconds() < deadline {
            guard process.isRunning else { break }
            do {
                let connection = try RedisConnection(url: url, timeout: 0.5)
                try connection.authenticate()
                if try connection.command([Array("PING".utf8)]) == .status("PONG") { return }
            } catch {
                last = "\(error)"
            }
            usleep(10_000)
        }
        kill(SIGKILL)
        throw XCTSkip("redis-server on port \(port) did not answer PING within \(timeout) s (last: \(last)); log in \(directory.path)")
    }

    /// Sends `signal` to the redis-server started here; SIGKILL also waits for it to exit.
    func kill(_ signal: Int32) {
        guard let process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, signal)
        guard signal == SIGKILL else { return }
        let deadline = Monotonic.seconds() + 5
        while process.isRunning && Monotonic.seconds() < deadline { usleep(5_000) }
    }

    func stop() {
        guard let process, process.isRunning else { return }
        kill(SIGKILL)
    }

    /// A client of its own: `SUBSCRIBE channel`, returned once Redis confirmed it.
    func subscribe(_ channel: String) throws -> TestSubscriber {
        try TestSubscriber(url: url, channel: channel)
    }
}

/// A plain SUBSCRIBE client: HiveRedis' own connection and RESP reader, no Hive subscriber logic.
final class TestSubscriber {
    private let socket: SubscriptionSocket
    private var buffered: [RESPStream.Value] = []

    init(url: RedisURL, channel: String) throws {
        let connection = try RedisConnection(url: url, timeout: 5)
        try connection.authenticate()
        socket = SubscriptionSocket(connection: connection, maxBulk: 1 << 20)
        try socket.send([Array("SUBSCRIBE".utf8), Array(channel.utf8)])
        let deadline = Monotonic.seconds() + 5
        while buffered.isEmpty { buffered = try socket.read(deadline: deadline, waitingFor: "SUBSCRIBE") }
        guard case .array(let parts) = buffered.removeFirst(), parts.first?.text == "subscribe" else {
            throw RedisError(address: url.description, message: "no SUBSCRIBE confirmation")
        }
    }

    /// The next `count` message payloads, in arrival order; throws after `timeout` seconds without them.
    func messages(_ count: Int, timeout: Double = 10) throws -> [[UInt8]] {
        let deadline = Monotonic.seconds() + timeout
        var payloads: [[UInt8]] = []
        while payloads.count < count {
            if buffered.isEmpty { buffered = try socket.read(deadline: deadline, waitingFor: "message \(payloads.count + 1) of \(count)") }
            while !buffered.isEmpty && payloads.count < count {
                if case .message(let message) = RedisSubscriber.event(from: buffered.removeFirst()) { payloads.append(message.payload) }
            }
        }
        return payloads
    }
}

/// A TCP port on 127.0.0.1 that accepts connections (into the kernel's backlog) and never reads or answers: an
/// unresponsive Redis.
final class SilentListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, bound == 0, listen(fd, 64) == 0 else { throw RedisError(address: "127.0.0.1", message: "cannot listen") }
        self.fd = fd
        port = boundPort(fd)
    }

    deinit { close(fd) }
}

/// A port nothing listens on right now (bound to 127.0.0.1:0, then closed).
func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    defer { close(fd) }
    var address = loopback(port: 0)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return boundPort(fd)
}

private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}

private func boundPort(_ fd: Int32) -> Int {
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
