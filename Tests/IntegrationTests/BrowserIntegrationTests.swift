import Foundation
import HiveIPC
import XCTest

/// The demo page in a real browser: headless Chromium loads it from a 2-worker hive subscribed to a real Redis, its
/// WebSocket connects, a message sent from the page's form is answered, a Redis PUBLISH and a broadcast from another
/// client reach the page, while the browser's plain HTTP keep-alive connection (page and favicon) never gets a
/// WebSocket frame: the story, in the browser it happened in.
///
/// Chromium is required: if it is missing the test fails with how to install it (`make deps` does).
final class BrowserIntegrationTests: HiveTestCase {
    /// JavaScript: the texts of the page's message list, in order.
    private let messagesJS = "Array.from(document.querySelectorAll('#messages li'), li => li.textContent)"

    func testDemoPage_connectsSendsHello_receivesRedisAndABroadcast_andTheFaviconConnectionGetsNoFrames() throws {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 2, ["--redis", redis.url])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let registry = try RegistryProbe.attach(masterPID: try XCTUnwrap(hive.pid))
        let browser = try HeadlessChromium()
        defer { browser.close() }

        // The page loads and its WebSocket connects.
        try browser.navigate(to: "http://127.0.0.1:\(port)/")
        try browser.waitFor("document.getElementById('status').textContent === 'Connected'", timeout: 5)
        XCTAssertEqual(try browser.evaluate("document.title") as? String, "Hive demo")

        // "hello" through the form, as a user would: pick the action, click Send.
        try browser.evaluate(
            """
            document.getElementById('action').value = 'hello';
            document.getElementById('send').click();
            """)
        try browser.waitFor(
            "(() => { const li = document.querySelectorAll('#messages li');"
                + " return li.length > 0 && li[li.length - 1].textContent === 'hello'; })()",
            timeout: 5)

        // A message published to Redis reaches the page through worker 0's subscription.
        XCTAssertEqual(try redis.publish(channel: "test", message: "hello-from-redis"), 1)
        try browser.waitFor("\(messagesJS).includes('hello-from-redis')", timeout: 5)

        // A broadcast from another WebSocket client reaches the page (and the sender).
        let client = try WebSocketTestClient(port: port, path: "/")
        defer { client.close() }
        try client.sendText(#"{"action":"broadcast","content":"hello-from-test"}"#)
        try browser.waitFor("\(messagesJS).includes('hello-from-test')", timeout: 5)
        let got = [try client.receiveMessage(), try client.receiveMessage()]
        XCTAssertTrue(got.contains(.text("hello-from-test")), "\(got)")
        XCTAssertTrue(got.contains(.text("broadcast sent to every WebSocket client")), "\(got)")
        XCTAssertEqual(try browser.evaluate(messagesJS) as? [String], ["hello", "hello-from-redis", "hello-from-test"])
        XCTAssertEqual(try browser.evaluate("document.getElementById('status').textContent") as? String, "Connected")

        // The page and its favicon came over plain HTTP keep-alive connections, which never got a WebSocket frame:
        // the only HTTP requests hive sees here are the browser's GET / and GET /favicon.ico.
        try RegistryProbe.wait(registry, "the browser's GET / and GET /favicon.ico on plain HTTP connections") {
            $0.connections.filter { $0.protocolState == .http }.reduce(0) { $0 + $1.requests } >= 2
        }
        // A WebSocket's frames out reach its slot within a second (the worker's sweep publishes them).
        try RegistryProbe.wait(registry, "frames out of both WebSockets published") {
            $0.connections.filter { $0.protocolState == .websocket }.allSatisfy { $0.framesOut > 0 }
        }
        let connections = Array(registry.connections)
        let http = connections.filter { $0.protocolState == .http }
        let websockets = connections.filter { $0.protocolState == .websocket }
        XCTAssertEqual(http.reduce(0) { $0 + $1.requests }, 2, "\(http)")
        for connection in http {
            XCTAssertEqual(connection.framesOut, 0, "plain HTTP connection got WebSocket frames: \(connection)")
        }
        XCTAssertEqual(websockets.count, 2, "the page's WebSocket and the test client's: \(connections)")
        XCTAssertFalse(hive.log().contains(" warning ") || hive.log().contains(" error "), hive.log())
        for connection in websockets {
            XCTAssertGreaterThan(connection.framesOut, 0, "\(connection)")
        }

        // A picture for humans (CI keeps .build/artifacts).
        let screenshot = Self.packageRoot().appendingPathComponent(".build/artifacts/demo-page.png").path
        let bytes = try browser.screenshot(to: screenshot)
        let png = try XCTUnwrap(FileManager.default.contents(atPath: screenshot))
        XCTAssertEqual(png.count, bytes)
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "not a PNG")
        writeLine("BrowserIntegrationTests: screenshot \(screenshot) (\(bytes) bytes)")
    }

    /// Two pages on two channels: one joins `news` through its URL (`/?channels=news`), the other `sport` through
    /// the form's subscribe action; each sees only its own channel's messages.
    func testTwoPagesOnTwoChannels_eachSeesOnlyItsOwnChannel() throws {
        let redis = try startRedis()
        let (_, port) = try startHive(workers: 2, ["--redis", redis.url, "--dispatch", "round-robin"])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let news = try HeadlessChromium()
        defer { news.close() }
        let sport = try HeadlessChromium()
        defer { sport.close() }
        let connected = "document.getElementById('status').textContent === 'Connected'"
        try news.navigate(to: "http://127.0.0.1:\(port)/?channels=news")
        try news.waitFor(connected, timeout: 5)
        try sport.navigate(to: "http://127.0.0.1:\(port)/")
        try sport.waitFor(connected, timeout: 5)
        try sport.evaluate(
            """
            document.getElementById('action').value = 'subscribe';
            document.getElementById('channel').value = 'sport';
            document.getElementById('send').click();
            """)
        try sport.waitFor("\(messagesJS).includes('subscribed to sport')", timeout: 5)
        try redis.waitForSubscribers(channel: "news", count: 1)
        try redis.waitForSubscribers(channel: "sport", count: 1)

        XCTAssertEqual(try redis.publish(channel: "news", message: "headline"), 1)
        XCTAssertEqual(try redis.publish(channel: "sport", message: "goal"), 1)
        XCTAssertEqual(try redis.publish(channel: "test", message: "to-all"), 1)
        try news.waitFor("\(messagesJS).includes('to-all')", timeout: 5)
        try sport.waitFor("\(messagesJS).includes('to-all')", timeout: 5)
        XCTAssertEqual(try news.evaluate(messagesJS) as? [String], ["headline", "to-all"])
        XCTAssertEqual(try sport.evaluate(messagesJS) as? [String], ["subscribed to sport", "goal", "to-all"])
    }

    /// The page resumes after its worker is killed: it shows "Reconnecting…", comes back with `since=` its last
    /// offset, and shows every message published meanwhile, once, in order.
    func testDemoPage_whoseWorkerIsKilled_reconnectsAndShowsEveryMessagePublishedMeanwhile() throws {
        let redis = try startRedis()
        let (hive, port) = try startHive(workers: 1, ["--redis", redis.url, "--history-size", "100"])
        try redis.waitForSubscribers(channel: "test", count: 1)
        let page = try HeadlessChromium()
        defer { page.close() }
        try page.navigate(to: "http://127.0.0.1:\(port)/?channels=news")
        try page.waitFor("document.getElementById('status').textContent === 'Connected'", timeout: 5)
        try redis.waitForSubscribers(channel: "news", count: 1)
        func publish(_ text: String) throws {
            let result = try HiveCLI.run(["publish", "news", text, "--redis", redis.url, "--history-size", "100"])
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        for index in 1...3 { try publish("m\(index)") }
        try page.waitFor("\(messagesJS).includes('m3')", timeout: 5)

        let worker = try XCTUnwrap(hive.currentWorkerPIDs()[0])
        XCTAssertEqual(kill(worker, SIGKILL), 0)
        try page.waitFor("document.getElementById('status').textContent === 'Reconnecting…'", timeout: 5)
        for index in 4...6 { try publish("m\(index)") }
        try page.waitFor("document.getElementById('status').textContent === 'Connected'", timeout: 15)
        try page.waitFor("\(messagesJS).includes('m6')", timeout: 5)
        try redis.waitForSubscribers(channel: "news", count: 1)
        try publish("m7")
        try page.waitFor("\(messagesJS).includes('m7')", timeout: 5)
        XCTAssertEqual(try page.evaluate(messagesJS) as? [String], (1...7).map { "m\($0)" })

        let screenshot = Self.packageRoot().appendingPathComponent(".build/artifacts/demo-page-recovered.png").path
        let bytes = try page.screenshot(to: screenshot)
        writeLine("BrowserIntegrationTests: screenshot \(screenshot) (\(bytes) bytes)")
    }

    /// The package root: the parent of the `.build` folder holding the hive binary, else the current directory
    /// (which `swift test` sets to the package root).
    static func packageRoot() -> URL {
        var url = HiveProcess.binaryURL().standardizedFileURL
        while url.pathComponents.count > 1 {
            url.deleteLastPathComponent()
            if url.lastPathComponent == ".build" {
                return url.deletingLastPathComponent()
            }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }
}
