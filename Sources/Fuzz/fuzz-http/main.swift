// libFuzzer target: bytes a client sends on a new connection, through the worker's real pipeline
// (`WorkerPipeline.configure`: Hive's fast-path parser, from its first hand-over NIO's HTTP/1.1 decoder and Hive's
// WebSocket upgrader, `HTTPRequestHandler` with the response bytes Hive writes itself (`HTTPResponseBytes`), and
// after an upgrade the `WebSocketFrameHandler` and `WebSocketSession`) on an embedded channel, with a registry on the
// heap.
//
// Input: [max read size][options][bytes from the client]. options bit 0: small limits (256-byte headers, 64-byte
// bodies, 125-byte messages) instead of the defaults.
//
// Beyond "never crash, never trap" it checks that the connection's registry slot is free and the worker's
// connection table empty once the channel is gone, and that whatever was written starts as an HTTP response.
import HTTPTypes
import HiveFuzzSupport
import HiveIPC
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1

@testable import HiveWorker

/// Answers every request with what it received, refuses upgrades on /no-ws, throws on /throw, and echoes WebSocket
/// messages with `push`: the application hooks the pipeline calls, each taking its real path.
struct EchoApplication: HiveApplication {
    func shouldUpgrade(path: String) -> Bool { path != "/no-ws" }

    func request(_ request: HiveRequest, hive: HiveServer) throws -> HiveResponse {
        struct Refused: Error {}
        if request.path == "/throw" { throw Refused() }
        let echoed = "\(request.method) \(request.uri) \(request.headerFields.count) headers \(request.body.count) bytes\n"
        return HiveResponse(headerFields: [echo: String(request.uri.prefix(64))], body: Array(echoed.utf8))
    }

    func message(_ message: HiveMessage, from connection: HiveConnection, hive: HiveServer) async throws {
        try await hive.push(connection.id, message)
    }
}

let echo = HTTPField.Name("X-Echo")!
let loop = EmbeddedEventLoop()

func makeHive(small: Bool) -> HiveServer {
    var limits = ConnectionLimits()
    if small {
        limits.maxHeaderSize = 256
        limits.maxBodySize = 64
        limits.maxMessageSize = 125
    }
    return HiveServer(
        workerID: 0, eventLoop: loop, registry: .heap(capacity: 1, workerCount: 1), limits: limits,
        application: EchoApplication(), logger: Logger(label: "fuzz-http", factory: { _ in SwiftLogNoOpLogHandler() })
    )
}

let hives = [makeHive(small: false), makeHive(small: true)]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let input = FuzzInput(data, size, headerBytes: 1) else { return 0 }
    let hive = hives[Int(input.options[0] & 0x01)]
    let remote = RemoteAddress(family: .ipv4, bytes: (0, 0x7F00_0001), port: 40000)
    guard let id = hive.registry.reserve(worker: 0, remote: remote) else {
        fuzzCheck(false, "the previous connection's registry slot was never freed")
        return 0
    }
    fuzzCheck(hive.registry.activate(id), "a reserved slot cannot be activated")

    let channel = EmbeddedChannel(loop: loop)
    hive.table.add(id, channel: channel)
    // Socket -1: the session's direct writes fail with EBADF and fall back to NIO's write path, as on EAGAIN.
    try! WorkerPipeline.configure(channel, id: id, socket: -1, hive: hive)
    try! channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9501)).wait()

    var written = ByteBuffer()
    for read in input.reads() where channel.isActive {
        // An error that leaves the pipeline is what NIO would log for a real channel; the connection goes on.
        _ = try? channel.writeInbound(read)
        loop.run()
        while let out = try? channel.readOutbound(as: ByteBuffer.self) { written.writeImmutableBuffer(out) }
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
    loop.run()

    fuzzCheck(hive.registry.protocolState(of: id) == nil, "connection \(id) is still in the registry after its close")
    fuzzCheck(hive.table.isEmpty, "the connection table still holds \(id)")
    if written.readableBytes > 0 {
        fuzzCheck(written.readableBytesView.starts(with: Array("HTTP/1.".utf8)), "the first bytes written are not HTTP")
    }
    return 0
}

runFuzzer(fuzzHTTP)
