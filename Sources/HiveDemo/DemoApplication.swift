import Foundation
import Hive

/// The application `hive start` serves: the page of the story and its WebSocket on one port.
///
/// - `GET /` the page, `GET /favicon.ico` the icon (the browser's extra keep-alive connection), `GET /hello`
///   plain text for benchmarks, `POST /echo` the request's body back (`application/octet-stream`, benchmarks too).
/// - WebSocket `/`: JSON `{"action": ..., "content": ...}`; `hello` -> "hello", `who` -> the connection and
///   worker ids, `broadcast` -> `content` to every WebSocket client of every worker, `push` -> `content` to the
///   connection whose id is in `to` (answers "pushed" or the push error's text), `throw` -> the hook throws (the
///   connection is closed with 1011, the worker keeps serving), `subscribe` / `unsubscribe` -> this connection (or
///   the one whose id is in `to`) joins or leaves the channel named in `content` (answers "subscribed to NAME" or
///   the error's text), `publish` -> `content` published on the channel named in `channel` with
///   `HiveServer.publish` (through Redis when configured; answers "published to NAME" or the error's text),
///   `bind` / `unbind` -> this connection (or `to`) is bound to `user` or unbound ("bound to USER", "unbound"),
///   `send-user` -> `content` to every connection of `user` ("sent to user USER"), anything else -> "hello".
/// - WebSocket `/?channels=news,sport`: the connection joins those channels as it opens.
/// - WebSocket `/echo`: every message back exactly (conformance tests).
/// - `GET /sleep?ms=N` and the action `sleep` (`content`: milliseconds) answer after awaiting N ms (at most 10 s):
///   an async hook, which suspends only its own connection. Every other request is answered by `respondNow`, at
///   once on the event loop.
public struct DemoApplication: HiveApplication {
    public init() {}

    public func shouldUpgrade(path: String) -> Bool { path == "/" || path == "/echo" }

    /// Every route that needs no `await`, answered at once on the event loop; nil for `GET /sleep`, which
    /// `request` answers.
    public func respondNow(to request: HiveRequest, hive: HiveServer) -> HiveResponse? {
        var response: HiveResponse
        switch (request.method, request.path) {
        case (.get, "/"), (.head, "/"): response = .html(DemoPage.html)
        case (.get, "/favicon.ico"), (.head, "/favicon.ico"): response = .bytes(Favicon.bytes, contentType: "image/x-icon")
        case (.get, "/hello"), (.head, "/hello"): response = .text("hello")
        case (.post, "/echo"): response = HiveResponse(headerFields: Self.octetStream, body: request.body)
        case (.get, "/sleep"): return nil
        default: response = .notFound
        }
        Self.sign(&response, request, hive)
        return response
    }

    /// What `respondNow` leaves, `GET /sleep?ms=N`: answered after awaiting N ms.
    public func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse {
        let milliseconds = request.query["ms"].flatMap(Int.init) ?? 0
        try await Task.sleep(for: .milliseconds(min(max(milliseconds, 0), 10_000)))
        var response = HiveResponse.text("slept \(milliseconds) ms\n")
        Self.sign(&response, request, hive)
        return response
    }

    /// Adds which connection and worker served the request: the way to find a plain HTTP connection's id from
    /// outside. Numeric fields: written as digits into the response's bytes, the shared fields above not copied.
    private static func sign(_ response: inout HiveResponse, _ request: HiveRequest, _ hive: HiveServer) {
        response.appendField(.hiveConnection, request.connection.rawValue)
        response.appendField(.hiveWorker, hive.workerID)
    }

    /// Made once: `HiveResponse.bytes` builds its fields from a dictionary literal on every call.
    static let octetStream: HTTPFields = [.contentType: "application/octet-stream"]

    public func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws {
        if connection.path == "/echo" {
            try await hive.push(connection.id, message)
            return
        }
        try await hive.push(connection.id, .text(try await reply(to: message, from: connection, hive: hive)))
    }

    struct DemoError: Error, CustomStringConvertible {
        var description: String { "the client asked this hook to throw (action \"throw\")" }
    }

    /// What the page's WebSocket answers. A `broadcast` is sent to everyone and answered with nothing extra.
    func reply(to message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws -> String {
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
            await hive.broadcast(.text(content))
            return "broadcast sent to every WebSocket client"
        case "push":
            guard let to = (object["to"] as? String).flatMap(UInt64.init) ?? (object["to"] as? NSNumber)?.uint64Value
            else { return "error: push needs \"to\": the id of the connection to push to" }
            do {
                try await hive.push(ConnectionID(rawValue: to), .text(object["content"] as? String ?? ""))
                return "pushed"
            } catch {
                return "error: \(error)"
            }
        case "subscribe", "unsubscribe":
            let channel = object["content"] as? String ?? ""
            let to = (object["to"] as? String).flatMap(UInt64.init) ?? (object["to"] as? NSNumber)?.uint64Value
            let target = to.map(ConnectionID.init(rawValue:)) ?? connection.id
            do {
                if action == "subscribe" {
                    try await hive.subscribe(target, to: channel)
                } else {
                    try await hive.unsubscribe(target, from: channel)
                }
                return "\(action)d \(action == "subscribe" ? "to" : "from") \(channel)"
            } catch let error as HiveError {
                return "error: \(error.code): \(error)"
            }
        case "publish":
            // Through Redis when it is configured (every host delivers), to this host's subscribers otherwise.
            let channel = object["channel"] as? String ?? ""
            do {
                try await hive.publish(channel: channel, .text(object["content"] as? String ?? ""))
                return "published to \(channel)"
            } catch let error as HiveError {
                return "error: \(error.code): \(error)"
            }
        case "bind", "unbind", "send-user":
            // Users: bind this connection (or the one in `to`) to `user`; send `content` to every connection of it.
            let user = object["user"] as? String ?? ""
            let to = (object["to"] as? String).flatMap(UInt64.init) ?? (object["to"] as? NSNumber)?.uint64Value
            let target = to.map(ConnectionID.init(rawValue:)) ?? connection.id
            do {
                switch action {
                case "bind": try await hive.bind(target, user: user)
                case "unbind": try await hive.unbind(target)
                default: try await hive.send(toUser: user, .text(object["content"] as? String ?? ""))
                }
                return action == "bind" ? "bound to \(user)" : action == "unbind" ? "unbound" : "sent to user \(user)"
            } catch let error as HiveError {
                return "error: \(error.code): \(error)"
            }
        case "throw":
            throw DemoError()
        case "sleep":
            let milliseconds = (object["content"] as? String).flatMap(Int.init) ?? (object["content"] as? Int) ?? 0
            try await Task.sleep(for: .milliseconds(min(max(milliseconds, 0), 10_000)))
            return "slept \(milliseconds) ms"
        default:
            return "hello"
        }
    }
}

extension HTTPField.Name {
    // Made once: a name built from a string is checked and lowercased on every request otherwise.
    static let hiveConnection = HTTPField.Name("X-Hive-Connection")!
    static let hiveWorker = HTTPField.Name("X-Hive-Worker")!
}
