// libFuzzer target: permessage-deflate's inputs from clients. The `Sec-WebSocket-Extensions` offer parser
// (`PerMessageDeflate.negotiate`), which runs on every upgrade with --compression on, and the worker's shared
// `MessageInflater`, which inflates what a client sends with the message limit applied to the inflated size.
//
// Input: [mode][bytes]. Mode bit 0 clear: the bytes are a header value (several values when split at 0x00 bytes).
// Set: bits 1-3 pick the inflated-size limit, the bytes are a compressed message (as sent, without 00 00 FF FF).
import HiveFuzzSupport
import NIOCore

@testable import HiveWorker

/// One of each for the whole run, as a worker has: libFuzzer calls the target from one thread.
enum Shared {
    nonisolated(unsafe) static let inflater = MessageInflater()!
    nonisolated(unsafe) static let deflater = MessageDeflater(windowBits: 15)!
    static let limits = [0, 1, 125, 1000, 4096, 65536, 1 << 20, 1 << 20]
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeflate(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let mode = data[0]
    let bytes = UnsafeBufferPointer(start: data + 1, count: size - 1)
    if mode & 1 == 0 {
        checkNegotiation(bytes.split(separator: 0, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        })
    } else {
        checkInflate(ByteBuffer(bytes: bytes), limit: Shared.limits[Int(mode >> 1) & 7])
    }
    return 0
}

/// An accepted offer's response, read back as an offer, is accepted as the same agreement: the response says
/// what the server does, in the grammar it parses.
func checkNegotiation(_ values: [String]) {
    guard let agreement = PerMessageDeflate.negotiate(values) else { return }
    fuzzCheck((9...15).contains(agreement.deflateWindowBits), "window \(agreement.deflateWindowBits) out of range")
    guard let offers = PerMessageDeflate.parseExtensions(agreement.responseHeader), offers.count == 1 else {
        return fuzzCheck(false, "response \"\(agreement.responseHeader)\" does not parse as one extension")
    }
    fuzzCheck(PerMessageDeflate.accept(offers[0]) == agreement,
              "response \"\(agreement.responseHeader)\" read back as an offer is not the same agreement")
}

/// Never more than the limit; the same input inflates the same way twice (the shared inflater leaves nothing
/// behind); what inflates, deflated again by the server's deflater, inflates back to the same bytes.
func checkInflate(_ compressed: ByteBuffer, limit: Int) {
    let inflater = Shared.inflater
    let first = inflater.inflate(compressed, limit: limit, allocator: ByteBufferAllocator())
    let second = inflater.inflate(compressed, limit: limit, allocator: ByteBufferAllocator())
    switch (first, second) {
    case (.success(let a), .success(let b)):
        fuzzCheck(a == b, "the same input inflated differently twice")
        fuzzCheck(a.readableBytes <= limit, "inflated \(a.readableBytes) bytes over the limit of \(limit)")
        var again = ByteBuffer()
        fuzzCheck(a.withUnsafeReadableBytes { Shared.deflater.compress($0, appendingTo: &again) }, "deflate failed")
        let round = inflater.inflate(again, limit: limit, allocator: ByteBufferAllocator())
        fuzzCheck((try? round.get()) == a, "deflate then inflate changed the message")
    case (.failure(let a), .failure(let b)):
        fuzzCheck(a == b, "the same input failed differently twice: \(a), \(b)")
    default:
        fuzzCheck(false, "the same input inflated once and failed once")
    }
}

runFuzzer(fuzzDeflate)
