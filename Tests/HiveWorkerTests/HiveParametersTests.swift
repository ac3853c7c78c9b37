import HTTPTypes
import HiveIPC
import XCTest

@testable import HiveWorker

final class HiveParametersTests: XCTestCase {
    private func pairs(_ query: String) -> [String] {
        HiveParameters(query: query).map { "\($0.name)=\($0.value)" }
    }

    func testQuery_splitsPairsAndDecodesFormEncoding() {
        XCTAssertEqual(pairs("a=1&b=two+words&c=%C3%A9t%C3%A9"), ["a=1", "b=two words", "c=été"])
        XCTAssertEqual(pairs("q=a%2Bb+c"), ["q=a+b c"], "an encoded + is a plus, a bare one a space")
        XCTAssertEqual(pairs("x=a%26b%3Dc"), ["x=a&b=c"], "encoded separators belong to the value")
        XCTAssertEqual(pairs("e=a=b=c"), ["e=a=b=c"], "a name ends at the first =")
        XCTAssertEqual(pairs("my+name=v&na%6De=w"), ["my name=v", "name=w"], "names are decoded too")
    }

    func testQuery_keepsRepeatedNamesInOrder() {
        let query = HiveParameters(query: "tag=a&x=1&tag=b&tag=")
        XCTAssertEqual(query["tag"], "a")
        XCTAssertEqual(query.values("tag"), ["a", "b", ""])
        XCTAssertEqual(query.values("none"), [])
        XCTAssertNil(query["none"])
        XCTAssertNil(query["TAG"], "names compare exactly")
        XCTAssertEqual(query.count, 4)
    }

    func testQuery_emptyPiecesAreSkipped_aNameAloneHasAnEmptyValue() {
        XCTAssertEqual(pairs("a=1&&b=2&"), ["a=1", "b=2"])
        XCTAssertEqual(pairs("flag&x="), ["flag=", "x="])
        XCTAssertEqual(pairs("=v"), ["=v"])
        XCTAssertEqual(pairs(""), [])
        XCTAssertEqual(pairs("&&&"), [])
        XCTAssertTrue(HiveParameters(query: "").isEmpty)
    }

    func testQuery_badEscapesStayAsTheyAre_andBytesThatAreNotUTF8BecomeReplacementCharacters() {
        XCTAssertEqual(pairs("discount=50%"), ["discount=50%"])
        XCTAssertEqual(pairs("a=%zz&b=%4&c=%%41&d=%"), ["a=%zz", "b=%4", "c=%A", "d=%"])
        XCTAssertEqual(pairs("a=%FF&b=%C3"), ["a=\u{FFFD}", "b=\u{FFFD}"])
        XCTAssertEqual(pairs("a=%00"), ["a=\u{0}"])
    }

    func testRequestQuery_isTheTargetAfterTheFirstQuestionMark() {
        func request(_ target: String) -> HiveRequest {
            HiveRequest(
                head: HTTPRequest(method: .get, scheme: "http", authority: "h", path: target),
                connection: ConnectionID(rawValue: 1))
        }
        XCTAssertEqual(request("/search?q=a?b&n=1").query, ["q": "a?b", "n": "1"])
        XCTAssertEqual(request("/search?q=a?b&n=1").path, "/search")
        XCTAssertEqual(request("/search?").query, [:])
        XCTAssertEqual(request("/search").query, [:])
        XCTAssertEqual(request("/search").path, "/search")
        XCTAssertEqual(request("/").parameters, [:])
    }

    func testParameters_areAValueWithADescription() {
        var parameters: HiveParameters = ["id": "7"]
        parameters.append(name: "id", value: "8")
        XCTAssertEqual(parameters.values("id"), ["7", "8"])
        XCTAssertNotEqual(parameters, ["id": "7"])
        XCTAssertEqual(parameters, HiveParameters([(name: "id", value: "7"), (name: "id", value: "8")]))
        XCTAssertEqual("\(parameters)", "[id: 7, id: 8]")
    }
}
