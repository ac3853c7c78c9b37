import HiveIPC
import NIOCore
import NIOEmbedded
import XCTest

@testable import HiveWorker

extension HiveServer {
    /// A connection adopted as `InboxReader.adopt` does (slot reserved and activated, table entry, the worker's
    /// pipeline), on an `EmbeddedChannel` of `loop`, connected; socket -1 makes direct writes fall back to NIO,
    /// another descriptor receives them (what NIO writes still goes to the channel's outbound).
    func adoptTestConnection(on loop: EmbeddedEventLoop, socket: Int32 = -1) throws -> (EmbeddedChannel, ConnectionID) {
        let remote = RemoteAddress(family: .ipv4, bytes: (0, 0x7F00_0001), port: 40000)
        let id = try XCTUnwrap(registry.reserve(worker: 0, remote: remote))
        XCTAssertTrue(registry.activate(id))
        let channel = EmbeddedChannel(loop: loop)
        table.add(id, channel: channel)
        try WorkerPipeline.configure(channel, id: id, socket: socket, hive: self)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9501)).wait()
        return (channel, id)
    }
}
