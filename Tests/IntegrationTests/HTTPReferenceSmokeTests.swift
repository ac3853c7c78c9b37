import Foundation
import XCTest

/// scripts/reference/http-minimal.c, the C server `make bench` compares Hive's HTTP with, must give wrk the same
/// bytes as Hive's demo (issue 14 item 1): the same status line, fields in the same order, the same body, only the
/// connection's id and the worker's number may differ (same digit count for the id). Never timings.
final class HTTPReferenceSmokeTests: HiveTestCase {
    func testReference_answersGETAndPOSTWithHiveDemosBytes() throws {
        let binary = try CReference.build("http-minimal")
        defer { try? FileManager.default.removeItem(at: binary) }
        let port = HiveProcess.freePort()
        let reference = Process()
        reference.executableURL = binary
        reference.arguments = [String(port), "2"]
        reference.standardError = FileHandle.nullDevice
        try reference.run()
        defer {
            reference.terminate()  // SIGTERM to its pid: it stops and reaps its serving processes
            reference.waitUntilExit()
        }
        let (_, hivePort) = try startHive(workers: 2)

        let body = String(repeating: "x", count: 1024)
        let requests = [
            "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)",
        ]
        for request in requests {
            let fromHive = try Self.exchange(request, port: hivePort)
            let fromReference = try Self.exchange(request, port: try Self.waitForListener(port))
            XCTAssertEqual(Self.normalized(fromReference), Self.normalized(fromHive), request)
            XCTAssertEqual(fromReference.count, fromHive.count, "same length: \(request)")
        }
    }

    /// One request on a new connection, and the whole response's bytes (head and Content-Length body).
    private static func exchange(_ request: String, port: Int) throws -> String {
        let client = try HTTPTestClient(port: port)
        defer { client.close() }
        try client.send(raw: request)
        let deadline = TestDeadline(seconds: 5)
        var bytes = try client.socket.read(until: Array("\r\n\r\n".utf8), deadline: deadline, waitingFor: "a response head")
        bytes += Array("\r\n\r\n".utf8)
        let head = String(decoding: bytes, as: UTF8.self)
        let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
        bytes += try client.socket.read(exactly: try XCTUnwrap(length, head), deadline: deadline, waitingFor: "the body")
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The digits of X-Hive-Connection and X-Hive-Worker replaced, so that only their presence and place count.
    private static func normalized(_ response: String) -> String {
        response.split(separator: "\r\n", omittingEmptySubsequences: false).map { line in
            for name in ["X-Hive-Connection: ", "X-Hive-Worker: "] where line.hasPrefix(name) { return name + "N" }
            return String(line)
        }.joined(separator: "\r\n")
    }

    private static func waitForListener(_ port: Int) throws -> Int {
        let deadline = Date().addingTimeInterval(5)
        while true {
            do {
                _ = try HTTPTestClient(port: port)
                return port
            } catch where Date() < deadline {
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }
}
