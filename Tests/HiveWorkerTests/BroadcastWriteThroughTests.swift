import Glibc
import HiveIPC
import Logging
import NIOCore
import NIOEmbedded
import XCTest

@testable import HiveWorker

/// A broadcast that comes alone (no deferred flush waiting, the last pass over `burstWindow` ago) is written to
/// each connection in the pass that delivers it, straight to the socket when NIO holds nothing for it; records
/// that arrive together wait for the deferred flush and leave in one write per connection. The sessions here
/// write directly to one end of a socket pair, so a test sees which bytes took the direct path (the pair) and
/// which went through NIO (the embedded channel's outbound).
final class BroadcastWriteThroughTests: XCTestCase {
    struct QuietApplication: HiveApplication {}

    private let loop = EmbeddedEventLoop()
    private var descriptors: [Int32] = []

    override func tearDown() {
        for descriptor in descriptors { close(descriptor) }
        descriptors = []
    }

    private func makeHive() -> HiveServer {
        HiveServer(
            workerID: 0, eventLoop: loop, registry: .heap(capacity: 4, workerCount: 1), limits: ConnectionLimits(),
            application: QuietApplication(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
    }

    /// An established WebSocket whose direct writes go to a socket pair (returned: the end to read them from),
    /// its 101 read.
    private func establish(_ hive: HiveServer) throws -> (channel: EmbeddedChannel, peer: Int32, id: ConnectionID) {
        var pair: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        descriptors += pair
        let (channel, id) = try hive.adoptTestConnection(on: loop, socket: pair[0])
        try channel.writeInbound(ByteBuffer(string: "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
            + "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
        loop.run()
        _ = try outbound(channel)
        return (channel, pair[1], id)
    }

    /// What NIO wrote, write by write.
    private func outbound(_ channel: EmbeddedChannel) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { out.append(Array(buffer.readableBytesView)) }
        return out
    }

    /// What was written directly to the socket.
    private func direct(_ peer: Int32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = recv(peer, &bytes, bytes.count, Int32(MSG_DONTWAIT))
        return n > 0 ? Array(bytes[..<n]) : []
    }

    private func frame(_ text: String) -> [UInt8] { [0x81, UInt8(text.utf8.count)] + Array(text.utf8) }

    private func finish(_ channels: [EmbeddedChannel]) throws {
        for channel in channels { _ = try channel.finish(acceptAlreadyClosed: true) }
        loop.run()
    }

    func testWritesThrough_onlyWhenNoFlushWaits_andTheLastPassEndedOverTheWindowAgo() {
        let hive = makeHive()
        let window = HiveServer.burstWindow
        hive.table.lastPassEndedAt = 10 * window
        XCTAssertFalse(hive.writesThrough(at: 10 * window + window / 2), "within the window after the last pass")
        XCTAssertTrue(hive.writesThrough(at: 11 * window))
        hive.table.flushScheduled = true
        XCTAssertFalse(hive.writesThrough(at: 20 * window), "a deferred flush is waiting")
    }

    func testABroadcastAlone_goesStraightToEverySocketInItsPass_twoTogetherLeaveInOneWriteAfterTheFlush() throws {
        let hive = makeHive()
        let connections = try (0..<2).map { _ in try establish(hive) }
        hive.table.lastPassEndedAt = 0  // long ago

        hive.deliver([.broadcast(frames: frame("one"), messages: 1)])
        XCTAssertFalse(hive.table.flushScheduled)
        for connection in connections {
            XCTAssertEqual(direct(connection.peer), frame("one"), "written to the socket before the loop ran")
            XCTAssertEqual(try outbound(connection.channel), [], "nothing through NIO")
        }
        XCTAssertEqual(hive.registry.worker(0, .messagesOut).load(ordering: .relaxed), 2)

        hive.table.lastPassEndedAt = 0
        hive.deliver([.broadcast(frames: frame("two"), messages: 1), .broadcast(frames: frame("three"), messages: 1)])
        XCTAssertTrue(hive.table.flushScheduled)
        for connection in connections { XCTAssertEqual(direct(connection.peer), [], "waits for the deferred flush") }
        loop.run()
        for connection in connections {
            XCTAssertEqual(direct(connection.peer), frame("two") + frame("three"), "one write, after the flush")
        }
        XCTAssertFalse(hive.table.flushScheduled)
        try finish(connections.map(\.channel))
    }

    func testBytesNIOHolds_keepTheBroadcastBehindThem_thenTheSocketIsWrittenDirectlyAgain() throws {
        let hive = makeHive()
        let connection = try establish(hive)
        let session = try XCTUnwrap(hive.table.sessions[connection.id])
        // A frame NIO has not written yet (no flush): a direct write now would overtake it.
        session.frameHandler.write(ByteBuffer(bytes: frame("held")), promise: nil)
        hive.table.lastPassEndedAt = 0

        hive.deliver([.broadcast(frames: frame("after"), messages: 1)])
        XCTAssertEqual(direct(connection.peer), [], "not past the held frame")
        XCTAssertEqual(try outbound(connection.channel), [frame("held"), frame("after")], "behind it, through NIO")

        hive.table.lastPassEndedAt = 0
        hive.deliver([.broadcast(frames: frame("next"), messages: 1)])
        XCTAssertEqual(direct(connection.peer), frame("next"), "NIO holds nothing again: straight to the socket")
        try finish([connection.channel])
    }

    func testSessionsThatCameAndWentSinceTheLastPass_areWrittenOrLeftAlone_andAClosedOneNeverDirectly() throws {
        let hive = makeHive()
        let first = try establish(hive)
        hive.table.lastPassEndedAt = 0
        hive.deliver([.broadcast(frames: frame("a"), messages: 1)])
        XCTAssertEqual(direct(first.peer), frame("a"))

        let second = try establish(hive)
        try first.channel.close().wait()
        loop.run()
        XCTAssertNil(hive.table.sessions[first.id])
        hive.table.lastPassEndedAt = 0
        hive.deliver([.broadcast(frames: frame("b"), messages: 1)])
        XCTAssertEqual(direct(second.peer), frame("b"), "the session that came since")
        XCTAssertFalse(direct(first.peer).contains(frame("b")[2]), "nothing to the closed one's descriptor")
        try finish([second.channel])
    }

    /// The sessions of a pass, in descriptor order (the order they were established here).
    private func establishPassOf(_ count: Int, chunk: Int, _ hive: HiveServer) throws -> [(channel: EmbeddedChannel, peer: Int32, id: ConnectionID)] {
        hive.table.passChunk = chunk
        let connections = try (0..<count).map { _ in try establish(hive) }
        hive.table.lastPassEndedAt = 0
        return connections
    }

    func testAPass_writesAChunkOfSessions_thenTheRestAfterTheLoopPolled() throws {
        let hive = makeHive()
        let connections = try establishPassOf(3, chunk: 1, hive)

        hive.deliver([.broadcast(frames: frame("one"), messages: 1)])
        XCTAssertEqual(direct(connections[0].peer), frame("one"), "the first chunk at once")
        XCTAssertEqual(direct(connections[1].peer), [], "the next after the pause")
        XCTAssertFalse(hive.table.sessions[connections[1].id]!.isFlushed, "a hand-over waits for the pass")
        loop.advanceTime(by: HiveServer.passPause)
        XCTAssertEqual(direct(connections[1].peer), frame("one"))
        loop.advanceTime(by: HiveServer.passPause)
        XCTAssertEqual(direct(connections[2].peer), frame("one"))
        XCTAssertNil(hive.table.throughPass)
        XCTAssertEqual(hive.registry.worker(0, .messagesOut).load(ordering: .relaxed), 3)
        for connection in connections { XCTAssertEqual(try outbound(connection.channel), [], "nothing through NIO") }
        try finish(connections.map(\.channel))
    }

    func testABroadcastArrivingDuringAPass_endsIt_theSessionsNotReachedGetBothInOneWrite() throws {
        let hive = makeHive()
        let connections = try establishPassOf(3, chunk: 1, hive)

        hive.deliver([.broadcast(frames: frame("one"), messages: 1)])
        hive.deliver([.broadcast(frames: frame("two"), messages: 1)])
        XCTAssertNil(hive.table.throughPass, "the second ended the pass")
        XCTAssertTrue(hive.table.flushScheduled)
        loop.run()
        loop.advanceTime(by: HiveServer.passPause)  // the pass's continuation finds it over
        XCTAssertEqual(direct(connections[0].peer), frame("one") + frame("two"))
        for connection in connections[1...] {
            XCTAssertEqual(direct(connection.peer), frame("one") + frame("two"), "in order, in one write")
        }
        XCTAssertEqual(hive.registry.worker(0, .messagesOut).load(ordering: .relaxed), 6)
        try finish(connections.map(\.channel))
    }

    func testAPushDuringAPass_followsTheBroadcastOnASessionThePassHadNotReached() throws {
        let hive = makeHive()
        let connections = try establishPassOf(3, chunk: 1, hive)

        hive.deliver([.broadcast(frames: frame("one"), messages: 1)])
        hive.deliver(.push(connections[2].id, opcode: 1, payload: Array("p".utf8)))
        XCTAssertEqual(direct(connections[2].peer), frame("one") + frame("p"), "the broadcast first")
        loop.run()
        loop.advanceTime(by: HiveServer.passPause)
        XCTAssertEqual(direct(connections[0].peer), frame("one"))
        XCTAssertEqual(direct(connections[1].peer), frame("one"), "queued when the pass ended, flushed after")
        XCTAssertFalse(hive.table.flushScheduled)
        XCTAssertNil(hive.table.throughPass)
        try finish(connections.map(\.channel))
    }
}
