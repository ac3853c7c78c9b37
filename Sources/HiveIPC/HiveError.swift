/// Why a call on `HiveServer` could not be done. The text names the connection, what it is, and what to do; the
/// caller decides whether it is worth a log line (a broadcast never produces these: it only reaches established
/// WebSocket connections by construction).
///
/// Switch over `code`, not over the error: new codes may be added without breaking a switch that has a `default`.
///
/// ```swift
/// do {
///     try await hive.push(id, .text("hi"))
/// } catch let error as HiveError where error.code == .notWebSocket {
///     // a plain HTTP connection: nothing to push to
/// }
/// ```
public struct HiveError: Error, CustomStringConvertible, Hashable, Sendable {
    /// What kind of failure this is: compare it with the constants below (`error.code == .notWebSocket`), or switch
    /// over it with a `default` case.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: Hashable, Sendable {
            case unknownConnection, notWebSocket, workerBusy, redisUnavailable, invalidArgument, channelLimit, forbidden
        }

        private let kind: Kind

        private init(_ kind: Kind) { self.kind = kind }

        /// The id names no live connection: never opened, already closed, or its slot now holds another one.
        public static let unknownConnection = Code(.unknownConnection)
        /// The connection exists but cannot receive WebSocket messages in its current protocol state (a plain HTTP
        /// connection, one still in its handshake, or one closing).
        public static let notWebSocket = Code(.notWebSocket)
        /// The owning worker's inbox stayed full; the message was not queued.
        public static let workerBusy = Code(.workerBusy)
        /// Redis is not configured (`--redis none`) or could not be reached.
        public static let redisUnavailable = Code(.redisUnavailable)
        /// An argument was out of its range (a channel name, a close code).
        public static let invalidArgument = Code(.invalidArgument)
        /// A channel limit was reached: the connection is in as many channels as one may be, or the registry's
        /// channel table has no room for another channel (`--max-channels`).
        public static let channelLimit = Code(.channelLimit)
        /// The connection's token does not allow it: a channel outside its `channels` claim (`hive start
        /// --jwt-secret` or `--jwt-public-key`).
        public static let forbidden = Code(.forbidden)

        /// The constant's name: "unknownConnection", "notWebSocket", ...
        public var description: String {
            switch kind {
            case .unknownConnection: "unknownConnection"
            case .notWebSocket: "notWebSocket"
            case .workerBusy: "workerBusy"
            case .redisUnavailable: "redisUnavailable"
            case .invalidArgument: "invalidArgument"
            case .channelLimit: "channelLimit"
            case .forbidden: "forbidden"
            }
        }
    }

    /// What kind of failure this is.
    public let code: Code
    /// The connection the call was about, if any.
    public let connection: ConnectionID?
    /// The connection's protocol state when that was the problem (`notWebSocket`).
    public let state: ProtocolState?
    /// The worker that owns the connection, when that worker was the problem (`workerBusy`).
    public let worker: Int?
    /// What happened and what to do, in one sentence.
    public let description: String

    package init(
        code: Code, connection: ConnectionID? = nil, state: ProtocolState? = nil, worker: Int? = nil,
        description: String
    ) {
        self.code = code
        self.connection = connection
        self.state = state
        self.worker = worker
        self.description = description
    }

    /// No live connection has the id `id`.
    package static func unknownConnection(_ id: ConnectionID) -> HiveError {
        HiveError(
            code: .unknownConnection, connection: id,
            description: "connection \(id) does not exist (never opened, or already closed); "
                + "check `exists(id)` or iterate `connections` for live ids"
        )
    }

    /// Connection `id` is in `state`, not an established WebSocket.
    package static func notWebSocket(_ id: ConnectionID, _ state: ProtocolState) -> HiveError {
        let what: String
        switch state {
        case .http: what = "is a plain HTTP connection, not a WebSocket client"
        case .websocketHandshake: what = "is still in its WebSocket handshake"
        case .closing: what = "is closing its WebSocket"
        case .closed: what = "is closed"
        case .websocket: what = "is a WebSocket"
        }
        return HiveError(
            code: .notWebSocket, connection: id, state: state,
            description: "connection \(id) \(what); only established WebSocket connections can receive a push "
                + "(check `isEstablished(id)` first)"
        )
    }

    /// The inbox of `worker`, which owns connection `id`, stayed full.
    package static func workerBusy(_ id: ConnectionID, worker: Int) -> HiveError {
        HiveError(
            code: .workerBusy, connection: id, worker: worker,
            description: "connection \(id) is owned by worker \(worker), whose inbox is full; the message was "
                + "dropped: retry later, or lower the push rate"
        )
    }
}

extension HiveError {
    /// A channel name that breaks `ChannelName`'s rules.
    package static func invalidChannel(_ problem: String, connection: ConnectionID? = nil) -> HiveError {
        HiveError(
            code: .invalidArgument, connection: connection,
            description: "\(problem)\(connection.map { " (connection \($0))" } ?? ""): pick a name of 1 to "
                + "\(ChannelName.maxLength) letters, digits or _ - . : @ /"
        )
    }

    package static func tooManyChannels(_ id: ConnectionID, channel: String) -> HiveError {
        HiveError(
            code: .channelLimit, connection: id,
            description: "connection \(id) cannot join channel \(channel): it is already in "
                + "\(ChannelName.maxPerConnection) channels, the most one connection may be in; unsubscribe it from one first"
        )
    }

    package static func channelTableFull(_ id: ConnectionID?, channel: String, capacity: Int) -> HiveError {
        HiveError(
            code: .channelLimit, connection: id,
            description: "channel \(channel) cannot be added\(id.map { " for connection \($0)" } ?? ""): the channel "
                + "table is full (\(capacity) channels with subscribers); raise --max-channels, or use fewer channels"
        )
    }
}

extension HiveError {
    /// Connection `id`'s token does not allow `channel`; `allowed` says what it allows, as a sentence part.
    package static func forbiddenChannel(_ id: ConnectionID, channel: String, subject: String, allowed: String) -> HiveError {
        HiveError(
            code: .forbidden, connection: id,
            description: "connection \(id) (user \(subject)) may not join channel \(channel): its token \(allowed); "
                + "the client needs a token whose channels claim lists \(channel) (or \"*\")"
        )
    }
}
