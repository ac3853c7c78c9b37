import XCTest

@testable import HiveIPC

final class PrometheusTextTests: XCTestCase {
    func testFamily_writesHelpTypeThenSamples_inTheOrderAdded() {
        var page = PrometheusText()
        page.family("b_total", .counter, help: "Second.", [.init([("worker", "0")], 3 as UInt64)])
        page.family("a", .gauge, help: "First.", [.init([], 1.5), .init([("x", "1"), ("y", "2")], 2 as UInt64)])
        XCTAssertEqual(page.text, """
            # HELP b_total Second.
            # TYPE b_total counter
            b_total{worker="0"} 3
            # HELP a First.
            # TYPE a gauge
            a 1.5
            a{x="1",y="2"} 2

            """)
    }

    func testLabelValues_escapeBackslashQuoteAndNewline_helpEscapesBackslashAndNewline() {
        var page = PrometheusText()
        page.family("m", .gauge, help: "a \\ b\nc \"q\"", [.init([("v", "say \"hi\"\\\n")], 1 as UInt64)])
        XCTAssertEqual(page.text, """
            # HELP m a \\\\ b\\nc "q"
            # TYPE m gauge
            m{v="say \\"hi\\"\\\\\\n"} 1

            """)
    }

    func testFormat_spellsFloatsAsPrometheusDoes() {
        XCTAssertEqual(PrometheusText.format(2), "2")
        XCTAssertEqual(PrometheusText.format(0.25), "0.25")
        XCTAssertEqual(PrometheusText.format(.infinity), "+Inf")
        XCTAssertEqual(PrometheusText.format(-.infinity), "-Inf")
        XCTAssertEqual(PrometheusText.format(.nan), "NaN")
        XCTAssertEqual(PrometheusText.format(1796146842.232), "1796146842.232")
    }

    func testNames_areChecked() {
        XCTAssertTrue(PrometheusText.isValidName("hive_connections"))
        XCTAssertTrue(PrometheusText.isValidName("a:b_c9"))
        XCTAssertFalse(PrometheusText.isValidName("9lives"))
        XCTAssertFalse(PrometheusText.isValidName("hive-connections"))
        XCTAssertFalse(PrometheusText.isValidName(""))
        XCTAssertTrue(PrometheusText.isValidLabelName("worker"))
        XCTAssertFalse(PrometheusText.isValidLabelName("__name__"))
        XCTAssertFalse(PrometheusText.isValidLabelName("a:b"))
    }
}
