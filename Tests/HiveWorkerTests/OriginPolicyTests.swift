import XCTest

@testable import HiveWorker

final class OriginPolicyTests: XCTestCase {
    func testRefusal_whenNoOrigin_accepts() {
        // Not a browser: the check protects browser users only.
        XCTAssertNil(OriginPolicy(allowed: []).refusal(origin: nil, host: "127.0.0.1:9501"))
    }

    func testRefusal_whenOriginIsTheRequestsHost_accepts() {
        let policy = OriginPolicy(allowed: [])
        XCTAssertNil(policy.refusal(origin: "http://127.0.0.1:9501", host: "127.0.0.1:9501"))
        XCTAssertNil(policy.refusal(origin: "https://Chat.Example.com", host: "chat.example.COM"))
    }

    func testRefusal_whenOriginIsAnotherHostOrPort_refusesNamingTheOriginAndTheOption() throws {
        let policy = OriginPolicy(allowed: [])
        let refusal = try XCTUnwrap(policy.refusal(origin: "https://evil.example", host: "127.0.0.1:9501"))
        XCTAssertTrue(refusal.contains("\"https://evil.example\""), refusal)
        XCTAssertTrue(refusal.contains("--allowed-origin"), refusal)
        XCTAssertTrue(refusal.contains("127.0.0.1:9501"), refusal)
        XCTAssertNotNil(policy.refusal(origin: "http://127.0.0.1:9502", host: "127.0.0.1:9501"))
        XCTAssertNotNil(policy.refusal(origin: "http://127.0.0.1", host: "127.0.0.1:9501"))
        XCTAssertNotNil(policy.refusal(origin: "http://127.0.0.1:9501/", host: "127.0.0.1:9501"), "not an origin")
        XCTAssertNotNil(policy.refusal(origin: "http://evil.example", host: nil))
    }

    func testRefusal_whenOriginIsNull_refusesUnlessNullOrAllAreAllowed() {
        XCTAssertNotNil(OriginPolicy(allowed: []).refusal(origin: "null", host: "null"))
        XCTAssertNotNil(OriginPolicy(allowed: ["https://app.example"]).refusal(origin: "null", host: "h"))
        XCTAssertNil(OriginPolicy(allowed: ["null"]).refusal(origin: "null", host: "h"))
        XCTAssertNil(OriginPolicy(allowed: ["*"]).refusal(origin: "null", host: "h"))
    }

    func testRefusal_whenOriginIsListed_acceptsExactlyThatOrigin() {
        let policy = OriginPolicy(allowed: ["https://App.Example", "http://localhost:8080"])
        XCTAssertNil(policy.refusal(origin: "https://app.example", host: "127.0.0.1:9501"))
        XCTAssertNil(policy.refusal(origin: "http://localhost:8080", host: "127.0.0.1:9501"))
        XCTAssertNotNil(policy.refusal(origin: "http://app.example", host: "127.0.0.1:9501"), "another scheme")
        XCTAssertNotNil(policy.refusal(origin: "https://app.example:444", host: "127.0.0.1:9501"), "another port")
        XCTAssertNotNil(policy.refusal(origin: "https://sub.app.example", host: "127.0.0.1:9501"))
    }

    func testRefusal_whenAllAreAllowed_acceptsAnything() {
        XCTAssertNil(OriginPolicy(allowed: ["*"]).refusal(origin: "https://evil.example", host: "127.0.0.1:9501"))
    }

    func testProblem_acceptsOriginsNullAndStar_rejectsPathsAndNonOrigins() {
        let goods = ["*", "null", "https://example.com", "http://localhost:8080", "https://[::1]:9501", "chrome-extension://a"]
        for good in goods {
            XCTAssertNil(OriginPolicy.problem(with: good), good)
        }
        let bads = ["example.com", "https://example.com/", "https://example.com/app", "https://", "://x", "1x://y", ""]
        for bad in bads {
            let problem = OriginPolicy.problem(with: bad)
            XCTAssertNotNil(problem, bad)
            XCTAssertTrue(problem?.contains("\"\(bad)\"") ?? false, "names the bad value: \(problem ?? "")")
        }
    }
}
