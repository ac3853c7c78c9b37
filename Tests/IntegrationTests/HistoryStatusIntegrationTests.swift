import Foundation
import XCTest

/// `hive status` shows channel history: in the human form one line of totals, in `--json` the totals and each
/// channel's history length, last offset and epoch (as `hive channels` does), read from Redis by the CLI.
final class HistoryStatusIntegrationTests: HiveTestCase {
    func testStatus_showsHowManyChannelsKeepHistory_andPerChannelFiguresInJSON() throws {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url, "--history-size", "3", "--history", "live*=0"])
        try redis.waitForSubscribers(channel: "test", count: 1)
        var clients: [WebSocketTestClient] = []
        for channel in ["news", "live.scores"] {
            let client = try WebSocketTestClient(port: port, path: "/?channels=\(channel)&envelope=json", timeout: 5)
            _ = try connectionID(of: client)
            clients.append(client)
            try redis.waitForSubscribers(channel: channel, count: 1)
        }
        for index in 1...5 {
            let result = try HiveCLI.run(["publish", "news", "m\(index)", "--redis", redis.url, "--history-size", "3"])
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        for _ in 1...5 { _ = try clients[0].receiveMessage(timeout: 5) }
        let run = hive.directory.appendingPathComponent("run").path

        let json = try HiveCLI.run(["status", "--json", "--run-dir", run])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let history = try XCTUnwrap(object["history"] as? [String: Any], json.stdout)
        XCTAssertEqual(history["channels"] as? Int, 1, "live.scores keeps none (--history live*=0): \(json.stdout)")
        XCTAssertEqual(history["messages"] as? Int, 3, json.stdout)
        XCTAssertTrue(history["error"] is NSNull, json.stdout)
        let perChannel = try XCTUnwrap(history["perChannel"] as? [[String: Any]], json.stdout)
        XCTAssertEqual(perChannel.compactMap { $0["channel"] as? String }, ["live.scores", "news"])
        let news = try XCTUnwrap(perChannel.last)
        XCTAssertEqual(news["length"] as? Int, 3)
        XCTAssertEqual(news["lastOffset"] as? Int, 5)
        let epoch = try XCTUnwrap(news["epoch"] as? String)
        XCTAssertEqual(epoch.count, 13, "13 hex digits: \(epoch)")
        XCTAssertTrue(perChannel.first?["epoch"] is NSNull, json.stdout)
        XCTAssertEqual(perChannel.first?["length"] as? Int, 0)

        let text = try HiveCLI.run(["status", "--run-dir", run])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("history: 1 of 2 channels with history · 3 messages kept"), text.stdout)
    }

    func testStatus_withoutHistory_hasNoHistoryLine_andNullInJSON() throws {
        let redis = try startRedis()
        let (hive, _) = try startHive(workers: 1, ["--redis", redis.url])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let run = hive.directory.appendingPathComponent("run").path
        let json = try HiveCLI.run(["status", "--json", "--run-dir", run])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], json.stdout)
        XCTAssertTrue(object["history"] is NSNull, json.stdout)
        XCTAssertFalse(try HiveCLI.run(["status", "--run-dir", run]).stdout.contains("history:"))
    }

    /// Redis gone: status still answers, and says why history is missing instead of failing.
    func testStatus_whenRedisIsDown_saysWhyHistoryIsMissing() throws {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 1, ["--redis", redis.url, "--history-size", "10"])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let client = try WebSocketTestClient(port: port, path: "/?channels=news", timeout: 5)
        _ = try connectionID(of: client)
        redis.stop()
        let run = hive.directory.appendingPathComponent("run").path
        let text = try HiveCLI.run(["status", "--run-dir", run])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("history: cannot read it from"), text.stdout)
    }
}
