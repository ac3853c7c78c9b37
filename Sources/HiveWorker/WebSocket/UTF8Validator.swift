import NIOCore

/// Incremental UTF-8 validator for text messages that arrive in fragments.
///
/// Accepts exactly the well-formed byte sequences of RFC 3629 / Unicode table 3-7: no overlong forms, no surrogates
/// (U+D800-U+DFFF), nothing above U+10FFFF. A character may be split across any number of `feed` calls; `feed`
/// returns `false` at the first byte that no continuation could make valid, which is what lets the frame handler
/// fail a connection at the first bad fragment (Autobahn 6.4.*) instead of at the end of the message.
///
/// This is the range-checking automaton of the Unicode table rather than Hoehrmann's table-driven DFA: it accepts
/// the same language, needs no 364-byte table to audit, and its ASCII fast path matters more for large messages.
struct UTF8Validator {
    /// Continuation bytes still expected for the current character; 0 between characters.
    private var pending: UInt8 = 0
    /// Inclusive range the next continuation byte must fall in. It is narrower than 0x80...0xBF only right after the
    /// lead bytes E0, ED, F0 and F4: that is how overlongs, surrogates and code points above U+10FFFF are rejected.
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF
    /// Sticky: once the input was invalid, no later bytes can make it valid again.
    private var failed = false

    init() {}

    /// True when the input so far is valid and ends on a character boundary (call at the end of a message).
    var isAtBoundary: Bool {
        !self.failed && self.pending == 0
    }

    mutating func reset() {
        self = UTF8Validator()
    }

    /// Feeds bytes; returns false as soon as the bytes so far can no longer be valid UTF-8.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if self.failed {
            return false
        }
        // Locals instead of stored properties keep the hot loop in registers.
        var pending = self.pending
        var lower = self.lower
        var upper = self.upper
        var index = 0
        let count = bytes.count

        while index < count {
            if pending == 0 {
                // ASCII fast path: text messages are mostly ASCII, and 9.* sends 16 MiB of it.
                while index &+ 8 <= count {
                    let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    if word & 0x8080_8080_8080_8080 != 0 {
                        break
                    }
                    index &+= 8
                }
                if index >= count {
                    break
                }
                let byte = bytes[index]
                index &+= 1
                switch byte {
                case 0x00...0x7F:
                    continue
                case 0xC2...0xDF:
                    (pending, lower, upper) = (1, 0x80, 0xBF)
                case 0xE0:
                    (pending, lower, upper) = (2, 0xA0, 0xBF)  // below A0 would be an overlong 3-byte form
                case 0xE1...0xEC, 0xEE, 0xEF:
                    (pending, lower, upper) = (2, 0x80, 0xBF)
                case 0xED:
                    (pending, lower, upper) = (2, 0x80, 0x9F)  // above 9F would be a surrogate
                case 0xF0:
                    (pending, lower, upper) = (3, 0x90, 0xBF)  // below 90 would be an overlong 4-byte form
                case 0xF1...0xF3:
                    (pending, lower, upper) = (3, 0x80, 0xBF)
                case 0xF4:
                    (pending, lower, upper) = (3, 0x80, 0x8F)  // above 8F would be beyond U+10FFFF
                default:
                    // Stray continuation bytes, C0/C1 (always overlong) and F5...FF (beyond U+10FFFF).
                    self.failed = true
                    return false
                }
            } else {
                let byte = bytes[index]
                index &+= 1
                guard byte >= lower && byte <= upper else {
                    self.failed = true
                    return false
                }
                pending &-= 1
                (lower, upper) = (0x80, 0xBF)
            }
        }

        self.pending = pending
        self.lower = lower
        self.upper = upper
        return true
    }

    /// Feeds bytes; returns false as soon as the bytes so far can no longer be valid UTF-8.
    mutating func feed(_ bytes: ByteBufferView) -> Bool {
        if let result = bytes.withContiguousStorageIfAvailable({ self.feed(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        // ByteBufferView is always contiguous today; the copy only keeps this correct if that ever changes.
        return Array(bytes).withUnsafeBytes { self.feed($0) }
    }

    /// Feeds the readable bytes of `buffer`; returns false as soon as the bytes can no longer be valid UTF-8.
    mutating func feed(_ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { self.feed($0) }
    }

    /// Whether the readable bytes of `buffer` are, on their own, complete and valid UTF-8.
    static func isValid(_ buffer: ByteBuffer) -> Bool {
        var validator = UTF8Validator()
        return validator.feed(buffer) && validator.isAtBoundary
    }
}
