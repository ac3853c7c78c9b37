/// permessage-deflate (RFC 7692): what a client's `Sec-WebSocket-Extensions` offers, and what this server answers.
///
/// The server always answers `server_no_context_takeover` and `client_no_context_takeover` (RFC 7692 7.1.1.1 and
/// 7.1.1.2 let it, whatever the offer said), so that every message, in either direction, is compressed on its own:
///
/// - outgoing, one compressed frame is valid for every session with the same window, which is what lets a worker
///   compress a broadcast once and write the same bytes to all its compressed clients (`BroadcastCompressor`);
/// - incoming, a message is inflated from an empty window, so one `MessageInflater` per worker serves every
///   connection and an idle compressed connection holds no zlib state at all.
///
/// A malformed header, or an offer with an unknown, repeated or out-of-range parameter, is declined (RFC 7692 5.1:
/// the connection goes on without compression); nothing here fails a handshake.
enum PerMessageDeflate {
    static let token = "permessage-deflate"

    /// What the server agreed to for one connection.
    struct Agreement: Equatable, Sendable {
        /// The largest LZ77 window (log2 of bytes) this server may use for its messages: the offer's
        /// `server_max_window_bits`, or 15.
        var serverMaxWindowBits: Int = 15
        /// Whether the offer named `server_max_window_bits`; the response must then name it too.
        var serverWindowBitsRequested = false

        /// The window this server deflates with. zlib's raw deflate has no 8-bit window, but with 9 bits it never
        /// refers further back than 250 bytes (its window minus 262 bytes of lookahead), which a 256-byte window
        /// holds: what it writes is valid for a client that asked for 8.
        var deflateWindowBits: Int { max(self.serverMaxWindowBits, 9) }

        /// The value of the response's `Sec-WebSocket-Extensions` header.
        var responseHeader: String {
            var value = "\(PerMessageDeflate.token); server_no_context_takeover; client_no_context_takeover"
            if self.serverWindowBitsRequested {
                value += "; server_max_window_bits=\(self.serverMaxWindowBits)"
            }
            return value
        }
    }

    /// One extension of a `Sec-WebSocket-Extensions` list, parameters in order (a value-less one has value nil).
    struct Offer: Equatable {
        var name: String
        var parameters: [(name: String, value: String?)]

        static func == (lhs: Offer, rhs: Offer) -> Bool {
            lhs.name == rhs.name && lhs.parameters.map(\.name) == rhs.parameters.map(\.name)
                && lhs.parameters.map(\.value) == rhs.parameters.map(\.value)
        }
    }

    /// The agreement for the first permessage-deflate offer this server can accept, among every
    /// `Sec-WebSocket-Extensions` header of the request (in order), or nil: no offer, none acceptable, or a header
    /// that does not parse.
    static func negotiate(_ headerValues: [String]) -> Agreement? {
        var offers: [Offer] = []
        for value in headerValues {
            guard let parsed = parseExtensions(value) else { return nil }
            offers += parsed
        }
        return offers.lazy.compactMap(accept).first
    }

    /// The agreement for one offer, or nil when RFC 7692 7.1 says to decline it: another extension, a parameter
    /// this extension does not define, one given twice, or a value out of range.
    static func accept(_ offer: Offer) -> Agreement? {
        guard offer.name.lowercased() == token else { return nil }
        var agreement = Agreement()
        var seen: Set<String> = []
        for (name, value) in offer.parameters {
            guard seen.insert(name).inserted else { return nil }
            switch name {
            case "server_no_context_takeover", "client_no_context_takeover":
                // Granted either way: this server uses neither context.
                guard value == nil else { return nil }
            case "server_max_window_bits":
                guard let value, let bits = windowBits(value) else { return nil }
                agreement.serverMaxWindowBits = bits
                agreement.serverWindowBitsRequested = true
            case "client_max_window_bits":
                // The client may limit its own window; the shared inflater reads any window up to 15 bits. Not
                // named in the response, so the client keeps whatever window it likes.
                if let value, windowBits(value) == nil { return nil }
            default:
                return nil
            }
        }
        return agreement
    }

    /// 8 to 15, in decimal without leading zeros (RFC 7692 7.1.2.1), else nil.
    private static func windowBits(_ text: String) -> Int? {
        guard (1...2).contains(text.utf8.count), text.first != "0", let bits = Int(text), (8...15).contains(bits)
        else { return nil }
        return bits
    }

    /// Parses one header value as RFC 6455 9.1's `extension-list`: `1#( token *( ";" token [ "=" ( token /
    /// quoted-string ) ] ) )`, with empty list elements allowed (RFC 9110 5.6.1). Nil when it does not parse.
    static func parseExtensions(_ value: String) -> [Offer]? {
        var scanner = Scanner(Array(value.utf8))
        var offers: [Offer] = []
        while true {
            scanner.skipWhitespace()
            if scanner.atEnd { return offers }
            if scanner.take(UInt8(ascii: ",")) { continue }
            guard let name = scanner.token() else { return nil }
            var offer = Offer(name: name, parameters: [])
            while true {
                scanner.skipWhitespace()
                if scanner.atEnd || scanner.take(UInt8(ascii: ",")) { break }
                guard scanner.take(UInt8(ascii: ";")) else { return nil }
                scanner.skipWhitespace()
                guard let parameter = scanner.token() else { return nil }
                scanner.skipWhitespace()
                var parameterValue: String?
                if scanner.take(UInt8(ascii: "=")) {
                    scanner.skipWhitespace()
                    // RFC 7692 7.1: a quoted value must be a token once unquoted.
                    guard let text = scanner.quotedString() ?? scanner.token(), Scanner.isToken(text) else {
                        return nil
                    }
                    parameterValue = text
                }
                offer.parameters.append((parameter, parameterValue))
            }
            offers.append(offer)
        }
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { index == bytes.count }

        mutating func skipWhitespace() {
            while index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") {
                index += 1
            }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        mutating func token() -> String? {
            let start = index
            while index < bytes.count, Self.isTokenByte(bytes[index]) { index += 1 }
            return index > start ? String(decoding: bytes[start..<index], as: UTF8.self) : nil
        }

        /// A quoted-string's content with its escapes undone, or nil (and nothing consumed) when there is none or
        /// it does not end.
        mutating func quotedString() -> String? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            var cursor = index + 1
            var content: [UInt8] = []
            while cursor < bytes.count {
                let byte = bytes[cursor]
                if byte == UInt8(ascii: "\"") {
                    index = cursor + 1
                    return String(decoding: content, as: UTF8.self)
                }
                if byte == UInt8(ascii: "\\") {
                    cursor += 1
                    guard cursor < bytes.count else { return nil }
                }
                content.append(bytes[cursor])
                cursor += 1
            }
            return nil
        }

        static func isToken(_ text: String) -> Bool { !text.isEmpty && text.utf8.allSatisfy(isTokenByte) }

        /// RFC 9110 5.6.2 tchar.
        static func isTokenByte(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
            }
        }
    }
}
