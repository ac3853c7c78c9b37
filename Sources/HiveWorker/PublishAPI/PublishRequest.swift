import Foundation
import HiveIPC

/// One call of the HTTP publish API (`POST /api/publish`), parsed and checked: whom it is for and what it says.
/// Pure: no I/O, no server state, so it is tested and fuzzed on its own (Sources/Fuzz/fuzz-publish).
///
/// Two shapes, told apart by the query:
/// - `?channel=NAME` (or `?user=ID`): the body, as sent, is the message. Any content type: a JSON document posted
///   this way is published as it is.
/// - no target in the query: the body is a JSON object, `{"channel": "news", "data": "…"}` (or `"user"` instead of
///   `"channel"`); `data` must be a string. The content type is not checked, so `curl -d` works as it is.
///
/// A payload that is valid UTF-8 is a text message, any other a binary one, whatever the content type: the rule
/// every Redis message follows (Redis carries bytes), so a message arrives the same with Redis and without.
package struct PublishRequest: Sendable, Equatable {
    package enum Target: Sendable, Equatable, CustomStringConvertible {
        case channel(String)
        case user(String)

        package var description: String {
            switch self {
            case .channel(let name): "channel \(name)"
            case .user(let id): "user \(id)"
            }
        }
    }

    package var target: Target
    package var message: HiveMessage

    package init(target: Target, message: HiveMessage) {
        self.target = target
        self.message = message
    }

    /// Why a call cannot be published: which part is wrong and what to send instead.
    package struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        package enum Kind: Sendable, Equatable {
            /// Not `POST`: 405 with `Allow: POST`.
            case methodNotAllowed
            /// Not a call this API understands: 400.
            case badRequest
            /// The message is over the limit: 413.
            case tooLarge
        }

        package var kind: Kind
        package var message: String
        package var description: String { message }

        package init(_ kind: Kind, _ message: String) {
            self.kind = kind
            self.message = message
        }
    }

    /// What a well-formed call looks like, for the end of error messages.
    static let usage = #"send {"channel": "NAME", "data": "TEXT"} as JSON, or the message as the body of POST /api/publish?channel=NAME"#

    /// Parses one call.
    /// - Parameters:
    ///   - method: the request method, as sent.
    ///   - query: the query string without its "?" (nil or empty: none).
    ///   - body: the whole request body (already bounded by --max-body-size).
    ///   - maxMessageSize: largest message published, in bytes (--max-redis-message with Redis, else
    ///     --max-message-size).
    /// - Throws: `PublishRequest.Error`.
    package static func parse(
        method: String, query: Substring?, body: [UInt8], maxMessageSize: Int
    ) throws(Error) -> PublishRequest {
        try checkMethod(method)
        let parameters = query.map { HiveParameters(query: $0) } ?? HiveParameters()
        let channels = parameters.values("channel"), users = parameters.values("user")
        if !channels.isEmpty || !users.isEmpty {
            let target = try target(channels: channels, users: users, source: "the query")
            guard body.count <= maxMessageSize else { throw tooLarge(body.count, limit: maxMessageSize) }
            let message = String(validating: body, as: UTF8.self).map(HiveMessage.text) ?? .binary(body)
            return PublishRequest(target: target, message: message)
        }
        return try parseJSON(body, maxMessageSize: maxMessageSize)
    }

    /// Only `POST` publishes.
    package static func checkMethod(_ method: String) throws(Error) {
        guard method == "POST" else {
            throw Error(.methodNotAllowed, "\(method.prefix(20)) /api/publish is not allowed: only POST publishes; \(usage)")
        }
    }

    private static func parseJSON(_ body: [UInt8], maxMessageSize: Int) throws(Error) -> PublishRequest {
        guard !body.isEmpty else {
            throw Error(.badRequest, "the request has no body and no ?channel= in its query: \(usage)")
        }
        let object: [String: Any]
        do {
            guard let parsed = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
                throw Error(.badRequest, "the body is JSON but not an object: \(usage)")
            }
            object = parsed
        } catch let error as Error {
            throw error
        } catch {
            throw Error(.badRequest, "the body is not valid JSON (\(Self.reason(error))): \(usage)")
        }
        let channel = try string(object, "channel"), user = try string(object, "user")
        let target = try Self.target(channels: channel.map { [$0] } ?? [], users: user.map { [$0] } ?? [],
                                     source: "the JSON body")
        guard let value = object["data"] else {
            throw Error(.badRequest, #"the JSON body has no "data": add the message as "data": "TEXT""#)
        }
        guard let data = value as? String else {
            throw Error(.badRequest, #"the JSON body's "data" is \#(kind(of: value)), not a string: send the message "#
                + #"as a string (encode JSON as a string), or POST it as the raw body with ?channel=NAME"#)
        }
        let size = data.utf8.count
        guard size <= maxMessageSize else { throw tooLarge(size, limit: maxMessageSize) }
        return PublishRequest(target: target, message: .text(data))
    }

    /// The value of `key` if it is there: a string, else a 400 naming the key.
    private static func string(_ object: [String: Any], _ key: String) throws(Error) -> String? {
        guard let value = object[key] else { return nil }
        guard let text = value as? String else {
            throw Error(.badRequest, "the JSON body's \"\(key)\" is \(kind(of: value)), not a string")
        }
        return text
    }

    /// Exactly one channel or one user, checked.
    private static func target(channels: [String], users: [String], source: String) throws(Error) -> Target {
        guard channels.count + users.count == 1 else {
            if channels.isEmpty && users.isEmpty {
                throw Error(.badRequest, "\(source) names no target: add \"channel\" (or \"user\"); \(usage)")
            }
            throw Error(.badRequest, "\(source) names \(channels.count) channel(s) and \(users.count) user(s): "
                + "a call publishes to exactly one channel or one user; send one call per target")
        }
        if let channel = channels.first {
            if let problem = ChannelName.problem(channel) {
                throw Error(.badRequest, "channel in \(source): \(problem)")
            }
            return .channel(channel)
        }
        let user = users[0]
        if let problem = UserID.problem(user) {
            throw Error(.badRequest, "user in \(source): \(problem); a user id is 1 to \(UserID.maxLength) bytes of "
                + "UTF-8 without control characters")
        }
        return .user(user)
    }

    static func tooLarge(_ size: Int, limit: Int) -> Error {
        Error(.tooLarge, "the message is \(size) bytes; the largest published is \(limit) bytes "
            + "(--max-redis-message with Redis, less 5 bytes and the id for a user; else --max-message-size): split "
            + "it, or raise the limit")
    }

    /// "a number", "an object": what a JSON value is, for messages.
    private static func kind(of value: Any) -> String {
        switch value {
        case is NSNull: "null"
        case is [Any]: "an array"
        case is [String: Any]: "an object"
        default: "a number or a boolean"
        }
    }

    /// Foundation's JSON error, in one line without its type dump.
    private static func reason(_ error: any Swift.Error) -> String {
        let info = (error as NSError).userInfo
        let text = (info[NSDebugDescriptionErrorKey] as? String) ?? "\(error)"
        return String(text.prefix(200))
    }
}
