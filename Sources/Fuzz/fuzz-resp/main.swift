// libFuzzer target: what worker 0's Redis subscription reads, through `RESPStream` (Hive parses it itself so that a
// message over --max-redis-message is skipped unread). Every byte sequence, cut into reads at any points, must give
// replies or a `ProtocolError`, never trap; and the same bytes in one read must give the same replies and the same
// outcome, so where the kernel cuts the stream never changes what the subscriber sees.
import HiveFuzzSupport

@testable import HiveRedis

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let input = FuzzInput(data, size, headerBytes: 1) else { return 0 }
    // The cap on bulk strings: 0 to 255 bytes, so that skipping and copying both happen on small inputs.
    let maxBulk = Int(input.options[0])

    var whole = RESPStream(maxBulk: maxBulk)
    var wholeReplies: [RESPStream.Value] = []
    let wholeFailed = (try? whole.feed(input.payload, into: &wholeReplies)) == nil

    var split = RESPStream(maxBulk: maxBulk)
    var splitReplies: [RESPStream.Value] = []
    var splitFailed = false
    for read in input.reads() where !splitFailed {
        splitFailed = read.withUnsafeReadableBytes { (try? split.feed($0, into: &splitReplies)) == nil }
    }
    fuzzCheck(wholeFailed == splitFailed, "one read failed: \(wholeFailed), split reads failed: \(splitFailed)")
    if !wholeFailed {
        fuzzCheck(wholeReplies == splitReplies, "one read gave \(wholeReplies), split reads \(splitReplies)")
    }
    for reply in wholeReplies { checkBulks(reply, maxBulk: maxBulk) }
    return 0
}

/// No bulk string over the cap is ever held: it comes out as `.skipped`.
private func checkBulks(_ value: RESPStream.Value, maxBulk: Int) {
    switch value {
    case .string(let bytes): fuzzCheck(bytes.count <= maxBulk, "a bulk string of \(bytes.count) bytes was kept")
    case .skipped(let length): fuzzCheck(length > maxBulk, "a bulk string of \(length) bytes was skipped")
    case .array(let elements): elements.forEach { checkBulks($0, maxBulk: maxBulk) }
    default: break
    }
}

runFuzzer(fuzzRESP)
