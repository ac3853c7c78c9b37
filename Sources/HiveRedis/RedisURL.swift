/// Where Redis is: `redis://[:password@]host[:port][/db]` or `unix:///path/to/redis.sock`.
package struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    package enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    package var endpoint: Endpoint
    package var password: String?
    /// Pub/sub ignores databases; kept so the same URL works for `hive publish` and other tools.
    package var database: Int

    package init(endpoint: Endpoint, password: String? = nil, database: Int = 0) {
        self.endpoint = endpoint
        self.password = password
        self.database = database
    }

    package struct ParseError: Error, CustomStringConvertible {
        package let url: String
        package let reason: String
        package var description: String {
            "invalid Redis URL \"\(url)\": \(reason); expected redis://[:password@]host:port[/db] or unix:///path"
        }
    }

    package init(parsing text: String) throws {
        if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/") else { throw ParseError(url: text, reason: "the socket path must be absolute") }
            self.init(endpoint: .unix(path: path))
            return
        }
        guard text.hasPrefix("redis://") else { throw ParseError(url: text, reason: "unknown scheme") }
        var rest = Substring(text.dropFirst("redis://".count))
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            // redis://:password@host and redis://user:password@host (the user is ignored: Redis 5 has no ACL users)
            password = credentials.contains(":") ? String(credentials[credentials.index(after: credentials.firstIndex(of: ":")!)...]) : String(credentials)
            rest = rest[rest.index(after: at)...]
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let number = Int(db), number >= 0 else { throw ParseError(url: text, reason: "database \"\(db)\" is not a number") }
                database = number
            }
            rest = rest[..<slash]
        }
        var host = String(rest)
        var port = 6379
        if rest.hasPrefix("[") {  // [::1]:6379
            guard let close = rest.firstIndex(of: "]") else { throw ParseError(url: text, reason: "unclosed [ in the host") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let number = Int(after.dropFirst()), (1...65_535).contains(number) else {
                    throw ParseError(url: text, reason: "port \"\(after.dropFirst())\" is not a port number")
                }
                port = number
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let number = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(number) else {
                throw ParseError(url: text, reason: "port \"\(rest[rest.index(after: colon)...])\" is not a port number")
            }
            port = number
        }
        guard !host.isEmpty else { throw ParseError(url: text, reason: "the host is missing") }
        self.init(endpoint: .tcp(host: host, port: port), password: password, database: database)
    }

    /// The address without the password, for logs and `hive status`.
    package var description: String {
        switch endpoint {
        case .tcp(let host, let port): host.contains(":") ? "redis://[\(host)]:\(port)" : "redis://\(host):\(port)"
        case .unix(let path): "unix://\(path)"
        }
    }
}
