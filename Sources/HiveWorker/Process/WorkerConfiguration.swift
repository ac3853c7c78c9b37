import HiveRedis
import NIOCore

/// Per-connection limits: what one client may cost a worker. Defaults follow what Swoole, Workerman and
/// Centrifugo users know.
package struct ConnectionLimits: Sendable {
    /// Largest WebSocket message (after reassembly) a client may send; more is closed with 1009.
    package var maxMessageSize = 1 << 20
    /// Bytes queued for one client (HTTP responses, pongs, close frames and data alike). Above it Hive stops
    /// reading from the client; a client that stays above it for `slowConsumerGrace` is a slow consumer and is
    /// closed (WebSocket: 1008).
    package var maxOutputBuffer = 1 << 20
    /// How long a client's queue may stay above `maxOutputBuffer` before it is closed as a slow consumer.
    package var slowConsumerGrace: TimeAmount = .seconds(5)
    /// A client whose queue is past this many times `maxOutputBuffer` when a message arrives is closed at once,
    /// whatever the grace: with one message, the bound on what one client can cost a worker.
    package static let hardCapFactor = 8
    /// `maxOutputBuffer` × `hardCapFactor`.
    package var maxOutputHardCap: Int {
        let (cap, overflow) = maxOutputBuffer.multipliedReportingOverflow(by: Self.hardCapFactor)
        return overflow ? .max : cap
    }
    /// Request line plus headers; more is answered 431.
    package var maxHeaderSize = 8 * 1024
    /// Request body; more is answered 413.
    package var maxBodySize = 1 << 20
    /// Time a new connection has to deliver its first request head (slowloris guard).
    package var handshakeTimeout: TimeAmount = .seconds(10)
    /// Time an idle HTTP keep-alive connection stays open between requests.
    package var httpIdleTimeout: TimeAmount = .seconds(60)
    /// Time a request body has, from the end of its head, to arrive whole; then 408 and close.
    package var bodyTimeout: TimeAmount = .seconds(30)
    /// Origins besides the server's own host whose pages may open a WebSocket (`*`: all); see `OriginPolicy`.
    package var allowedOrigins: [String] = []
    /// WebSocket ping period; nil disables server pings.
    package var pingInterval: TimeAmount? = .seconds(25)
    /// Time to wait for any frame after a ping before the connection counts as dead.
    package var pongTimeout: TimeAmount = .seconds(10)
    /// Whether permessage-deflate (RFC 7692) is accepted when a client offers it (--compression).
    package var compression = false
    /// Messages shorter than this go uncompressed even to a client that negotiated compression.
    package var compressionMinSize = 256

    package init() {}
}

/// What a worker process is given by the master: its id and the descriptors it inherited.
package struct WorkerConfiguration: Sendable {
    package var workerID: Int
    package var registryFD: Int32
    package var inboxFD: Int32
    package var masterFD: Int32
    /// The sending end of every worker's inbox, indexed by worker id (this worker's own included).
    package var peerFDs: [Int32]
    package var limits: ConnectionLimits
    /// How long a stopping worker waits for its connections before it exits on its own (the master normally kills
    /// it first; this covers a master that is gone).
    package var grace: TimeAmount = .seconds(5)
    /// The Redis subscription worker 0 holds (nil: none).
    package var redis: RedisSubscriber.Configuration?
    /// Channel history (`--history-size`, `--history-ttl`, `--history`); nil: off.
    package var history: ChannelHistory.Rules?
    /// The log file on this worker's fds 1 and 2 (a `--daemon` master's), reopened on SIGHUP; nil: none.
    package var logFile: String?
    /// The key of the HTTP publish API (`HIVE_API_KEY` in the worker's environment, never its argv); nil: off.
    package var apiKey: String?
    /// The key WebSocket handshake tokens must be signed with (nil: no token is asked for).
    package var tokenKey: TokenKey?
    /// A retired process of this worker id still runs and may hand this one its connections (the master sets
    /// `HIVE_WORKER_REPLACES_RETIRED=1`): only then is a hand-over log kept (`HandOverLog`).
    package var replacesRetiredProcess = false

    package init(workerID: Int, registryFD: Int32, inboxFD: Int32, masterFD: Int32, peerFDs: [Int32], limits: ConnectionLimits) {
        self.workerID = workerID
        self.registryFD = registryFD
        self.inboxFD = inboxFD
        self.masterFD = masterFD
        self.peerFDs = peerFDs
        self.limits = limits
    }
}
