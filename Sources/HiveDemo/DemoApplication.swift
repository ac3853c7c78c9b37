import Foundation
import HiveIPC
import HiveWorker

/// The application `hive start` serves: the page of the story and its WebSocket on one port.
///
/// - `GET /` the page, `GET /favicon.ico` the icon (the browser's extra keep-alive connection), `GET /hello`
///   plain text for benchmarks.
/// - WebSocket `/`: JSON `{"action": ..., "content": ...}`; `hello` -> "hello", `who` -> the connection and
///   worker ids, `broadcast` -> `content` to every WebSocket client of every worker, anything else -> "hello".
/// - WebSocket `/echo`: every message back exactly (conformance tests).
public struct DemoApplication: HiveApplication {
    public init() {}

    public func shouldUpgrade(path: String) -> Bool { path == "/" || path == "/echo" }

    public func request(_ request: HiveRequest, hive: Hive) throws -> HiveResponse {
        switch (request.method, request.path) {
        case ("GET", "/"), ("HEAD", "/"): .html(DemoPage.html)
        case ("GET", "/favicon.ico"), ("HEAD", "/favicon.ico"): .bytes(Favicon.bytes, contentType: "image/x-icon")
        case ("GET", "/hello"), ("HEAD", "/hello"): .text("hello")
        default: .notFound
        }
    }

    public func message(_ message: HiveMessage, from connection: HiveConnection, hive: Hive) throws {
        if connection.path == "/echo" {
            try hive.push(connection.id, message)
            return
        }
        try hive.push(connection.id, .text(reply(to: message, from: connection, hive: hive)))
    }

    /// What the page's WebSocket answers. A `broadcast` is sent to everyone and answered with nothing extra.
    func reply(to message: HiveMessage, from connection: HiveConnection, hive: Hive) -> String {
        guard case .text(let text) = message else {
            return "error: binary messages are not understood here; send JSON text like "
                + #"{"action": "hello", "content": ""}"#
        }
        guard let data = text.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let action = object["action"] as? String
        else {
            return "error: malformed message, expected JSON like " + #"{"action": "hello", "content": "..."}"#
                + "; got \(text.prefix(80))"
        }
        switch action {
        case "who":
            return "you are connection \(connection.id) on worker \(hive.workerID)"
        case "broadcast":
            let content = object["content"] as? String ?? ""
            hive.broadcast(.text(content))
            return "broadcast sent to every WebSocket client"
        default:
            return "hello"
        }
    }
}
