import Glibc
import XCTest

@testable import HiveIPC

final class RecordChannelTests: XCTestCase {
    private var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IPCMessage.maxRecordSize, alignment: 8)

    override func tearDown() { buffer.deallocate() }

    func testEveryMessageKind_roundTrips() throws {
        let (a, b) = try RecordChannel.pair(while: "testing")
        defer { a.close(); b.close() }
        let id = ConnectionID(generation: 3, worker: 1, slot: 9)
        let messages: [IPCMessage] = [
            .push(id, opcode: 1, payload: Array("hi".utf8)),
            .broadcast(frames: [0x82, 2, 1, 255], messages: 1),
            .disconnect(id, code: 1008, reason: "bye"),
            .ready(worker: 3, pid: 4242),
            .retire,
            .retired(worker: 2, pid: 77),
            .healthCheck(sequence: 0x0123_4567_89AB_CDEF),
            .healthy(worker: 5, pid: 31337, sequence: UInt64.max - 1),
        ]
        for message in messages {
            XCTAssertEqual(try a.send(message, blocking: false), .sent)
            let received = try XCTUnwrap(try b.receive(blocking: true, buffer: buffer))
            XCTAssertEqual(received.0, message)
            XCTAssertEqual(received.descriptor, -1)
        }
    }

    func testConnection_passesAWorkingDescriptorWithSCMRights() throws {
        let (a, b) = try RecordChannel.pair(while: "testing")
        defer { a.close(); b.close() }
        var pipeFDs: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&pipeFDs), 0)
        let id = ConnectionID(generation: 1, worker: 0, slot: 1)
        XCTAssertEqual(try a.send(.connection(id), attach: pipeFDs[1], blocking: false), .sent)
        close(pipeFDs[1])
        let (message, fd) = try XCTUnwrap(try b.receive(blocking: true, buffer: buffer))
        XCTAssertEqual(message, .connection(id))
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC, "received descriptors are close-on-exec")
        XCTAssertEqual(write(fd, "x", 1), 1)
        close(fd)
        var byte: UInt8 = 0
        XCTAssertEqual(read(pipeFDs[0], &byte, 1), 1)
        XCTAssertEqual(byte, UInt8(ascii: "x"))
        close(pipeFDs[0])
    }

    func testLargePayload_travelsInAMemfdIntact() throws {
        let (a, b) = try RecordChannel.pair(while: "testing")
        defer { a.close(); b.close() }
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        XCTAssertEqual(try a.send(.broadcast(frames: payload, messages: 1), blocking: false), .sent)
        let (message, fd) = try XCTUnwrap(try b.receive(blocking: true, buffer: buffer))
        XCTAssertEqual(fd, -1)
        XCTAssertEqual(message, .broadcast(frames: payload, messages: 1))
    }

    func testNonBlockingSend_whenTheInboxIsFull_saysWouldBlock() throws {
        let (a, b) = try RecordChannel.pair(while: "testing")
        defer { a.close(); b.close() }
        let payload = [UInt8](repeating: 7, count: 32 * 1024)
        var results: [RecordChannel.SendResult] = []
        for _ in 0..<10_000 {
            let result = try a.send(.broadcast(frames: payload, messages: 1), blocking: false)
            results.append(result)
            if result == .wouldBlock { break }
        }
        XCTAssertEqual(results.last, .wouldBlock)
    }

    func testNonBlockingReceive_onAnEmptyInbox_returnsNil() throws {
        let (a, b) = try RecordChannel.pair(while: "testing")
        defer { a.close(); b.close() }
        XCTAssertNil(try b.receive(blocking: false, buffer: buffer))
    }

    func testGarbageRecord_isAnErrorNotACrash() throws {
        let (a, b) = try RecordChannel.pair(while: "testing")
        defer { a.close(); b.close() }
        var junk: [UInt8] = [99, 1, 2]
        XCTAssertEqual(send(a.fd, &junk, junk.count, 0), 3)
        XCTAssertThrowsError(try b.receive(blocking: true, buffer: buffer))
        var truncated: [UInt8] = [IPCMessage.Kind.push.rawValue, 0]
        XCTAssertEqual(send(a.fd, &truncated, truncated.count, 0), 2)
        XCTAssertThrowsError(try b.receive(blocking: true, buffer: buffer))
    }

    /// Found by the fuzz-ipc target: a worker id or message count above Int.max trapped in the decoder
    /// ("Not enough bits to represent the passed value") instead of failing the record.
    func testRecordWithAWordAboveIntMax_isAnErrorNotACrash() {
        let huge: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0x80]
        let records: [[UInt8]] = [
            [IPCMessage.Kind.ready.rawValue] + huge + [1, 0, 0, 0, 0, 0, 0, 0],
            [IPCMessage.Kind.retired.rawValue] + huge + [1, 0, 0, 0, 0, 0, 0, 0],
            [IPCMessage.Kind.broadcast.rawValue, 0] + huge + [0x81, 0],
            // Found again by fuzz-ipc once the health answer existed: its worker id trapped the same way.
            [IPCMessage.Kind.healthy.rawValue] + huge + [1, 0, 0, 0, 0, 0, 0, 0] + [7, 0, 0, 0, 0, 0, 0, 0],
        ]
        for record in records {
            XCTAssertThrowsError(try record.withUnsafeBytes { try IPCCodec.decode($0, external: nil) }, "\(record)") {
                XCTAssertTrue("\($0)".contains("out of range"), "\($0)")
            }
        }
    }

    /// Found by the fuzz-ipc target: a reason longer than the 123 bytes a record keeps was cut inside a
    /// character, which the receiver decoded as U+FFFD.
    func testDisconnectReason_isCutOnACharacterBoundary() throws {
        let id = ConnectionID(generation: 1, worker: 0, slot: 1)
        let reason = String(repeating: "a", count: 122) + "\u{E9}tait"
        let encoded = IPCCodec.encode(.disconnect(id, code: 1000, reason: reason), payloadInline: true)
        let decoded = try encoded.withUnsafeBytes { try IPCCodec.decode($0, external: nil) }
        XCTAssertEqual(decoded, .disconnect(id, code: 1000, reason: String(repeating: "a", count: 122)))
    }
}

final class RecordChannelDescriptorLimitTests: XCTestCase {
    /// A receiver at its open-file limit still learns which connection it lost, instead of a bare error that
    /// would leave the connection's slot reserved forever.
    func testReceive_whenOutOfDescriptors_reportsTheLostConnection() throws {
        let (a, b) = try RecordChannel.pair(while: "testing")
        defer { a.close(); b.close() }
        var pipeFDs: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&pipeFDs), 0)
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        let id = ConnectionID(generation: 9, worker: 0, slot: 4)
        XCTAssertEqual(try a.send(.connection(id), attach: pipeFDs[1], blocking: false), .sent)

        var saved = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
        let lowestFree = dup(0)
        close(lowestFree)
        var limited = saved
        limited.rlim_cur = rlim_t(lowestFree)
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limited), 0)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IPCMessage.maxRecordSize, alignment: 8)
        defer { buffer.deallocate() }
        var lost: RecordChannel.DescriptorLost?
        do {
            _ = try b.receive(blocking: true, buffer: buffer)
        } catch let error as RecordChannel.DescriptorLost {
            lost = error
        } catch {}
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
        XCTAssertEqual(lost?.message, .connection(id))
        XCTAssertTrue(lost?.description.contains("open-file limit") ?? false)
    }
}
