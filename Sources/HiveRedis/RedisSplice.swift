/// Moves a Redis subscription from one process to another (a reload's old and new worker 0) without losing or
/// repeating a message, although the two subscriptions overlap for a moment.
///
/// Both processes subscribe to one splice channel besides their own. The new one, once its SUBSCRIBEs are
/// confirmed, publishes a marker (a token of its own) on it and delivers nothing until its marker comes back; the
/// old one delivers until it sees a marker that is not its own, and stops there. Redis writes every published
/// message to all its subscribers in one order, so each message before the marker is the old one's and each after
/// it the new one's: exactly once. A new process without a predecessor (the first start) delivers at once.
package struct RedisSplice: Sendable {
    package enum Mode: Equatable, Sendable {
        /// The subscription is ours: deliver (and hand off at a foreign marker).
        case delivering
        /// Waiting for our own marker: what comes before it is the predecessor's to deliver.
        case awaiting(token: String)
        /// A successor's marker came: deliver nothing more, close the subscription.
        case handedOff
    }

    package enum Verdict: Equatable, Sendable {
        case deliver
        case drop
        /// Drop this and everything after it; the subscription is the successor's now.
        case handOff
    }

    /// The splice channel: one per master (its pid and start time), so two Hives on one Redis never splice each
    /// other's subscriptions.
    package let channel: String
    package private(set) var mode: Mode
    /// This process's marker (the same after a reconnect, so a late copy is still recognised as ours).
    package let token: String

    /// - Parameter awaiting: true in a process that may have a predecessor still delivering.
    package init(channel: String, token: String, awaiting: Bool) {
        self.channel = channel
        self.token = token
        self.mode = awaiting ? .awaiting(token: token) : .delivering
    }

    /// What the old process writes to the registry (`RedisField.spliceDone`) once everything it delivered before
    /// the marker has left it: the new one holds what follows the marker until then, so the two never reorder.
    package static func fingerprint(_ token: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in token.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash | 1  // never 0, the word's value before any splice
    }

    package static func channel(masterPID: Int32, startedAt: UInt64) -> String {
        "__hive:splice:\(masterPID):\(startedAt)"
    }

    /// Decides one message, in the order Redis sent them. `successorAllowed`: this process retired (a reload), so
    /// a foreign marker is its successor's; otherwise a marker is ignored, and whoever else can publish on this
    /// Redis cannot end the subscription of a worker 0 that is not being replaced.
    package mutating func admit(_ message: RedisMessage, successorAllowed: Bool = true) -> Verdict {
        let marker = message.channel == channel && message.pattern == nil
        switch mode {
        case .handedOff:
            return .drop
        case .awaiting(let token):
            if marker && message.payload == Array(token.utf8) { mode = .delivering }
            return .drop
        case .delivering:
            guard marker else { return .deliver }
            if message.payload == Array(token.utf8) { return .drop }  // ours, published again after a reconnect
            guard successorAllowed else { return .drop }
            mode = .handedOff
            return .handOff
        }
    }

    /// The marker never came back (Redis refused the publish, say): deliver anyway. A predecessor may then deliver
    /// some messages too; better twice than never.
    package mutating func stopWaiting() {
        if case .awaiting = mode { mode = .delivering }
    }
}
