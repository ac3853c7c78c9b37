import XCTest

@testable import HiveWorker

final class ChannelQueryTests: XCTestCase {
    func testChannelsParameter_isFoundDecodedAndChecked() throws {
        XCTAssertEqual(try ChannelQuery.channels(inTarget: "/").get(), [])
        XCTAssertEqual(try ChannelQuery.channels(inTarget: "/?a=1&b").get(), [])
        XCTAssertEqual(try ChannelQuery.channels(inTarget: "/?channels=news,sport").get(), ["news", "sport"])
        XCTAssertEqual(try ChannelQuery.channels(inTarget: "/ws?x=1&channels=news%2Csport&channels=a%3Ab").get(),
                       ["news", "sport", "a:b"])
        XCTAssertThrowsError(try ChannelQuery.channels(inTarget: "/?channels=").get())
        XCTAssertThrowsError(try ChannelQuery.channels(inTarget: "/?channels=a%2").get())
        XCTAssertThrowsError(try ChannelQuery.channels(inTarget: "/?channels=%FF").get())
        XCTAssertThrowsError(try ChannelQuery.channels(inTarget: "/?channels=a+b").get()) {
            XCTAssertTrue("\($0)".contains("\"a b\""), "\($0)")
        }
    }
}
