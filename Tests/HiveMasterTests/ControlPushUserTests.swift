import HiveIPC
import XCTest

@testable import HiveMaster

/// `push-user <id bytes> <text bytes>` on the control socket: parsed whole, waited for while incomplete, refused
/// with a reason for a bad id or length, never trapping the master (fuzz-control covers the rest).
final class ControlPushUserTests: XCTestCase {
    private func parse(_ line: String, _ body: String = "") -> ControlRequest? {
        ControlRequest.parse(Array((line + "\n").utf8) + Array(body.utf8))
    }

    func testAnIdWithSpacesAndTheText() {
        XCTAssertEqual(parse("push-user 11 5", "alice smithhello"), .pushUser(user: "alice smith", text: "hello"))
        XCTAssertNil(parse("push-user 11 5", "alice smithhell"), "waits for the whole body")
        XCTAssertEqual(parse("push-user 5 0", "alice"), .pushUser(user: "alice", text: ""))
    }

    func testRefusals() {
        for (line, body, expected) in [
            ("push-user 0 1", "x", "1 to 64 bytes"),
            ("push-user 65 1", String(repeating: "a", count: 66), "1 to 64 bytes"),
            ("push-user -1 1", "x", "malformed"),
            ("push-user 1 \(Int.max)", "ab", nil),  // waits: no overflow of 1 + Int.max
            ("push-user 2 1", "a\nb", "control character"),
        ] as [(String, String, String?)] {
            let request = parse(line, body)
            guard let expected else {
                XCTAssertNil(request, line)
                continue
            }
            guard case .refused(let reason)? = request else { return XCTFail("\(line): \(String(describing: request))") }
            XCTAssertTrue(reason.contains(expected), reason)
        }
    }
}
