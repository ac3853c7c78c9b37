/// Percent-decoding (RFC 3986 section 2.1) of request targets: query parameters and path segments.
///
/// Lenient, as clients are: a "%" not followed by two hex digits stays as it is rather than failing the request,
/// so a query like "?discount=50%" still reads "50%".
enum PercentDecoding {
    /// The bytes of `text` with each "%XX" replaced by the byte it encodes, and "+" by a space when `plusIsSpace`
    /// (form encoding, application/x-www-form-urlencoded, for queries; in a path "+" is itself).
    static func bytes(_ text: Substring, plusIsSpace: Bool) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        var bytes = text.utf8[...]
        while let byte = bytes.popFirst() {
            switch byte {
            case UInt8(ascii: "%"):
                var lookahead = bytes
                if let high = lookahead.popFirst().flatMap(hexValue), let low = lookahead.popFirst().flatMap(hexValue) {
                    out.append(high << 4 | low)
                    bytes = lookahead
                } else {
                    out.append(byte)
                }
            case UInt8(ascii: "+") where plusIsSpace:
                out.append(UInt8(ascii: " "))
            default:
                out.append(byte)
            }
        }
        return out
    }

    /// `text` decoded; bytes that do not form UTF-8 once decoded become U+FFFD. Nothing to decode costs one pass.
    static func decode(_ text: Substring, plusIsSpace: Bool) -> String {
        guard needsDecoding(text, plusIsSpace: plusIsSpace) else { return String(text) }
        return String(decoding: bytes(text, plusIsSpace: plusIsSpace), as: UTF8.self)
    }

    /// `text` decoded, or nil when the decoded bytes are not UTF-8 (a path segment that names nothing a route can).
    static func decodeStrictly(_ text: Substring) -> String? {
        guard needsDecoding(text, plusIsSpace: false) else { return String(text) }
        return String(validating: bytes(text, plusIsSpace: false), as: UTF8.self)
    }

    private static func needsDecoding(_ text: Substring, plusIsSpace: Bool) -> Bool {
        text.utf8.contains { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
