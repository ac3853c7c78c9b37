/// Which web pages may open a WebSocket here (cross-site WebSocket hijacking, RFC 6455 section 10.2).
///
/// A browser sends cookies and credentials with a WebSocket handshake to any site, whichever page opens it, and
/// WebSockets have no same-origin rule of their own: only the server, reading `Origin`, can refuse a page from
/// another site. By default a handshake is accepted when its `Origin` names the host the request was sent to (the
/// `Host` header, compared case-insensitively, as gorilla/websocket's `checkSameOrigin` does), or when it has no
/// `Origin` at all (not a browser: the check protects browser users, other clients can send any header).
package struct OriginPolicy: Sendable {
    /// Exact origins (lowercased, `scheme://host[:port]`) allowed besides the server's own host; may hold "null".
    private let allowed: Set<String>
    private let allowsAll: Bool

    /// - Parameter allowed: `--allowed-origin` values: exact origins, `null`, or `*` for every origin.
    package init(allowed: [String]) {
        self.allowed = Set(allowed.map { $0.lowercased() })
        self.allowsAll = allowed.contains("*")
    }

    /// Why a handshake with this `Origin` is refused, or nil when it is accepted.
    /// - Parameters:
    ///   - origin: the request's `Origin` header (nil: none).
    ///   - host: the host the request was sent to (`Host`, or the authority of an absolute request target).
    func refusal(origin: String?, host: Substring?) -> String? {
        guard let origin, !allowsAll else { return nil }
        let lowered = origin.lowercased()
        if allowed.contains(lowered) { return nil }
        if lowered != "null", let host, let authority = Self.authority(of: lowered),
            authority.elementsEqual(host.lowercased())
        {
            return nil
        }
        let own = host.map { "its own host (\($0))" } ?? "its own host (the request has no Host header)"
        return "Origin \"\(origin.prefix(200))\" may not open a WebSocket on this server: it accepts pages from \(own)"
            + " and origins allowed with --allowed-origin; start hive with --allowed-origin \(origin.prefix(200))"
            + " if that page is yours"
    }

    /// "https://example.com:8443" -> "example.com:8443"; nil when it is not `scheme://authority`.
    static func authority(of origin: String) -> Substring? {
        guard let separator = origin.range(of: "://") else { return nil }
        let authority = origin[separator.upperBound...]
        return authority.isEmpty || authority.contains("/") ? nil : authority
    }

    /// What is wrong with an `--allowed-origin` value, or nil when it is usable: an origin is a scheme, a host and
    /// an optional port, exactly as browsers send it (no path, not even a trailing "/").
    package static func problem(with value: String) -> String? {
        if value == "*" || value.lowercased() == "null" { return nil }
        guard let separator = value.range(of: "://"),
            let scheme = value[..<separator.lowerBound].first, scheme.isLetter,
            value[..<separator.lowerBound].allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) }),
            let authority = authority(of: value), !authority.contains(where: { $0 == "?" || $0 == "#" || $0 == " " })
        else {
            return "--allowed-origin must be an origin as browsers send it, scheme://host[:port] with no path"
                + " (e.g. https://example.com or http://localhost:8080), or \"null\", or \"*\" for any;"
                + " got \"\(value)\""
        }
        return nil
    }
}
