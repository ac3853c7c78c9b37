extension RedisPublisher {
    /// `PUBLISH` from the shell (`hive publish`): one connection, one command, blocking. A worker publishes through
    /// an instance instead, which keeps its connection.
    /// - Returns: how many subscribers received the message.
    package static func publish(url: RedisURL, channel: String, payload: [UInt8]) throws -> Int {
        let connection = try RedisConnection(url: url)
        try connection.authenticate()
        switch try connection.command([Array("PUBLISH".utf8), Array(channel.utf8), payload]) {
        case .integer(let receivers): return receivers
        case .error(let message): throw RedisError(address: url.description, message: "PUBLISH failed: \(message)")
        default: throw RedisError(address: url.description, message: "PUBLISH gave an unexpected reply")
        }
    }
}
