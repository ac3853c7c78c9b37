import HiveIPC

/// This worker's bound connections, both ways: user → its connections here (a user message reaches those and no
/// others, without a look at the worker's other connections) and connection → user (one each; a rebind replaces).
/// The user of each connection is also written to the registry's user record, which `hive connections` reads.
/// Confined to the event loop.
final class UserIndex {
    private(set) var connectionsOf: [String: [ConnectionID]] = [:]
    private(set) var userOf: [ConnectionID: String] = [:]

    /// Binds `id` to `user`, or unbinds it (nil). Returns whether anything changed.
    @discardableResult
    func bind(_ id: ConnectionID, to user: String?) -> Bool {
        let previous = userOf[id]
        guard previous != user else { return false }
        if let previous, var list = connectionsOf[previous] {
            list.removeAll { $0 == id }  // a user has a few connections: a short list beats a set
            connectionsOf[previous] = list.isEmpty ? nil : list
        }
        userOf[id] = user
        if let user { connectionsOf[user, default: []].append(id) }
        return true
    }

    func user(of id: ConnectionID) -> String? { userOf[id] }

    func connections(of user: String) -> [ConnectionID] { connectionsOf[user] ?? [] }

    /// Users with at least one connection on this worker.
    var userCount: Int { connectionsOf.count }

    /// Worker 0: messages on the user channel that were not Hive's envelopes, since the last warning, and when that
    /// was (monotonic ns): logged at most once a minute, whatever a publisher floods it with.
    var refusedEnvelopes = 0
    var refusalLoggedAt: UInt64?
}

@available(*, unavailable)
extension UserIndex: Sendable {}
