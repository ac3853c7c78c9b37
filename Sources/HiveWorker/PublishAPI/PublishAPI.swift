import HTTPTypes
import HiveIPC

/// The HTTP publish API's fixed parts: where it is, and its answers. Every answer is JSON, `{"ok":true}` or
/// `{"ok":false,"error":"what happened and what to do"}`, so a client reads one shape whatever went wrong.
package enum PublishAPI {
    /// Served by Hive itself on the client port, before the application's request hook (which never sees it).
    package static let path = "/api/publish"

    /// `path`'s bytes, for `matches`: a `StaticString` is a pointer to constant bytes, no global to initialise.
    private static let pathBytes: StaticString = "/api/publish"

    /// Whether a request target is the API's: the path exactly, with or without a query. The one check every
    /// other request pays, on the target's bytes in place: about 3 ns (measured on 20 M calls: 10-17 ns more
    /// than a call that reads one byte, on a machine 7 times oversubscribed; walking `utf8` with an iterator cost
    /// 85-110 ns more).
    @inline(__always)
    package static func matches(_ uri: String) -> Bool {
        uri.utf8.withContiguousStorageIfAvailable { bytes in
            let count = pathBytes.utf8CodeUnitCount
            guard bytes.count >= count else { return false }
            let expected = pathBytes.utf8Start
            for index in 0..<count where bytes[index] != expected[index] { return false }
            return bytes.count == count || bytes[count] == UInt8(ascii: "?")
        } ?? uri.utf8.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false)
            .first!.elementsEqual(path.utf8)
    }

    /// The query string of a request target, without its "?"; nil when it has none.
    static func query(of uri: String) -> Substring? {
        guard let mark = uri.firstIndex(of: "?") else { return nil }
        return uri[uri.index(after: mark)...]
    }

    private struct Body: Encodable {
        var ok: Bool
        var error: String?
    }

    static func answer(_ status: HTTPResponse.Status, error: String? = nil) -> HiveResponse {
        var response = (try? HiveResponse.json(Body(ok: error == nil, error: error), status: status))
            ?? HiveResponse.text("\(status.code)\n", status: status)
        response.headerFields[.cacheControl] = "no-store"
        return response
    }

    /// 200: published (through Redis: Redis took it; without: delivered to this host's workers).
    static var published: HiveResponse { answer(.ok) }

    /// 403: no key is configured, so nobody may publish over HTTP.
    static var disabled: HiveResponse {
        answer(.forbidden, error: "the HTTP publish API is disabled: no API key is configured; start hive with "
            + "--api-key KEY (or HIVE_API_KEY=KEY in its environment), then send Authorization: apikey KEY")
    }

    /// 401, with the scheme to use (RFC 9110 section 11.6.1 asks for `WWW-Authenticate`).
    static func unauthorized(_ reason: String) -> HiveResponse {
        var response = answer(.unauthorized, error: reason)
        response.headerFields[.wwwAuthenticate] = "apikey"
        return response
    }

    /// 400, 405 (with `Allow`) or 413 for a call that cannot be parsed.
    static func rejected(_ error: PublishRequest.Error) -> HiveResponse {
        switch error.kind {
        case .badRequest:
            return answer(.badRequest, error: error.message)
        case .tooLarge:
            return answer(.contentTooLarge, error: error.message)
        case .methodNotAllowed:
            var response = answer(.methodNotAllowed, error: error.message)
            response.headerFields[.allow] = "POST"
            return response
        }
    }

    /// A publish that failed: 400 for a bad argument, 503 when Redis or the worker cannot take it now (with
    /// `Retry-After` when it is only busy), 500 otherwise.
    static func failed(_ error: HiveError) -> HiveResponse {
        switch error.code {
        case .invalidArgument:
            return answer(.badRequest, error: error.description)
        case .redisUnavailable:
            return answer(.serviceUnavailable, error: error.description)
        case .workerBusy:
            var response = answer(.serviceUnavailable, error: error.description)
            response.headerFields[.retryAfter] = "1"
            return response
        default:
            return answer(.internalServerError, error: error.description)
        }
    }
}
