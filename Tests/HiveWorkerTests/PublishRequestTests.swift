import Foundation
import HTTPTypes
import HiveIPC
import XCTest

@testable import HiveWorker

/// The HTTP publish API's parser (`PublishRequest.parse`), its key check (`APIKey`) and its path match, without a
/// server.
final class PublishRequestTests: XCTestCase {
    private func parse(
        _ body: String, query: String? = nil, method: String = "POST", limit: Int = 1 << 20
    ) throws(PublishRequest.Error) -> PublishRequest {
        try PublishRequest.parse(method: method, query: query?[...], body: Array(body.utf8), maxMessageSize: limit)
    }

    /// The error `body` gets, failing the test when it parses.
    private func error(
        _ body: String, query: String? = nil, method: String = "POST", limit: Int = 1 << 20,
        file: StaticString = #filePath, line: UInt = #line
    ) -> PublishRequest.Error? {
        do {
            let parsed = try parse(body, query: query, method: method, limit: limit)
            XCTFail("parsed as \(parsed)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    func testJSON_channelAndData_isATextMessageToTheChannel() throws {
        XCTAssertEqual(try parse(#"{"channel": "news", "data": "héllo"}"#),
                       PublishRequest(target: .channel("news"), message: .text("héllo")))
        XCTAssertEqual(try parse(#"{"data": "", "channel": "a/b:c@d.e-f_g", "extra": [1]}"#),
                       PublishRequest(target: .channel("a/b:c@d.e-f_g"), message: .text("")),
                       "an empty message is a message; unknown keys are ignored")
    }

    func testJSON_user_isAUserTarget() throws {
        XCTAssertEqual(try parse(#"{"user": "alice", "data": "hi"}"#),
                       PublishRequest(target: .user("alice"), message: .text("hi")))
    }

    func testJSON_needsExactlyOneTarget_sayingWhichIsWrong() {
        let none = error(#"{"data": "x"}"#)
        XCTAssertEqual(none?.kind, .badRequest)
        XCTAssertTrue(none?.message.contains("names no target") == true, none?.message ?? "")
        let both = error(#"{"channel": "a", "user": "b", "data": "x"}"#)
        XCTAssertEqual(both?.kind, .badRequest)
        XCTAssertTrue(both?.message.contains("exactly one channel or one user") == true, both?.message ?? "")
    }

    func testJSON_badFields_areNamed() {
        XCTAssertTrue(error(#"{"channel": "news"}"#)?.message.contains(#"no "data""#) == true)
        XCTAssertTrue(error(#"{"channel": "news", "data": {"a": 1}}"#)?.message.contains(#""data" is an object"#) == true)
        XCTAssertTrue(error(#"{"channel": "news", "data": null}"#)?.message.contains(#""data" is null"#) == true)
        XCTAssertTrue(error(#"{"channel": 7, "data": "x"}"#)?.message.contains(#""channel" is a number"#) == true)
        XCTAssertTrue(error(#"{"user": ["a"], "data": "x"}"#)?.message.contains(#""user" is an array"#) == true)
        XCTAssertTrue(error(#"{"user": "", "data": "x"}"#)?.message
            .hasPrefix("user in the JSON body: a user id must not be empty") == true)
        XCTAssertTrue(error(#"{"user": "a\u0001", "data": "x"}"#)?.message.contains("control character") == true)
        XCTAssertTrue(error(#"{"user": "\#(String(repeating: "u", count: 65))", "data": "x"}"#)?.message
            .contains("the limit is 64 bytes") == true, "the rules of UserID")
    }

    func testJSON_badChannelName_isA400WithTheChannelRules() {
        let bad = error(#"{"channel": "no spaces", "data": "x"}"#)
        XCTAssertEqual(bad?.kind, .badRequest)
        XCTAssertTrue(bad?.message.hasPrefix("channel in the JSON body: channel name \"no spaces\" contains") == true,
                      bad?.message ?? "")
        XCTAssertEqual(error(#"{"channel": "", "data": "x"}"#)?.kind, .badRequest)
        XCTAssertEqual(error(#"{"channel": "\#(String(repeating: "a", count: 65))", "data": "x"}"#)?.kind, .badRequest)
    }

    func testJSON_malformed_isA400ThatShowsTheWayIn() {
        for body in ["", "{", "not json", #"["news", "x"]"#, "\"text\"", #"{"channel": "news", "data": "x"} trailing"#] {
            let bad = error(body)
            XCTAssertEqual(bad?.kind, .badRequest, body)
            XCTAssertTrue(bad?.message.contains("?channel=NAME") == true, "\(body): \(bad?.message ?? "")")
        }
    }

    func testJSON_deepNesting_isRefusedNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        XCTAssertEqual(error(#"{"channel": "news", "data": \#(deep)}"#)?.kind, .badRequest)
    }

    func testMessageOverTheLimit_is413_namingBothSizes() {
        let big = error(#"{"channel": "news", "data": "12345"}"#, limit: 4)
        XCTAssertEqual(big?.kind, .tooLarge)
        XCTAssertTrue(big?.message.contains("5 bytes; the largest published is 4 bytes") == true, big?.message ?? "")
        XCTAssertNoThrow(try parse(#"{"channel": "news", "data": "1234"}"#, limit: 4), "the limit itself is allowed")
        XCTAssertEqual(error("12345", query: "channel=news", limit: 4)?.kind, .tooLarge)
    }

    func testRawBody_withChannelInTheQuery_isTheMessageAsSent() throws {
        XCTAssertEqual(try parse(#"{"not": "an envelope"}"#, query: "channel=news"),
                       PublishRequest(target: .channel("news"), message: .text(#"{"not": "an envelope"}"#)),
                       "with a target in the query the body is never read as JSON")
        XCTAssertEqual(try parse("x", query: "other=1&user=bob%40example"),
                       PublishRequest(target: .user("bob@example"), message: .text("x")), "the query is decoded")
        let binary: [UInt8] = [0xFF, 0x00, 0xC3]
        XCTAssertEqual(try PublishRequest.parse(method: "POST", query: "channel=bin", body: binary, maxMessageSize: 10),
                       PublishRequest(target: .channel("bin"), message: .binary(binary)), "not UTF-8: binary")
    }

    func testQuery_targetsAreCheckedLikeJSONOnes() {
        XCTAssertTrue(error("x", query: "channel=a&channel=b")?.message.contains("names 2 channel(s)") == true)
        XCTAssertTrue(error("x", query: "channel=a&user=b")?.message.contains("exactly one") == true)
        XCTAssertTrue(error("x", query: "channel=a%2Cb")?.message.hasPrefix("channel in the query: ") == true)
        XCTAssertEqual(error("x", query: "channel=")?.kind, .badRequest)
    }

    func testMethodOtherThanPOST_is405() {
        for method in ["GET", "PUT", "HEAD", "post"] {
            XCTAssertEqual(error(#"{"channel": "news", "data": "x"}"#, method: method)?.kind, .methodNotAllowed, method)
        }
    }

    func testAPIKey_matchesOnlyTheSameBytes() throws {
        let key = try XCTUnwrap(APIKey("s3cret-key"))
        XCTAssertTrue(key.matches("s3cret-key".utf8))
        for guess in ["", "s3cret-ke", "s3cret-keyy", "S3cret-key", "s3cret-kez", "x", String(repeating: "s3cret-key", count: 3)] {
            XCTAssertFalse(key.matches(guess.utf8), guess)
        }
        XCTAssertNil(APIKey(""), "an empty key is no key")
        XCTAssertEqual("\(key)", "***", "a key never prints")
    }

    func testAuthorization_takesTheApikeyScheme_inAnyCase() {
        func credential(_ value: String) -> String? {
            APIKey.credential(inAuthorization: value[...]).map { String(Substring($0)) }
        }
        XCTAssertEqual(credential("apikey abc"), "abc")
        XCTAssertEqual(credential("ApiKey   abc"), "abc")
        XCTAssertEqual(credential("APIKEY\tabc"), "abc")
        XCTAssertNil(credential("Bearer abc"))
        XCTAssertNil(credential("apikeyabc"))
        XCTAssertNil(credential("apikey "))
        XCTAssertNil(credential("apikey"))
    }

    func testAuthorizationProblem_namesWhatIsMissingOrWrong() throws {
        let key = try XCTUnwrap(APIKey("k1"))
        XCTAssertNil(HiveServer.authorizationProblem(["apikey k1"], key: key))
        XCTAssertTrue(HiveServer.authorizationProblem([], key: key)?.hasPrefix("no Authorization header") == true)
        XCTAssertTrue(HiveServer.authorizationProblem(["apikey k2"], key: key)?.hasPrefix("wrong API key") == true)
        XCTAssertTrue(HiveServer.authorizationProblem(["Basic azE="], key: key)?.contains("apikey scheme") == true)
        XCTAssertTrue(HiveServer.authorizationProblem(["apikey k1", "apikey k1"], key: key)?.contains("exactly one") == true)
    }

    func testPath_matchesTheAPIOnly() {
        for uri in ["/api/publish", "/api/publish?channel=x", "/api/publish?"] {
            XCTAssertTrue(PublishAPI.matches(uri), uri)
        }
        for uri in ["/", "/api/publis", "/api/publish/", "/api/publishx", "/api/publish#x", "/API/publish", ""] {
            XCTAssertFalse(PublishAPI.matches(uri), uri)
        }
    }

    func testAnswers_mapEachOutcomeToItsStatus_withTheHeadersTheRFCsAsk() throws {
        func error(_ response: HiveResponse) throws -> String? {
            let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            return object?["error"] as? String
        }
        XCTAssertEqual(PublishAPI.published.status.code, 200)
        XCTAssertEqual(String(decoding: PublishAPI.published.body, as: UTF8.self), #"{"ok":true}"#)
        XCTAssertEqual(PublishAPI.published.headerFields[.contentType], "application/json")
        XCTAssertEqual(PublishAPI.disabled.status.code, 403)
        XCTAssertTrue(try error(PublishAPI.disabled)?.contains("HIVE_API_KEY") == true)
        let unauthorized = PublishAPI.unauthorized("wrong API key")
        XCTAssertEqual(unauthorized.status.code, 401)
        XCTAssertEqual(unauthorized.headerFields[.wwwAuthenticate], "apikey")
        XCTAssertEqual(try error(unauthorized), "wrong API key")
        let notAllowed = PublishAPI.rejected(PublishRequest.Error(.methodNotAllowed, "only POST"))
        XCTAssertEqual(notAllowed.status.code, 405)
        XCTAssertEqual(notAllowed.headerFields[.allow], "POST")
        XCTAssertEqual(PublishAPI.rejected(PublishRequest.Error(.badRequest, "x")).status.code, 400)
        XCTAssertEqual(PublishAPI.rejected(PublishRequest.Error(.tooLarge, "x")).status.code, 413)
        XCTAssertEqual(PublishAPI.failed(HiveError(code: .invalidArgument, description: "bad")).status.code, 400)
        let unavailable = PublishAPI.failed(HiveError(code: .redisUnavailable, description: "Redis at x: refused"))
        XCTAssertEqual(unavailable.status.code, 503)
        XCTAssertNil(unavailable.headerFields[.retryAfter], "Redis may stay down: no promise of when to retry")
        XCTAssertEqual(try error(unavailable), "Redis at x: refused")
        let busy = PublishAPI.failed(HiveError(code: .workerBusy, description: "queue full"))
        XCTAssertEqual(busy.status.code, 503)
        XCTAssertEqual(busy.headerFields[.retryAfter], "1")
    }
}
