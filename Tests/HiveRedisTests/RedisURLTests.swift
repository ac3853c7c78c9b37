import XCTest

@testable import HiveRedis

final class RedisURLTests: XCTestCase {
    func testHostPort_andDefaults() throws {
        XCTAssertEqual(try RedisURL(parsing: "redis://127.0.0.1:6380"), RedisURL(endpoint: .tcp(host: "127.0.0.1", port: 6380)))
        XCTAssertEqual(try RedisURL(parsing: "redis://localhost"), RedisURL(endpoint: .tcp(host: "localhost", port: 6379)))
        XCTAssertEqual(try RedisURL(parsing: "redis://[::1]:7000").endpoint, .tcp(host: "::1", port: 7000))
    }

    func testPasswordAndDatabase_areParsed_andThePasswordIsNeverPrinted() throws {
        let url = try RedisURL(parsing: "redis://:s3cret@10.0.0.5:6379/2")
        XCTAssertEqual(url.password, "s3cret")
        XCTAssertEqual(url.database, 2)
        XCTAssertEqual(url.description, "redis://10.0.0.5:6379")
        XCTAssertEqual(try RedisURL(parsing: "redis://user:pw@h:1").password, "pw")
    }

    func testUnixSocket() throws {
        XCTAssertEqual(try RedisURL(parsing: "unix:///run/redis.sock").endpoint, .unix(path: "/run/redis.sock"))
    }

    func testInvalidURLs_sayWhatIsWrong() {
        for (text, reason) in [
            ("http://x", "unknown scheme"), ("redis://h:99999", "is not a port number"), ("redis://:6379", "the host is missing"),
            ("redis://h:1/x", "is not a number"), ("unix://relative", "must be absolute"),
        ] {
            XCTAssertThrowsError(try RedisURL(parsing: text)) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(text): \(error)")
                XCTAssertTrue("\(error)".contains("expected redis://"), "\(error)")
            }
        }
    }
}
