import Foundation
import XCTest

/// Starts real `hive` masters for a test and always stops them, printing their log when the test failed.
class HiveTestCase: XCTestCase {
    private var started: [HiveProcess] = []
    private var redisServers: [RedisServer] = []

    /// Starts `hive start --port 0` (a port the kernel picks, read back from the `ready` line) with its run dir
    /// inside the process's own temp folder. `environment` is added to the test's own (`HIVE_REDIS_URL`, say);
    /// `binary` is another Hive application's executable instead of `hive`.
    func startHive(
        workers: Int = 2, _ extra: [String] = [], environment: [String: String] = [:], binary: URL? = nil
    ) throws -> (HiveProcess, port: Int) {
        // Tests that are not about Redis must not depend on (or subscribe to) whatever Redis the machine has.
        let redis = extra.contains("--redis") || environment["HIVE_REDIS_URL"] != nil ? [] : ["--redis", "none"]
        let hive = try HiveProcess(
            arguments: ["--port", "0", "--workers", String(workers), "--run-dir", "run"] + redis + extra,
            environment: environment, binary: binary
        )
        started.append(hive)
        return (hive, try hive.startAndReadPort())
    }

    /// Starts a real redis-server on a free port, stopped in `tearDown` after every Hive of the test.
    func startRedis(password: String? = nil, extraArguments: [String] = []) throws -> RedisServer {
        let redis = try RedisServer(password: password, extraArguments: extraArguments)
        redisServers.append(redis)
        try redis.start()
        return redis
    }

    override func tearDown() {
        for hive in started {
            _ = try? hive.stop()
            if (testRun?.totalFailureCount ?? 0) > 0 {
                writeLine("----- hive log (\(hive.logURL.path)) -----\n" + hive.log())
            }
        }
        started = []
        // After the Hives: their subscribers would log the Redis stop.
        for redis in redisServers {
            redis.stop()
            if (testRun?.totalFailureCount ?? 0) > 0 {
                writeLine("----- redis log (\(redis.logURL.path)) -----\n" + redis.log())
            }
        }
        redisServers = []
        super.tearDown()
    }

    func writeLine(_ text: String) {
        FileHandle.standardError.write((text + "\n").data(using: .utf8)!)
    }

    /// A JSON action for the demo page's WebSocket.
    func action(_ name: String, _ fields: [String: String] = [:]) -> String {
        var object = fields
        object["action"] = name
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// Asks a demo WebSocket which worker serves it (`who`).
    func worker(of client: WebSocketTestClient) throws -> Int {
        try client.sendText(action("who"))
        guard case .text(let reply) = try client.receiveMessage(), let last = reply.split(separator: " ").last,
            let worker = Int(last)
        else { throw TestClientError.misuse("unexpected reply to who") }
        return worker
    }

    func connectionID(of client: WebSocketTestClient) throws -> UInt64 {
        try client.sendText(action("who"))
        guard case .text(let reply) = try client.receiveMessage() else { throw TestClientError.misuse("no reply to who") }
        let words = reply.split(separator: " ")
        guard let index = words.firstIndex(of: "connection"), let id = UInt64(words[index + 1]) else {
            throw TestClientError.misuse("unexpected reply to who: \(reply)")
        }
        return id
    }
}
