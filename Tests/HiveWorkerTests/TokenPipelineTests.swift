import HiveIPC
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import TokenTestSupport
import XCTest

@testable import HiveWorker

/// The token check inside the worker's pipeline (`WorkerPipeline.configure` with `HiveServer.tokens` set): the
/// answer to a handshake, and the verified token kept on the session for later subscriptions.
final class TokenPipelineTests: XCTestCase {
    struct Application: HiveApplication {}

    private let loop = EmbeddedEventLoop()

    /// Runs async jwt-kit work (making the verifier, signing) from a synchronous test: the embedded loop must stay
    /// on the test's thread.
    private func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        try MultiThreadedEventLoopGroup.singleton.next().makeFutureWithTask(body).wait()
    }

    private func makeHive() throws -> HiveServer {
        let hive = HiveServer(
            workerID: 0, eventLoop: loop, registry: .heap(capacity: 4, workerCount: 1), limits: ConnectionLimits(),
            application: Application(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        hive.tokens = try blocking { try await TokenVerifier.make(.secret(Array(TokenTestKeys.secret.utf8))) }
        return hive
    }

    /// Sends an upgrade request on a new connection; returns what was written back, the channel and the id.
    private func handshake(_ hive: HiveServer, target: String, headers: String = "") throws
        -> (written: String, channel: EmbeddedChannel, id: ConnectionID)
    {
        let (channel, id) = try hive.adoptTestConnection(on: loop)
        let request = "GET \(target) HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\(headers)\r\n"
        _ = try? channel.writeInbound(ByteBuffer(string: request))
        loop.run()
        var written = ""
        while let out = try channel.readOutbound(as: ByteBuffer.self) { written += String(buffer: out) }
        return (written, channel, id)
    }

    func testNoToken_is401_andNoSessionIsMade() throws {
        let hive = try makeHive()
        let (written, channel, _) = try handshake(hive, target: "/")
        XCTAssertTrue(written.hasPrefix("HTTP/1.1 401 Unauthorized"), written)
        XCTAssertTrue(written.contains("WWW-Authenticate: Bearer realm=\"hive\""), written)
        XCTAssertTrue(hive.table.sessions.isEmpty)
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    func testValidToken_opens_keepsTheClaimsOnTheSession_andTheAPIRefusesOtherChannels() throws {
        let hive = try makeHive()
        let token = try blocking { try await TokenTestKeys.hs256(.init(sub: "alice", channels: ["news"])) }
        let (written, channel, id) = try handshake(hive, target: "/", headers: "Authorization: Bearer \(token)\r\n")
        XCTAssertTrue(written.hasPrefix("HTTP/1.1 101"), written)
        let session = try XCTUnwrap(hive.table.sessions[id])
        XCTAssertEqual(session.connection.token?.subject, "alice")
        XCTAssertNoThrow(try hive.changeSubscriptionHere(id, "news", subscribe: true))
        XCTAssertThrowsError(try hive.changeSubscriptionHere(id, "sport", subscribe: true)) { error in
            let hiveError = error as? HiveError
            XCTAssertEqual(hiveError?.code, .forbidden)
            XCTAssertEqual(hiveError?.connection, id)
            XCTAssertTrue("\(error)".contains("may not join channel sport"), "\(error)")
            XCTAssertTrue("\(error)".contains("user alice"), "\(error)")
        }
        XCTAssertEqual(hive.channelIndex.channels(of: id), ["news"])
        _ = try? channel.finish(acceptAlreadyClosed: true)
        loop.run()
    }

    func testChannelOutsideTheClaim_atConnect_is403() throws {
        let hive = try makeHive()
        let token = try blocking { try await TokenTestKeys.hs256(.init(channels: ["news"])) }
        let (written, channel, _) = try handshake(hive, target: "/?channels=news,sport&token=\(token)")
        XCTAssertTrue(written.hasPrefix("HTTP/1.1 403 Forbidden"), written)
        XCTAssertTrue(written.contains("does not allow channel sport"), written)
        XCTAssertTrue(hive.table.sessions.isEmpty)
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    func testWithoutAKey_connectionsAreAnonymous() throws {
        let hive = try makeHive()
        hive.tokens = nil
        let (written, channel, id) = try handshake(hive, target: "/?channels=sport")
        XCTAssertTrue(written.hasPrefix("HTTP/1.1 101"), written)
        XCTAssertNil(hive.table.sessions[id]?.connection.token)
        XCTAssertEqual(hive.channelIndex.channels(of: id), ["sport"])
        _ = try? channel.finish(acceptAlreadyClosed: true)
        loop.run()
    }
}
