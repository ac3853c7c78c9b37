import Glibc
import XCTest

@testable import HiveIPC

/// The reload hand-over's records: the state layout, its version check, and the records with the socket.
final class HandOverRecordTests: XCTestCase {
    private var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IPCMessage.maxRecordSize, alignment: 8)

    override func tearDown() { buffer.deallocate() }

    private let full = HandOverState(
        path: "/echo", deflateWindowBits: 15, partialKind: .text, partialCompressed: false,
        partialMessage: Array("héllo, wor".utf8), frameLeftover: [0x81, 0x85, 1, 2, 3],
        nextPingIn: 12_345_678, pongDeadlineIn: nil, channels: ["news", "room.42", "sport"], envelopes: true,
        positions: ["news": .init(epoch: "m3k9x2a", offset: 41), "sport": .init(epoch: "A1", offset: UInt64.max)],
        token: .init(subject: "alice", channels: ["news", "room.42", "*"], expiresAt: 1_900_000_000.5)
    )

    func testState_roundTripsEveryField() throws {
        XCTAssertEqual(try HandOverState(decoding: full.encoded()), full)
        let empty = HandOverState(path: "/")
        XCTAssertEqual(try HandOverState(decoding: empty.encoded()), empty)
    }

    func testState_roundTripsEnvelopesPositionsAndEveryShapeOfToken() throws {
        let shapes: [HandOverState.Token?] = [
            nil,
            .init(subject: "bob", channels: nil, expiresAt: nil),
            .init(subject: "b", channels: [], expiresAt: 0),
            .init(subject: String(repeating: "é", count: 32), channels: ["*"], expiresAt: -5),
        ]
        for token in shapes {
            for envelopes in [false, true] {
                var state = full
                state.token = token
                state.envelopes = envelopes
                if !envelopes { state.positions = [:] }  // positions travel with envelopes only
                XCTAssertEqual(try HandOverState(decoding: state.encoded()), state, "\(String(describing: token)) \(envelopes)")
            }
        }
        // An enveloped connection with no position yet in a channel (nothing positioned has reached it).
        var fresh = HandOverState(path: "/", channels: ["news"], envelopes: true)
        XCTAssertEqual(try HandOverState(decoding: fresh.encoded()), fresh)
        fresh.envelopes = false
        XCTAssertEqual(try HandOverState(decoding: fresh.encoded()).envelopes, false)
    }

    /// Fields checked against their own limits: what the replacement builds from them is what the old process had.
    func testState_withAFieldOutsideItsLimits_isRefusedNamingTheField() {
        func refused(_ state: HandOverState, _ field: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try HandOverState(decoding: state.encoded()), file: file, line: line) {
                XCTAssertEqual($0 as? HandOverState.DecodeError, .invalid(field: field), file: file, line: line)
            }
        }
        var state = full
        state.positions["news"] = .init(epoch: "not-alnum", offset: 1)
        refused(state, "epoch")
        state = full
        state.token?.subject = ""
        refused(state, "token subject")
        state.token?.subject = "bad\u{1}subject"
        refused(state, "token subject")
        state = full
        state.token?.channels = ["fine", "not a channel"]
        refused(state, "token channel")
        state = full
        state.token?.expiresAt = .nan
        refused(state, "token expiry")
        state = full
        state.channels = ["news", "news"]
        refused(state, "channel name (listed twice)")

        var bytes = full.encoded()
        bytes[3] |= 0x80  // an unknown flag
        XCTAssertThrowsError(try HandOverState(decoding: bytes)) {
            XCTAssertEqual($0 as? HandOverState.DecodeError, .invalid(field: "flags"))
        }
        bytes = HandOverState(path: "/").encoded()
        bytes[3] = 0x08  // an expiry without a token
        XCTAssertThrowsError(try HandOverState(decoding: bytes)) {
            XCTAssertEqual($0 as? HandOverState.DecodeError, .invalid(field: "flags"))
        }
        XCTAssertThrowsError(try HandOverState(decoding: full.encoded() + [0])) {
            XCTAssertEqual($0 as? HandOverState.DecodeError, .invalid(field: "length (bytes after the last field)"))
        }
    }

    func testMaxSize_leavesRoomForAFrameAndAFragmentedMessageOfTheLargestSize() {
        let limit = 1 << 20
        let state = HandOverState(
            path: "/", partialKind: .binary, partialMessage: Array(repeating: 1, count: limit),
            frameLeftover: Array(repeating: 2, count: limit + 14), channels: (0..<64).map { "channel.\($0)" },
            token: .init(subject: String(repeating: "s", count: 64), channels: (0..<1000).map { "c\($0)" }, expiresAt: 1)
        )
        XCTAssertLessThanOrEqual(state.encoded().count, HandOverState.maxSize(maxMessageSize: limit))
    }

    func testState_ofAnotherVersion_isRefusedByItsVersionAlone() {
        var bytes = full.encoded(version: HandOverState.version + 1)
        XCTAssertEqual(HandOverState.version(of: bytes), HandOverState.version + 1)
        XCTAssertThrowsError(try HandOverState(decoding: bytes)) {
            XCTAssertEqual($0 as? HandOverState.DecodeError, .unsupportedVersion(HandOverState.version + 1))
        }
        bytes = Array(bytes.prefix(2))  // whatever follows is not read
        XCTAssertThrowsError(try HandOverState(decoding: bytes)) {
            XCTAssertEqual($0 as? HandOverState.DecodeError, .unsupportedVersion(HandOverState.version + 1))
        }
    }

    func testState_cutAnywhere_failsAsTruncatedNeverTraps() {
        let bytes = full.encoded()
        for length in 0..<bytes.count {
            XCTAssertThrowsError(try HandOverState(decoding: Array(bytes.prefix(length))), "cut at \(length)")
        }
    }

    func testState_withABadChannelName_isRefused() {
        var state = full
        state.channels = ["bad name"]
        XCTAssertThrowsError(try HandOverState(decoding: state.encoded())) {
            XCTAssertEqual($0 as? HandOverState.DecodeError, .invalid(field: "channel name"))
        }
    }

    func testHandOverRecord_carriesTheSocketTheAddresseeAndTheState() throws {
        let (a, b) = try RecordChannel.pair(while: "testing")
        defer { a.close(); b.close() }
        var pipeFDs: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&pipeFDs), 0)
        defer { close(pipeFDs[0]) }
        let id = ConnectionID(generation: 7, worker: 1, slot: 300)
        let state = full.encoded()
        XCTAssertEqual(try a.send(.handOverChunk(id, state: Array(state.prefix(4))), blocking: false), .sent)
        XCTAssertEqual(try a.send(.handOver(id, to: 4242, state: Array(state.dropFirst(4))), attach: pipeFDs[1], blocking: false), .sent)
        close(pipeFDs[1])
        let (chunk, none) = try XCTUnwrap(try b.receive(blocking: true, buffer: buffer))
        XCTAssertEqual(chunk, .handOverChunk(id, state: Array(state.prefix(4))))
        XCTAssertEqual(none, -1)
        let (record, fd) = try XCTUnwrap(try b.receive(blocking: true, buffer: buffer))
        XCTAssertEqual(record, .handOver(id, to: 4242, state: Array(state.dropFirst(4))))
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(write(fd, "x", 1), 1, "the descriptor is the socket that was sent")
        close(fd)
    }

    func testHandOverRecord_withoutItsSocket_isRefused() throws {
        let (a, b) = try RecordChannel.pair(while: "testing")
        defer { a.close(); b.close() }
        XCTAssertEqual(try a.send(.handOver(ConnectionID(rawValue: 1), to: 1, state: []), blocking: false), .sent)
        XCTAssertThrowsError(try b.receive(blocking: true, buffer: buffer))
    }

    func testTakeOver_isTheAcknowledgementTheRetiredProcessWaitsFor() throws {
        let registry = SharedRegistry.heap(capacity: 4, workerCount: 2)
        let id = try XCTUnwrap(registry.reserve(worker: 1, remote: .unknown))
        XCTAssertTrue(registry.activate(id, pid: 100))
        XCTAssertEqual(registry.handOverProgress(of: id, from: 100), .inTransit)
        XCTAssertTrue(registry.takeOver(id, pid: 200))
        XCTAssertEqual(registry.handOverProgress(of: id, from: 100), .adopted(by: 200))
        registry.refuseHandOver(id)
        XCTAssertEqual(registry.handOverProgress(of: id, from: 100), .refused)
        registry.free(id)
        XCTAssertEqual(registry.handOverProgress(of: id, from: 100), .gone)
        XCTAssertFalse(registry.takeOver(id, pid: 200), "a stale id is not taken over")
    }
}
