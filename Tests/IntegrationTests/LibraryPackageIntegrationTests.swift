import Foundation
import HiveIPC
import XCTest

/// Hive is a library: the issue's snippet, unchanged, in a package of its own that depends on this repository by
/// path, builds with `swift build`, and its executable is a whole Hive: it serves, and every operator command works
/// against it under its own name.
final class LibraryPackageIntegrationTests: HiveTestCase {
    /// The issue's snippet, as the user's `Sources/upper/main.swift`.
    static let snippet = #"""
        import Hive

        struct Upper: HiveApplication {
            func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws {
                guard case .text(let text) = message else { return }
                try await hive.push(connection.id, .text(text.uppercased()))
            }

            func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse {
                request.path == "/version" ? .text("upper 1.0\n") : .notFound
            }
        }

        try await HiveMain.run(Upper())

        """#

    /// The user's `Package.swift`: Hive by path, named `hive` after its folder (`.build/examples/hive`).
    static let manifest = #"""
        // swift-tools-version:6.0
        import PackageDescription

        let package = Package(
            name: "upper",
            platforms: [.macOS(.v13)],
            dependencies: [.package(path: "../hive")],
            targets: [
                .executableTarget(name: "upper", dependencies: [.product(name: "Hive", package: "hive")]),
            ]
        )

        """#

    /// Writes the package afresh to `.build/examples/upper`, beside the `hive` link, and builds it.
    private func buildUpper() throws -> URL {
        try PackageBuild.prepareLink()
        let package = PackageBuild.directory.appendingPathComponent("upper", isDirectory: true)
        try? FileManager.default.removeItem(at: package)
        let sources = package.appendingPathComponent("Sources/upper", isDirectory: true)
        try FileManager.default.createDirectory(at: sources, withIntermediateDirectories: true)
        try Self.manifest.write(to: package.appendingPathComponent("Package.swift"), atomically: true, encoding: .utf8)
        try Self.snippet.write(to: sources.appendingPathComponent("main.swift"), atomically: true, encoding: .utf8)
        return try PackageBuild.build(package: package, product: "upper")
    }

    func testIssueSnippet_buildsAsAnOutsidePackage_andItsExecutableIsAWholeHive() throws {
        let upper = try buildUpper()
        let (hive, port) = try startHive(workers: 2, binary: upper)
        let dir = hive.directory.appendingPathComponent("run").path
        func upperCommand(_ arguments: [String]) throws -> HiveCLI.Result {
            try HiveCLI.run(arguments + ["--run-dir", dir], binary: upper)
        }

        // The application: WebSocket messages upper-cased, /version answered, anything else 404.
        let client = try WebSocketTestClient(port: port)
        try client.sendText("abc")
        XCTAssertEqual(try client.receiveMessage(), .text("ABC"))
        let http = try HTTPTestClient(port: port)
        let version = try http.request(path: "/version")
        XCTAssertEqual(version.status, 200)
        XCTAssertEqual(version.text, "upper 1.0\n")
        XCTAssertEqual(try http.request(path: "/other").status, 404)

        // The operator commands, run as `upper`.
        let status = try upperCommand(["status"])
        XCTAssertEqual(status.status, 0, status.stderr)
        XCTAssertTrue(status.stdout.contains("HIVE STATUS"), status.stdout)
        let listed = try upperCommand(["connections", "--json"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        let webSockets = rows.filter { $0["protocol"] as? String == "websocket" }
        XCTAssertEqual(webSockets.count, 1, listed.stdout)
        let id = try XCTUnwrap((webSockets.first?["id"] as? NSNumber)?.uint64Value, listed.stdout)

        let pushed = try upperCommand(["push", String(id), "from the command line"])
        XCTAssertEqual(pushed.status, 0, pushed.stderr)
        XCTAssertEqual(try client.receiveMessage(), .text("from the command line"))
        let refused = try upperCommand(["push", "999", "x"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("does not exist"), refused.stderr)

        let disconnected = try upperCommand(["disconnect", String(id), "--code", "4000"])
        XCTAssertEqual(disconnected.status, 0, disconnected.stderr)
        XCTAssertEqual(try client.receiveMessage(), .close(code: 4000, reason: "disconnected by an operator"))

        // publish speaks to Redis, not to the master: this Hive runs with --redis none, so nobody receives it.
        let redis = try startRedis()
        let published = try HiveCLI.run(["publish", "test", "hello", "--redis", redis.url], binary: upper)
        XCTAssertEqual(published.status, 0, published.stderr)
        XCTAssertTrue(published.stdout.contains("published to test"), published.stdout)

        let reloaded = try upperCommand(["reload"])
        XCTAssertEqual(reloaded.status, 0, reloaded.stderr)
        let afterReload = try WebSocketTestClient(port: port)
        try afterReload.sendText("still upper")
        XCTAssertEqual(try afterReload.receiveMessage(), .text("STILL UPPER"))

        let workerPIDs = Array(hive.currentWorkerPIDs().values)
        let stopped = try upperCommand(["stop"])
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertEqual(hive.exitStatus ?? (try? hive.stop()), 0)
        XCTAssertEqual(HiveProcess.waitUntilGone(workerPIDs, timeout: 5), [])
    }
}
