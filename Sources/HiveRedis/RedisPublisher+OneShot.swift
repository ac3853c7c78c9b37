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

    /// `hive publish` with history: the history script through `EVAL` (one connection, so no `SCRIPT LOAD`).
    package static func publish(url: RedisURL, channel: String, payload: [UInt8], history: HistoryTarget) throws -> PublishReceipt {
        let connection = try RedisConnection(url: url)
        try connection.authenticate()
        let arguments = [Array("EVAL".utf8), Array(ChannelHistory.script.utf8)]
            + ChannelHistory.arguments(keys: history.keys, redisChannel: channel, payload: payload, policy: history.policy)
        let reply = try connection.command(arguments)
        if case .error(let message) = reply { throw RedisError(address: url.description, message: "the history script failed: \(message)") }
        guard case .array(let values) = reply, values.count == 3, case .string(let epoch) = values[0], HistoryPosition.isEpoch(epoch),
            case .integer(let offset) = values[1], offset > 0, case .integer(let receivers) = values[2]
        else { throw RedisError(address: url.description, message: "the history script gave an unexpected reply: \(reply)") }
        return PublishReceipt(receivers: receivers, position: HistoryPosition(epoch: String(decoding: epoch, as: UTF8.self), offset: UInt64(offset)))
    }
}
