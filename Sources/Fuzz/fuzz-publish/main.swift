// libFuzzer target: the HTTP publish API's parsers, `PublishRequest.parse` (query, raw or JSON body) and the
// `Authorization: apikey KEY` check (`APIKey.credential`, `APIKey.matches`), what a client of POST /api/publish
// controls before anything is published.
//
// Input: [mode][rest]. The mode byte's low 3 bits pick the method (0-5 POST, 6 GET, 7 PUT); bit 4 set: the rest is
// an Authorization value; else bit 3 set: the rest up to the first "\n" is the query and the remainder the body,
// clear: the rest is the body.
//
// Beyond "never crash, never trap" it checks that only POST parses; that a parsed call has a valid channel name or
// user id and a message within the limit; that a raw body is published byte for byte; that a JSON call, encoded
// again, parses to the same call; and that the key check agrees with a plain comparison.
import Foundation
import HiveFuzzSupport
import HiveIPC

@testable import HiveWorker

let limit = 256
let keyText = "fuzz-key-0123"
let key = APIKey(keyText)!

func checkAuthorization(_ value: String) {
    guard let credential = APIKey.credential(inAuthorization: value[...]) else { return }
    fuzzCheck(!credential.isEmpty && credential.first != UInt8(ascii: " "), "credential \"\(Substring(credential))\"")
    fuzzCheck(key.matches(credential) == credential.elementsEqual(keyText.utf8), "key check differs for \(value)")
}

func checkCall(method: String, query: Substring?, body: [UInt8]) {
    let call: PublishRequest
    do {
        call = try PublishRequest.parse(method: method, query: query, body: body, maxMessageSize: limit)
    } catch {
        fuzzCheck(!error.message.isEmpty, "an error without a message")
        fuzzCheck((error.kind == .methodNotAllowed) == (method != "POST"), "\(method): \(error.kind)")
        return
    }
    fuzzCheck(method == "POST", "\(method) parsed")
    fuzzCheck(call.message.bytes.count <= limit, "a message of \(call.message.bytes.count) bytes passed")
    switch call.target {
    case .channel(let name): fuzzCheck(ChannelName.problem(name) == nil, "channel \(name) passed")
    case .user(let id): fuzzCheck(UserID.problem(id) == nil, "user \(id) passed")
    }
    let parameters = query.map { HiveParameters(query: $0) } ?? HiveParameters()
    if !parameters.values("channel").isEmpty || !parameters.values("user").isEmpty {
        fuzzCheck(call.message.bytes == body, "the raw body was not published as sent")
        return
    }
    guard case .text(let data) = call.message else { return fuzzCheck(false, "a JSON call made a binary message") }
    var object: [String: Any] = ["data": data]
    switch call.target {
    case .channel(let name): object["channel"] = name
    case .user(let id): object["user"] = id
    }
    guard let again = try? JSONSerialization.data(withJSONObject: object) else { return }
    let reparsed = try? PublishRequest.parse(method: "POST", query: nil, body: Array(again), maxMessageSize: limit)
    fuzzCheck(reparsed == call, "\(call) encoded again parses to \(String(describing: reparsed))")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPublish(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let mode = bytes[0]
    let method = ["POST", "POST", "POST", "POST", "POST", "POST", "GET", "PUT"][Int(mode & 0x07)]
    let rest = Array(bytes.dropFirst())
    if mode & 0x10 != 0 {
        checkAuthorization(String(decoding: rest, as: UTF8.self))
    } else if mode & 0x08 != 0 {
        let newline = rest.firstIndex(of: UInt8(ascii: "\n")) ?? rest.endIndex
        let query = String(decoding: rest[..<newline], as: UTF8.self)
        checkCall(method: method, query: query[...], body: Array(rest[newline...].dropFirst()))
    } else {
        checkCall(method: method, query: nil, body: rest)
    }
    return 0
}

runFuzzer(fuzzPublish)
