import Foundation
import XCTest

/// Async hooks against the real binary: the demo's `GET /sleep?ms=N` and its `sleep` action await before they
/// answer. A hook that awaits suspends only its own connection: the worker serves the others meanwhile; one
/// connection's requests are still answered in order, and its messages handled in order.
final class AsyncHooksIntegrationTests: HiveTestCase {
    /// One worker, so the sleeping connection and the other one share an event loop.
    func testAwaitingRequestHook_doesNotBlockTheWorkersOtherConnections() throws {
        let (_, port) = try startHive(workers: 1)
        let sleeper = try HTTPTestClient(port: port)
        try sleeper.send(raw: "GET /sleep?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.1)

        let started = Date()
        let other = try HTTPTestClient(port: port)
        let response = try other.request(path: "/hello")
        let waited = Date().timeIntervalSince(started)
        XCTAssertEqual(response.text, "hello")
        XCTAssertLessThan(waited, 1.0, "GET /hello waited \(waited) s for another connection's sleeping hook")

        let slept = try sleeper.readResponse(timeout: 5)
        XCTAssertEqual(slept.text, "slept 1500 ms\n")
    }

    /// Pipelined requests whose hooks take different times are answered in the order they were sent.
    func testPipelinedRequests_withAwaitingHooks_areAnsweredInRequestOrder() throws {
        let (_, port) = try startHive(workers: 1)
        let client = try HTTPTestClient(port: port)
        let responses = try client.pipeline(["/sleep?ms=300", "/hello", "/sleep?ms=50", "/hello", "/sleep?ms=0"])
        XCTAssertEqual(
            responses.map(\.text), ["slept 300 ms\n", "hello", "slept 50 ms\n", "hello", "slept 0 ms\n"]
        )
        XCTAssertEqual(try client.request(path: "/hello").text, "hello", "the connection stays usable")
    }

    /// The demo answers `/hello` with its synchronous hook and `/sleep` with its async one: both responses name the
    /// connection and worker, and a `/hello` behind a sleeping request still waits for the sleep's response.
    func testSyncAndAsyncAnswers_bothCarryTheConnectionAndWorker_inRequestOrder() throws {
        let (_, port) = try startHive(workers: 1)
        let client = try HTTPTestClient(port: port)
        let responses = try client.pipeline(["/sleep?ms=200", "/hello", "/hello"])
        XCTAssertEqual(responses.map(\.text), ["slept 200 ms\n", "hello", "hello"])
        let connections = Set(responses.compactMap { $0.header("X-Hive-Connection") })
        XCTAssertEqual(connections.count, 1, "one connection, named on every response: \(responses)")
        XCTAssertEqual(responses.compactMap { $0.header("X-Hive-Worker") }, ["0", "0", "0"], "\(responses)")
        let alone = try client.request(path: "/hello")
        XCTAssertEqual(alone.text, "hello")
        XCTAssertEqual(alone.header("X-Hive-Connection"), connections.first)
    }

    /// Messages of one connection are handled one at a time, in order, even when an earlier one awaits; another
    /// client of the same worker is answered meanwhile.
    func testMessagesOfOneConnection_areHandledInOrder_whileOthersAreServed() throws {
        let (_, port) = try startHive(workers: 1)
        let client = try WebSocketTestClient.connect(port: port)
        try client.sendText(action("sleep", ["content": "800"]))
        try client.sendText(action("hello"))
        try client.sendText(action("sleep", ["content": "10"]))

        let other = try WebSocketTestClient.connect(port: port)
        let started = Date()
        try other.sendText(action("hello"))
        XCTAssertEqual(try other.receiveMessage(timeout: 2), .text("hello"))
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.6, "another connection waited for the sleeping hook")

        XCTAssertEqual(try client.receiveMessage(timeout: 3), .text("slept 800 ms"))
        XCTAssertEqual(try client.receiveMessage(timeout: 3), .text("hello"))
        XCTAssertEqual(try client.receiveMessage(timeout: 3), .text("slept 10 ms"))
    }

    /// A WebSocket whose hook awaits a slow service is still read: its pings are answered meanwhile (reads are held
    /// only when many messages wait behind the hook).
    func testPing_whileAMessageHookAwaits_isAnsweredAtOnce() throws {
        let (_, port) = try startHive(workers: 1)
        let client = try WebSocketTestClient.connect(port: port)
        try client.sendText(action("sleep", ["content": "2000"]))
        Thread.sleep(forTimeInterval: 0.1)
        let started = Date()
        try client.sendPing([1, 2, 3])
        XCTAssertEqual(try client.receiveMessage(timeout: 1.5), .pong)
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.0, "the ping waited for the hook")
        XCTAssertEqual(try client.receiveMessage(timeout: 3), .text("slept 2000 ms"))
    }

    /// A connection that closes while its hook awaits: the hook finishes, the close hook runs after it, and the
    /// connection's slot is freed (nothing is left in the registry).
    func testClose_whileAHookAwaits_leavesNothingBehind() throws {
        let (hive, port) = try startHive(workers: 1)
        let client = try WebSocketTestClient.connect(port: port)
        try client.sendText(action("sleep", ["content": "500"]))
        Thread.sleep(forTimeInterval: 0.1)
        client.close()
        let other = try HTTPTestClient(port: port)
        XCTAssertEqual(try other.request(path: "/hello").text, "hello")
        other.close()
        let deadline = Date().addingTimeInterval(5)
        var open = -1
        let runDir = hive.directory.appendingPathComponent("run").path
        while Date() < deadline {
            let status = try HiveCLI.json(["status", "--json", "--run-dir", runDir]) as? [String: Any]
            if let connections = status?["connections"] as? [String: Any], let total = connections["total"] as? Int {
                open = total
                if open == 0 { break }
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTAssertEqual(open, 0, "connections still open after the client left during an awaiting hook")
    }
}
