import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Where clients connect, and from which source addresses.
struct ConnectTarget: Sendable {
    var host = "127.0.0.1"
    var port = 9501
    var path = "/"
    /// Clients per source address: client i binds 127.0.0.(2 + i / perAddress). Past ~14,000 connections from one
    /// address connect() slows sharply while the kernel hunts for a free ephemeral port (PLATFORM-NOTES.md); each
    /// source address has its own 28,000 ports towards the server's address and port.
    var perAddress = 10_000
    /// Handshakes in flight at once: enough to connect quickly, few enough not to overflow the listen backlog.
    var concurrency = 256
    /// Attempts per client after the first (a refused connect or a 503 under load is retried after 100 ms).
    var retries = 2
    var timeoutSeconds: Int64 = 10
    /// Offer permessage-deflate as Chrome does (`--compression`), and inflate compressed messages.
    var compression = false
    /// With K > 0, client i joins Hive channel `ch<i % K>` at connect (`?channels=ch<i % K>` added to `path`): the
    /// channels scenario's 100 subscribers per channel.
    var channels = 0

    static func channelName(_ k: Int) -> String { "ch\(k)" }

    /// The upgrade path of client `index`.
    func path(forClient index: Int) -> String {
        guard channels > 0 else { return path }
        return path + (path.contains("?") ? "&" : "?") + "channels=" + Self.channelName(index % channels)
    }

    func sourceAddress(forClient index: Int) throws -> SocketAddress {
        let octet = 2 + index / max(1, perAddress)
        guard octet <= 254 else { throw HandshakeError(description: "client \(index) needs source 127.0.0.\(octet)") }
        return try SocketAddress(ipAddress: "127.0.0.\(octet)", port: 0)
    }
}

/// What a connect phase achieved.
struct ConnectSummary: Sendable {
    var channels: [Channel] = []
    var failed = 0
    var retried = 0
    /// The first few distinct failure reasons, for the report.
    var errors: [String] = []
    /// The first few distinct reasons of attempts that were retried (a 503 while a worker restarts, a refused SYN).
    var retryReasons: [String] = []
    var seconds = 0.0
    /// Per connected client, from its first connect attempt to its 101 (retries included): the reconnect storm's
    /// connect times.
    var connectTimes = LatencyHistogram()
}

/// Opens many WebSocket clients with a bounded number of handshakes in flight: `concurrency` lanes, each connecting its
/// share of clients one after another, so connecting 10,000 clients never puts 10,000 SYNs into the server's backlog.
enum ClientPool {
    /// IP_BIND_ADDRESS_NO_PORT (24 in linux/in.h; Glibc does not export it): bind() picks no port, connect() does, so
    /// the port is chosen per (source, destination) pair and a source address is not limited to 28,000 sockets in all.
    static let bindAddressNoPort = ChannelOptions.Types.SocketOption(level: SocketOptionLevel(IPPROTO_IP), name: 24)

    static func connect<B: ClientBehaviour>(
        group: EventLoopGroup,
        target: ConnectTarget,
        clients: Range<Int>,
        makeBehaviour: @escaping @Sendable (EventLoop, Int) -> B
    ) -> ConnectSummary {
        let started = Clock.now()
        let tally = NIOLockedValueBox(ConnectSummary())
        // One request per distinct path (one, or one per channel), shared by every client that uses it.
        let requests = (0..<max(1, target.channels)).map {
            WebSocketClientHandler<B>.request(
                host: target.host, port: target.port, path: target.path(forClient: $0), compression: target.compression)
        }
        let server: SocketAddress
        do {
            server = try SocketAddress(ipAddress: target.host, port: target.port)
        } catch {
            return ConnectSummary(failed: clients.count, errors: ["bad server address: \(error)"])
        }

        @Sendable func attempt(_ index: Int, _ tries: Int, since started: UInt64) -> EventLoopFuture<Void> {
            let loop = group.next()
            let handshake = loop.makePromise(of: Void.self)
            let source: SocketAddress
            do {
                source = try target.sourceAddress(forClient: index)
            } catch {
                handshake.fail(error)
                return record(index, tries, since: started, failure: error)
            }
            return ClientBootstrap(group: loop)
                .channelOption(bindAddressNoPort, value: 1)
                .connectTimeout(.seconds(target.timeoutSeconds))
                .bind(to: source)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = WebSocketClientHandler(
                            behaviour: makeBehaviour(channel.eventLoop, index),
                            request: requests[target.channels > 0 ? index % target.channels : 0],
                            handshake: handshake,
                            seed: UInt32(truncatingIfNeeded: index &* 2_654_435_761 &+ tries)
                        )
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(to: server)
                .flatMap { channel -> EventLoopFuture<Channel> in
                    let timeout = channel.eventLoop.scheduleTask(in: .seconds(target.timeoutSeconds)) {
                        handshake.fail(HandshakeError(description: "no 101 within \(target.timeoutSeconds) s"))
                        channel.close(promise: nil)
                    }
                    return handshake.futureResult.always { _ in timeout.cancel() }.map { channel }
                }
                .flatMap { channel -> EventLoopFuture<Void> in
                    let now = Clock.now()
                    tally.withLockedValue {
                        $0.channels.append(channel)
                        $0.connectTimes.record(sent: started, received: now)
                    }
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
                .flatMapError { error in
                    // A failed connect never reaches the handler: the promise must still be completed (NIO flags
                    // leaked promises), and failing an already-failed promise is a no-op.
                    handshake.fail(error)
                    return record(index, tries, since: started, failure: error)
                }
        }

        @Sendable func record(_ index: Int, _ tries: Int, since started: UInt64, failure: Error) -> EventLoopFuture<Void> {
            let loop = group.next()
            if tries < target.retries {
                let reason = "\(failure)"
                tally.withLockedValue {
                    $0.retried += 1
                    if $0.retryReasons.count < 3 && !$0.retryReasons.contains(reason) { $0.retryReasons.append(reason) }
                }
                return loop.scheduleTask(in: .milliseconds(100)) {}.futureResult.flatMap { attempt(index, tries + 1, since: started) }
            }
            let reason = "\(failure)"
            tally.withLockedValue {
                $0.failed += 1
                if $0.errors.count < 5 && !$0.errors.contains(reason) { $0.errors.append(reason) }
            }
            return loop.makeSucceededVoidFuture()
        }

        @Sendable func lane(_ index: Int, step: Int) -> EventLoopFuture<Void> {
            guard index < clients.upperBound else { return group.next().makeSucceededVoidFuture() }
            return attempt(index, 0, since: Clock.now()).flatMap { lane(index + step, step: step) }
        }

        let lanes = max(1, min(target.concurrency, clients.count))
        let futures = (0..<lanes).map { lane(clients.lowerBound + $0, step: lanes) }
        _ = try? EventLoopFuture.andAllComplete(futures, on: group.next()).wait()
        var summary = tally.withLockedValue { $0 }
        summary.seconds = Double(Clock.now() - started) / 1e9
        return summary
    }
}
