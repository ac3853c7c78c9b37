import ArgumentParser
import HiveWorker
import NIOCore

/// Options that shape each connection. `start` takes them and forwards them, unchanged, to every worker.
struct LimitOptions: ParsableArguments {
    @Option(help: "Largest WebSocket message a client may send, in bytes; more is closed with 1009.")
    var maxMessageSize: Int = 1 << 20

    @Option(help: "Bytes queued for one client; above it Hive stops reading from the client, and closes it (1008) when it stays above for --slow-consumer-grace or reaches 8 times this.")
    var maxOutputBuffer: Int = 1 << 20

    @Option(help: "Seconds a client's queue may stay above --max-output-buffer before it is closed as a slow consumer.")
    var slowConsumerGrace: Double = 5

    @Option(help: "Largest request line plus headers, in bytes; more is answered 431.")
    var maxHeaderSize: Int = 8 * 1024

    @Option(help: "Largest HTTP request body, in bytes; more is answered 413.")
    var maxBodySize: Int = 1 << 20

    @Option(help: "Seconds a new connection has to send its first request head.")
    var handshakeTimeout: Double = 10

    @Option(help: "Seconds an idle HTTP keep-alive connection stays open.")
    var httpIdleTimeout: Double = 60

    @Option(help: "Seconds a request body has, from the end of its head, to arrive whole; then 408 and close.")
    var bodyTimeout: Double = 30

    @Option(
        name: .customLong("allowed-origin"),
        help: ArgumentHelp(
            "An origin (scheme://host[:port]) whose pages may open a WebSocket besides the server's own host.",
            discussion: "Repeatable; \"*\" allows every origin, \"null\" sandboxed pages and files."))
    var allowedOrigins: [String] = []

    @Option(help: "Seconds between WebSocket pings (0 disables them).")
    var pingInterval: Double = 25

    @Option(help: "Seconds to wait for any frame after a ping before closing the connection.")
    var pongTimeout: Double = 10

    @Option(help: "permessage-deflate (RFC 7692) for clients that offer it: on or off.")
    var compression: String = "off"

    @Option(help: "Messages shorter than this many bytes are sent uncompressed even with --compression on.")
    var compressionMinSize: Int = 256

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        for (name, value) in [
            ("--max-message-size", maxMessageSize), ("--max-output-buffer", maxOutputBuffer),
            ("--max-header-size", maxHeaderSize), ("--max-body-size", maxBodySize),
        ] where value <= 0 {
            throw ValidationError("\(name) must be a positive number of bytes, got \(value)")
        }
        if maxMessageSize > Int(UInt32.max) {
            throw ValidationError("--max-message-size must be at most \(UInt32.max) bytes, got \(maxMessageSize)")
        }
        for (name, value) in [
            ("--handshake-timeout", handshakeTimeout), ("--http-idle-timeout", httpIdleTimeout),
            ("--pong-timeout", pongTimeout), ("--slow-consumer-grace", slowConsumerGrace),
            ("--body-timeout", bodyTimeout),
        ] where !(value > 0) {
            throw ValidationError("\(name) must be a positive number of seconds, got \(value)")
        }
        if let problem = allowedOrigins.lazy.compactMap(OriginPolicy.problem(with:)).first {
            throw ValidationError(problem)
        }
        if !(pingInterval >= 0) { throw ValidationError("--ping-interval must be 0 or more seconds, got \(pingInterval)") }
        if compression != "on" && compression != "off" {
            throw ValidationError("--compression must be on or off, got \"\(compression.prefix(100))\"")
        }
        if compressionMinSize < 0 {
            throw ValidationError("--compression-min-size must be 0 or more bytes, got \(compressionMinSize)")
        }
        if LogLevelParser.parse(logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical; got \"\(logLevel)\"")
        }
    }

    var limits: ConnectionLimits {
        var limits = ConnectionLimits()
        limits.maxMessageSize = maxMessageSize
        limits.maxOutputBuffer = maxOutputBuffer
        limits.slowConsumerGrace = .seconds(slowConsumerGrace)
        limits.maxHeaderSize = maxHeaderSize
        limits.maxBodySize = maxBodySize
        limits.handshakeTimeout = .seconds(handshakeTimeout)
        limits.httpIdleTimeout = .seconds(httpIdleTimeout)
        limits.bodyTimeout = .seconds(bodyTimeout)
        limits.allowedOrigins = allowedOrigins
        limits.pingInterval = pingInterval > 0 ? .seconds(pingInterval) : nil
        limits.pongTimeout = .seconds(pongTimeout)
        limits.compression = compression == "on"
        limits.compressionMinSize = compressionMinSize
        return limits
    }

    /// The same options as command-line arguments, for the worker processes.
    var arguments: [String] {
        [
            "--max-message-size", String(maxMessageSize), "--max-output-buffer", String(maxOutputBuffer),
            "--slow-consumer-grace", String(slowConsumerGrace),
            "--max-header-size", String(maxHeaderSize), "--max-body-size", String(maxBodySize),
            "--handshake-timeout", String(handshakeTimeout), "--http-idle-timeout", String(httpIdleTimeout),
            "--ping-interval", String(pingInterval), "--pong-timeout", String(pongTimeout),
            "--body-timeout", String(bodyTimeout),
            "--compression", compression, "--compression-min-size", String(compressionMinSize),
            "--log-level", logLevel,
        ] + allowedOrigins.flatMap { ["--allowed-origin", $0] }
    }
}

extension TimeAmount {
    static func seconds(_ seconds: Double) -> TimeAmount { .nanoseconds(Int64(seconds * 1e9)) }
}
