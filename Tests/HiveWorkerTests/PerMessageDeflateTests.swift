import XCTest

@testable import HiveWorker

/// The negotiation of permessage-deflate (RFC 7692 5 and 7.1): what is accepted, what is declined, and that nothing
/// a client writes in `Sec-WebSocket-Extensions` does more than decline.
final class PerMessageDeflateTests: XCTestCase {
    private let always = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

    func testNegotiate_chromeOffer_acceptsWithNoContextTakeoverBothWays() {
        let agreement = PerMessageDeflate.negotiate(["permessage-deflate; client_max_window_bits"])
        XCTAssertEqual(agreement, PerMessageDeflate.Agreement(serverMaxWindowBits: 15, serverWindowBitsRequested: false))
        XCTAssertEqual(agreement?.responseHeader, always)
        XCTAssertEqual(agreement?.deflateWindowBits, 15)
    }

    func testNegotiate_firefoxOffer_accepts() {
        XCTAssertEqual(PerMessageDeflate.negotiate(["permessage-deflate"])?.responseHeader, always)
    }

    func testNegotiate_serverMaxWindowBits_isAnsweredAndUsed() {
        let agreement = PerMessageDeflate.negotiate(["permessage-deflate; server_max_window_bits=10"])
        XCTAssertEqual(agreement?.responseHeader, always + "; server_max_window_bits=10")
        XCTAssertEqual(agreement?.deflateWindowBits, 10)
        // zlib has no 8-bit raw window; 9 bits never refers back more than 250 bytes.
        let eight = PerMessageDeflate.negotiate(["permessage-deflate; server_max_window_bits=8"])
        XCTAssertEqual(eight?.responseHeader, always + "; server_max_window_bits=8")
        XCTAssertEqual(eight?.deflateWindowBits, 9)
    }

    func testNegotiate_quotedValue_isUnquoted() {
        let agreement = PerMessageDeflate.negotiate(["permessage-deflate; server_max_window_bits=\"12\""])
        XCTAssertEqual(agreement?.serverMaxWindowBits, 12)
    }

    func testNegotiate_badFirstOffer_fallsBackToNextOffer() {
        // Autobahn 13.7.*: several offers, the first one unacceptable.
        let header = "permessage-deflate; server_max_window_bits=7, permessage-deflate; client_no_context_takeover"
        XCTAssertEqual(PerMessageDeflate.negotiate([header])?.serverWindowBitsRequested, false)
        // And across several header lines.
        XCTAssertNotNil(PerMessageDeflate.negotiate(["x-webkit-deflate-frame", "permessage-deflate"]))
    }

    func testNegotiate_badOffers_areDeclined() {
        let declined = [
            "permessage-deflate; server_max_window_bits",  // value required
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=abc",
            "permessage-deflate; client_max_window_bits=99",
            "permessage-deflate; server_no_context_takeover=1",  // takes no value
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",  // twice
            "permessage-deflate; unknown_parameter",
            "permessage-deflate; server_max_window_bits=\"1 0\"",  // quoted, but not a token once unquoted
            "x-webkit-deflate-frame",
            "",
        ]
        for header in declined {
            XCTAssertNil(PerMessageDeflate.negotiate([header]), "declines \"\(header)\"")
        }
        XCTAssertNil(PerMessageDeflate.negotiate([]), "no header, no compression")
    }

    func testNegotiate_malformedHeader_isDeclinedNotCrashed() {
        let malformed = [
            "permessage-deflate;", "permessage-deflate; =15", "permessage-deflate; a=", ";", "permessage-deflate ;;",
            "permessage-deflate; server_max_window_bits=\"10", "permessage-deflate; a=\"\\", "perm\u{0}essage-deflate",
            "permessage-deflate x", "\u{1F41D}", String(repeating: "permessage-deflate;a=\"", count: 1000),
        ]
        for header in malformed {
            XCTAssertNil(PerMessageDeflate.negotiate([header]), "declines \"\(header.prefix(60))\"")
        }
        // A malformed header line spoils the whole negotiation, even with a good offer beside it.
        XCTAssertNil(PerMessageDeflate.negotiate(["permessage-deflate", "permessage-deflate;"]))
    }

    func testParseExtensions_tolerantOfWhitespaceAndEmptyElements() {
        let offers = PerMessageDeflate.parseExtensions(" , foo ;a = 1 ;\tb=\"x\\y\" ,, bar,")
        XCTAssertEqual(offers, [
            PerMessageDeflate.Offer(name: "foo", parameters: [("a", "1"), ("b", "xy")]),
            PerMessageDeflate.Offer(name: "bar", parameters: []),
        ])
    }
}
