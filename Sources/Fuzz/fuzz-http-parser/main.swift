// libFuzzer target: `HTTPFastParser`, Hive's own request parser, against NIO's decoder (llhttp), which reads every
// request the fast path hands over.
//
// Input: [max read size, unused][options][bytes from the client]: the format of fuzz-http, whose seeds serve here
// too. options bit 0: small limits (256-byte heads, 64-byte bodies) instead of 8 KiB and 1 MiB.
//
// The fast path reads requests from the start of the bytes until it hands over. Beyond "never crash, never trap"
// it checks that every request it read is one NIO's decoder reads from the same bytes, with the same method,
// target, version, keep-alive, fields (names as sent) and body, and that `HTTPRequestHandler` would have taken
// NIO's reading as it is: within --max-header-size and --max-body-size, one Host (none in 1.0), no
// Transfer-Encoding or Expect, an origin-form target, and a conversion to swift-http-types equal to the fast
// path's. So a request the fast path accepts is never one the NIO path refuses or reads differently.
import HTTPTypes
import HiveFuzzSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1

@testable import HiveWorker

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let input = FuzzInput(data, size, headerBytes: 1) else { return 0 }
    let (maxHeaderSize, maxBodySize) = input.options[0] & 0x01 == 1 ? (256, 64) : (8192, 1 << 20)
    let bytes = input.payload

    var fast: [ParsedHTTPRequest] = []
    var offset = 0
    while offset < bytes.count {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        guard case .request(let request, let consumed) = HTTPFastParser.parse(
            rest, maxHeaderSize: maxHeaderSize, maxBodySize: maxBodySize)
        else { break }
        fuzzCheck(consumed > 0 && consumed <= rest.count, "consumed \(consumed) of \(rest.count) bytes")
        fast.append(request)
        offset += consumed
        if !request.keepAlive { break }  // nothing after it is read (HTTPFastPathHandler, RFC 9112 section 9.6)
    }
    guard !fast.isEmpty else { return 0 }

    var limits = NIOHTTPDecoderLimitConfiguration()
    limits.maxHeaderFieldSize = maxHeaderSize
    limits.maxHeaderListSize = maxHeaderSize
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(
        HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: limits)))
    defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
    let taken = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: bytes[..<offset]))
    do {
        try channel.writeInbound(taken)
    } catch {
        fuzzCheck(false, "NIO's decoder refused what the fast path read (\(error)): \(String(buffer: taken).debugDescription)")
    }
    var nio: [(head: HTTPRequestHead, body: [UInt8])] = []
    var open: (head: HTTPRequestHead, body: [UInt8])?
    var ended = true
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
        switch part {
        case .head(let head):
            fuzzCheck(ended, "a head before the previous request's end")
            open = (head, [])
            ended = false
        case .body(let chunk):
            open?.body += chunk.readableBytesView
        case .end:
            if let request = open { nio.append(request) }
            open = nil
            ended = true
        }
    }
    fuzzCheck(ended, "NIO's decoder did not end the last request the fast path read")
    fuzzCheck(nio.count == fast.count, "the fast path read \(fast.count) requests, NIO's decoder \(nio.count)")

    for (index, (request, (head, body))) in zip(fast, nio).enumerated() {
        let which = "request \(index) of \(String(buffer: taken).debugDescription)"
        fuzzCheck(request.method == head.method, "method \(request.method) vs \(head.method), \(which)")
        fuzzCheck(request.version == head.version, "version \(request.version) vs \(head.version), \(which)")
        fuzzCheck(request.keepAlive == head.isKeepAlive, "keep-alive \(request.keepAlive), \(which)")
        fuzzCheck(request.body == body, "bodies of \(request.body.count) and \(body.count) bytes, \(which)")
        // What HTTPRequestHandler checks of NIO's head before it answers.
        let facts = RequestHeadFacts(head)
        fuzzCheck(facts.size <= maxHeaderSize, "a head of \(facts.size) bytes over \(maxHeaderSize), \(which)")
        fuzzCheck(facts.hostProblem(version: head.version) == nil, "a Host problem, \(which)")
        fuzzCheck(facts.expect == nil && !facts.hasTransferEncoding, "Expect or Transfer-Encoding, \(which)")
        fuzzCheck(facts.contentLength.flatMap(Int.init) ?? 0 == body.count, "Content-Length and body differ, \(which)")
        fuzzCheck(head.uri.utf8.first == UInt8(ascii: "/"), "not origin-form: \(head.uri), \(which)")
        guard let converted = try? HTTPRequest(head) else {
            fuzzCheck(false, "NIO's head does not convert to HTTPRequest, \(which)")
            continue
        }
        fuzzCheck(converted == request.head, "\(converted) vs \(request.head), \(which)")
        fuzzCheck(converted.headerFields.map(\.name.rawName) == request.head.headerFields.map(\.name.rawName),
                  "field names spelled differently, \(which)")
        fuzzCheck(converted.headerFields.map(\.value) == request.head.headerFields.map(\.value),
                  "field values differ, \(which)")
    }
    return 0
}

runFuzzer(fuzzHTTPParser)
