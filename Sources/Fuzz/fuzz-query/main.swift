// libFuzzer target: a request target's query string through `HiveParameters(query:)`, and its path through
// `HiveRouter.match`, the two parsers of what a client sends that an application's request hook runs.
//
// Input: [method][text]. The method byte picks GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS or PURGE; the text
// (bytes as UTF-8, invalid sequences replaced) is parsed as a query and matched as a path.
//
// Beyond "never crash, never trap" it checks that parsed parameters, percent-encoded again, parse to the same
// pairs; that a route found for a path is found again, with the same parameters, for the path rebuilt from its
// pattern; that HEAD finds what GET finds; and that a 405 never lists the method it refused.
import HTTPTypes
import HiveFuzzSupport

@testable import HiveWorker

/// Every byte but RFC 3986's unreserved ones as "%XX": what the parsers must decode back to the same string.
func percentEncoded(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let hex = Array("0123456789ABCDEF".utf8)
            out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
        }
    }
    return out
}

let methods: [HTTPRequest.Method] = [.get, .head, .post, .put, .delete, .patch, .options, HTTPRequest.Method("PURGE")!]

/// Small limits, so paths over them are common.
let router: HiveRouter = {
    var router = HiveRouter(maxPathLength: 256, maxSegments: 8)
    let handler: HiveRouter.Handler = { _, _ in .text("") }
    for (method, pattern): (HTTPRequest.Method?, String) in [
        (.get, "/"), (.get, "/users"), (.post, "/users"), (.get, "/users/me"), (.get, "/users/:id"),
        (.put, "/users/:id"), (.delete, "/users/:id"), (.get, "/users/:id/posts/:post"), (.get, "/users/me/settings"),
        (.get, "/static/*"), (.get, "/files/:kind/*"), (nil, "/any/:x"), (.get, "/café"), (.patch, "/a/:b/c/:d/e"),
    ] {
        router.on(method, pattern, handler)
    }
    return router
}()

func checkQuery(_ text: String) {
    let parameters = HiveParameters(query: text)
    let pieces = text.utf8.filter { $0 == UInt8(ascii: "&") }.count + 1
    fuzzCheck(parameters.count <= pieces, "\(parameters.count) pairs from \(pieces) pieces: \(parameters)")
    let encoded = parameters.map { percentEncoded($0.name) + "=" + percentEncoded($0.value) }.joined(separator: "&")
    let again = HiveParameters(query: encoded)
    fuzzCheck(again == parameters, "\(parameters) encoded as \(encoded) parses to \(again)")
    for (name, _) in parameters {
        fuzzCheck(parameters[name] == parameters.values(name).first, "the first value of \(name) differs")
    }
}

/// The outcome as text, to compare two matches.
func describe(_ match: HiveRouter.Match) -> String {
    switch match {
    case .found(let route, let parameters): "found \(route.pattern) \(parameters)"
    case .notFound: "404"
    case .methodNotAllowed(let allowed): "405 \(allowed)"
    case .rejected(let status, _): "\(status.code)"
    }
}

func checkRoute(_ method: HTTPRequest.Method, _ path: String) {
    let match = router.match(method, path: path[...])
    switch match {
    case .found(let route, let parameters):
        fuzzCheck(parameters.count == route.parameterNames.count, "\(route.pattern) captured \(parameters)")
        if method == .get {
            fuzzCheck(describe(router.match(.head, path: path[...])) == describe(match), "HEAD \(path) differs from GET")
        }
        // The path again from the pattern, every segment and parameter percent-encoded.
        guard !route.pattern.hasSuffix("*") else { return }
        var rebuilt = ""
        var values = parameters.makeIterator()
        for segment in route.pattern.split(separator: "/") {
            let text = segment.hasPrefix(":") ? values.next()!.value : String(segment)
            rebuilt += "/" + percentEncoded(text)
        }
        if rebuilt.isEmpty { rebuilt = "/" }
        guard rebuilt.utf8.count <= router.maxPathLength else { return }
        let again = router.match(method, path: rebuilt[...])
        fuzzCheck(describe(again) == describe(match), "\(path): \(describe(match)); rebuilt \(rebuilt): \(describe(again))")
    case .methodNotAllowed(let allowed):
        fuzzCheck(!allowed.isEmpty && !allowed.contains(method), "405 for \(method) \(path) allows \(allowed)")
    case .notFound, .rejected:
        break
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQuery(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let method = methods[Int(bytes[0] & 0x07)]
    let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
    checkQuery(text)
    checkRoute(method, text)
    return 0
}

runFuzzer(fuzzQuery)
