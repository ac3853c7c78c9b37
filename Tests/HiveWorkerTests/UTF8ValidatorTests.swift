import NIOCore
import XCTest

@testable import HiveWorker

final class UTF8ValidatorTests: XCTestCase {
    private func isValid(_ bytes: [UInt8]) -> Bool {
        UTF8Validator.isValid(ByteBuffer(bytes: bytes))
    }

    func testIsValid_whenEmpty_returnsTrue() {
        XCTAssertTrue(self.isValid([]))
    }

    func testIsValid_whenASCII_returnsTrue() {
        XCTAssertTrue(self.isValid(Array("Hello, World! 0123456789 ~\u{7F}\u{0}".utf8)))
    }

    func testIsValid_whenWellFormedMultiByteCharacters_returnsTrue() {
        let samples: [[UInt8]] = [
            Array("κόσμε".utf8),
            Array("€ 𝄞 日本語 \u{10FFFF}".utf8),
            [0xC2, 0x80],  // U+0080, smallest 2-byte form
            [0xDF, 0xBF],  // U+07FF
            [0xE0, 0xA0, 0x80],  // U+0800, smallest 3-byte form
            [0xED, 0x9F, 0xBF],  // U+D7FF, just below the surrogates
            [0xEE, 0x80, 0x80],  // U+E000, just above the surrogates
            [0xEF, 0xBF, 0xBF],  // U+FFFF
            [0xF0, 0x90, 0x80, 0x80],  // U+10000, smallest 4-byte form
            [0xF4, 0x8F, 0xBF, 0xBF],  // U+10FFFF, the largest code point
        ]
        for sample in samples {
            XCTAssertTrue(self.isValid(sample), "\(sample)")
        }
    }

    func testIsValid_whenOverlongEncoding_returnsFalse() {
        let samples: [[UInt8]] = [
            [0xC0, 0x80],  // U+0000 in 2 bytes
            [0xC1, 0xBF],  // U+007F in 2 bytes
            [0xE0, 0x80, 0x80],  // U+0000 in 3 bytes
            [0xE0, 0x9F, 0xBF],  // U+07FF in 3 bytes
            [0xF0, 0x80, 0x80, 0x80],  // U+0000 in 4 bytes
            [0xF0, 0x8F, 0xBF, 0xBF],  // U+FFFF in 4 bytes
            [0xF8, 0x88, 0x80, 0x80, 0x80],  // 5-byte form
        ]
        for sample in samples {
            XCTAssertFalse(self.isValid(sample), "\(sample)")
        }
    }

    func testIsValid_whenSurrogateCodePoint_returnsFalse() {
        XCTAssertFalse(self.isValid([0xED, 0xA0, 0x80]))  // U+D800
        XCTAssertFalse(self.isValid([0xED, 0xAD, 0xBF]))  // U+DB7F
        XCTAssertFalse(self.isValid([0xED, 0xBF, 0xBF]))  // U+DFFF
        XCTAssertFalse(self.isValid([0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80]))  // surrogate pair in CESU-8
    }

    func testIsValid_whenAboveU10FFFF_returnsFalse() {
        XCTAssertFalse(self.isValid([0xF4, 0x90, 0x80, 0x80]))  // U+110000
        XCTAssertFalse(self.isValid([0xF5, 0x80, 0x80, 0x80]))
        XCTAssertFalse(self.isValid([0xF7, 0xBF, 0xBF, 0xBF]))
        XCTAssertFalse(self.isValid([0xFE]))
        XCTAssertFalse(self.isValid([0xFF]))
    }

    func testIsValid_whenStrayContinuationByte_returnsFalse() {
        XCTAssertFalse(self.isValid([0x80]))
        XCTAssertFalse(self.isValid([0x41, 0xBF, 0x41]))
        XCTAssertFalse(self.isValid([0xC2, 0x80, 0x80]))
    }

    func testIsValid_whenSequenceTruncatedAtEnd_returnsFalse() {
        XCTAssertFalse(self.isValid([0x41, 0xC2]))
        XCTAssertFalse(self.isValid([0xE2, 0x82]))  // "€" without its last byte
        XCTAssertFalse(self.isValid([0xF0, 0x9D, 0x84]))  // "𝄞" without its last byte
    }

    func testIsValid_whenLeadByteFollowedByNonContinuation_returnsFalse() {
        XCTAssertFalse(self.isValid([0xC2, 0x41]))
        XCTAssertFalse(self.isValid([0xE2, 0x82, 0x41]))
    }

    func testFeed_whenTruncatedSequence_acceptsButIsNotAtBoundary() {
        var validator = UTF8Validator()
        XCTAssertTrue(validator.feed(ByteBuffer(bytes: [0x41, 0xE2, 0x82])))
        XCTAssertFalse(validator.isAtBoundary)
        XCTAssertTrue(validator.feed(ByteBuffer(bytes: [0xAC])))
        XCTAssertTrue(validator.isAtBoundary)
    }

    func testFeed_whenCharactersSplitByteByByte_acceptsThem() {
        var validator = UTF8Validator()
        for byte in "a€𝄞κ\u{10FFFF}".utf8 {
            XCTAssertTrue(validator.feed(ByteBuffer(bytes: [byte]).readableBytesView))
        }
        XCTAssertTrue(validator.isAtBoundary)
    }

    func testFeed_whenBadByteArrivesInLaterChunk_failsOnThatChunk() {
        // Autobahn 6.4.1: valid first fragment, then a code point above U+10FFFF in the next one.
        var validator = UTF8Validator()
        XCTAssertTrue(validator.feed(ByteBuffer(string: "κόσμε")))
        XCTAssertFalse(validator.feed(ByteBuffer(bytes: [0xF4, 0x90, 0x80, 0x80])))
    }

    func testFeed_whenSequenceCanNoLongerBeValid_failsBeforeItIsComplete() {
        // F4 90 is already beyond U+10FFFF: no need to wait for the last two bytes.
        var validator = UTF8Validator()
        XCTAssertTrue(validator.feed(ByteBuffer(bytes: [0xF4])))
        XCTAssertFalse(validator.feed(ByteBuffer(bytes: [0x90])))
    }

    func testFeed_afterFailure_keepsFailingUntilReset() {
        var validator = UTF8Validator()
        XCTAssertFalse(validator.feed(ByteBuffer(bytes: [0xFF])))
        XCTAssertFalse(validator.feed(ByteBuffer(string: "fine")))
        XCTAssertFalse(validator.isAtBoundary)
        validator.reset()
        XCTAssertTrue(validator.feed(ByteBuffer(string: "fine")))
        XCTAssertTrue(validator.isAtBoundary)
    }

    func testFeed_whenInvalidByteAfterLongASCIIRun_isFoundAtEveryOffset() {
        // Exercises the 8-byte ASCII fast path: the bad byte may sit anywhere in or after a word.
        for prefix in 0..<40 {
            var bytes = [UInt8](repeating: 0x61, count: prefix)
            bytes.append(0xFF)
            bytes.append(contentsOf: [UInt8](repeating: 0x62, count: 11))
            XCTAssertFalse(self.isValid(bytes), "bad byte at \(prefix)")
            bytes[prefix] = 0x63
            XCTAssertTrue(self.isValid(bytes), "no bad byte, prefix \(prefix)")
        }
    }

    func testFeed_matchesStandardLibraryValidation_onRandomInputs() {
        // Bytes drawn mostly from the boundaries of the UTF-8 table, where a validator goes wrong.
        let interesting: [UInt8] = [
            0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED,
            0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF,
        ]
        var random = SplitMix64(seed: 0x6455)
        for _ in 0..<20_000 {
            let length = Int(random.next() % 14)
            let bytes = (0..<length).map { _ in interesting[Int(random.next() % UInt64(interesting.count))] }
            let expected = String(validating: bytes, as: UTF8.self) != nil
            XCTAssertEqual(self.isValid(bytes), expected, "\(bytes)")

            // The same bytes fed in two chunks at a random split point give the same answer.
            let split = length == 0 ? 0 : Int(random.next() % UInt64(length + 1))
            var validator = UTF8Validator()
            let chunked =
                validator.feed(ByteBuffer(bytes: bytes[..<split]))
                && validator.feed(ByteBuffer(bytes: bytes[split...]))
                && validator.isAtBoundary
            XCTAssertEqual(chunked, expected, "\(bytes) split at \(split)")
        }
    }
}
