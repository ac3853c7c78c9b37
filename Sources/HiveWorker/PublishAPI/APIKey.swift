/// The key of the HTTP publish API (`--api-key`, `HIVE_API_KEY`). Never printed: its description is "***", so a
/// log line or an error message that shows a configuration cannot show the key.
package struct APIKey: Sendable, CustomStringConvertible {
    private let bytes: [UInt8]

    /// nil for an empty key: no key is no API.
    package init?(_ key: String) {
        guard !key.isEmpty else { return nil }
        bytes = Array(key.utf8)
    }

    package var description: String { "***" }

    /// Whether `given` is the key, in a time that depends on the length of `given` only: every byte is compared
    /// whatever the first difference, so the answer's timing tells a client nothing about how much of a guess
    /// was right, nor about the key's length.
    package func matches(_ given: some Collection<UInt8>) -> Bool {
        var difference = UInt8(given.count == bytes.count ? 0 : 1)
        var index = 0
        for byte in given {
            // Wraps around the key for a longer guess: the loop still reads a key byte per byte given.
            difference |= byte ^ bytes[index]
            index = index + 1 == bytes.count ? 0 : index + 1
        }
        return difference == 0
    }

    /// The key an `Authorization: apikey KEY` header value carries: the scheme in any case, then one or more
    /// spaces. nil when the value is of another scheme (`Bearer …`) or has no key.
    package static func credential(inAuthorization value: Substring) -> Substring.UTF8View? {
        let scheme = "apikey".utf8
        let bytes = value.utf8
        guard bytes.count > scheme.count,
            bytes.prefix(scheme.count).elementsEqual(scheme, by: { $0 | 0x20 == $1 })
        else { return nil }
        let rest = bytes.dropFirst(scheme.count)
        guard rest.first == UInt8(ascii: " ") || rest.first == UInt8(ascii: "\t") else { return nil }
        let key = rest.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        return key.isEmpty ? nil : key
    }
}
