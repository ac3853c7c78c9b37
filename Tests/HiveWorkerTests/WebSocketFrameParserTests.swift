import NIOCore
import NIOWebSocket
import XCTest

@testable import HiveWorker

final class WebSocketFrameParserTests: XCTestCase {
    /// A client streaming frames that never line up with reads leaves part of a frame after every read. The bytes
    /// kept between reads must stay about one frame and one read long, however long the stream runs.
    func testBufferedBytes_whenEveryReadEndsInsideAFrame_stayBounded() throws {
        var parser = WebSocketFrameParser(maxFrameSize: 1 << 20)
        var stream = ByteBuffer()
        for index in 0..<2_000 {
            var frame = serialize(clientFrame(.binary, Array(repeating: UInt8(index % 251), count: 1_000)))
            stream.writeBuffer(&frame)
        }
        var frames = 0
        var largestCapacity = 0
        // Reads of 1,500 bytes: each one ends in the middle of a frame.
        while let read = stream.readSlice(length: min(1_500, stream.readableBytes)), read.readableBytes > 0 {
            parser.append(read)
            while let frame = try parser.next() {
                XCTAssertEqual(frame.length, 1_000)
                frames += 1
            }
            largestCapacity = max(largestCapacity, parser.bufferedCapacity)
        }
        XCTAssertEqual(frames, 2_000)
        XCTAssertEqual(parser.bufferedCapacity, 0, "nothing kept once the stream ends on a frame boundary")
        XCTAssertLessThan(largestCapacity, 8_192, "kept bytes grew with the stream")
    }

    /// Frames of every length encoding (7-bit, 16-bit, 64-bit), masked and unmasked, cut at arbitrary points:
    /// each comes out once, whole, in order.
    func testFrames_cutAtArbitraryPoints_comeOutWholeAndInOrder() throws {
        var random = SplitMix64(seed: 6455)
        var stream = ByteBuffer()
        var expected: [[UInt8]] = []
        for index in 0..<90 {
            let length = [0, 1, 125, 126, 127, 1_000, 65_535, 65_536, 70_000][index % 9]
            let seed = random.next()
            let payload = (0..<UInt64(length)).map { UInt8(truncatingIfNeeded: seed &+ $0 &* 0x9E37) }
            expected.append(payload)
            var frame = serialize(clientFrame(.binary, payload, masked: index % 3 != 0))
            stream.writeBuffer(&frame)
        }
        var parser = WebSocketFrameParser(maxFrameSize: 1 << 20)
        var received: [[UInt8]] = []
        while stream.readableBytes > 0 {
            let cut = Int(random.next() % 9_000) + 1
            parser.append(stream.readSlice(length: min(cut, stream.readableBytes))!)
            while let frame = try parser.next() {
                var data = frame.data
                if let key = frame.maskKey { data.webSocketUnmask(key) }
                received.append(Array(data.readableBytesView))
            }
        }
        XCTAssertEqual(received.count, expected.count)
        XCTAssertTrue(received == expected, "a frame came out changed, split or out of order")
        XCTAssertEqual(parser.bufferedCapacity, 0)
    }

    func testNext_afterAnError_returnsNothingMore() throws {
        var parser = WebSocketFrameParser(maxFrameSize: 10)
        parser.append(serialize(clientFrame(.binary, Array(repeating: 1, count: 11))))
        parser.append(serialize(clientFrame(.binary, [1])))
        XCTAssertThrowsError(try parser.next()) { XCTAssertEqual($0 as? NIOWebSocketError, .invalidFrameLength) }
        XCTAssertNil(try parser.next())
    }
}

