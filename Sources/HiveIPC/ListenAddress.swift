#if canImport(Glibc)
import Glibc
#endif

/// A `host:port` to listen on, as an operator writes it: `127.0.0.1:9502`, `[::1]:9502`. The host must be an IP
/// literal (nothing is resolved: a name could resolve to a public address nobody meant).
package struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    package var host: String
    package var port: Int

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `text`; the error is a sentence naming the option and the value.
    package static func parse(_ text: String, option: String) -> Result<ListenAddress, ListenAddressError> {
        func fail(_ reason: String) -> Result<ListenAddress, ListenAddressError> {
            .failure(ListenAddressError(message: "\(option) \"\(text)\": \(reason); write HOST:PORT with an IP address, "
                + "e.g. 127.0.0.1:9502 or [::1]:9502"))
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return fail("an IPv6 address in brackets must be followed by :PORT")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
            guard isIP(String(host), family: AF_INET6) else { return fail("\"\(host)\" is not an IPv6 address") }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return fail("the port is missing") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return fail("an IPv6 address must be in brackets") }
            guard isIP(String(host), family: AF_INET) else { return fail("\"\(host)\" is not an IPv4 address") }
        }
        guard let port = Int(portText), (1...65_535).contains(port) else {
            return fail("the port must be a number between 1 and 65535")
        }
        return .success(ListenAddress(host: String(host), port: port))
    }

    private static func isIP(_ text: String, family: Int32) -> Bool {
        var buffer = (UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &buffer) { inet_pton(family, text, $0.baseAddress) == 1 }
    }

    package var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

package struct ListenAddressError: Error, CustomStringConvertible {
    package var message: String
    package var description: String { message }
}
