import HiveIPC
import HiveRedis
import NIOCore

/// This worker's channel subscriptions, both ways: channel → its sessions here (a channel message reaches those
/// and no others, without a look at the worker's other connections), and connection → its channels (so a
/// connection that ends leaves them all). Each subscription is also counted in the registry's channel table, which
/// is what worker 0's Redis subscription and the other workers' deliveries read. Confined to the event loop.
final class ChannelIndex {
    struct Members {
        /// The registry slot counting this worker's subscribers: pinned while this worker counts one there.
        var slot: Int
        var sessions: [ConnectionID: WebSocketSession] = [:]
        /// The sessions among them that asked for envelopes (`envelope=json`), with where each is in the channel.
        var cursors: [ConnectionID: ChannelCursor] = [:]
    }

    private(set) var members: [String: Members] = [:]
    private(set) var channelsOf: [ConnectionID: [String]] = [:]
    /// Connections that receive channel messages in envelopes (`envelope=json`), from before they join channels.
    private var enveloped: Set<ConnectionID> = []
    /// Messages a recovering subscriber may have waiting while its history is read.
    var maxRecoveryBuffer = 10_000

    /// Channel messages to this connection come in envelopes from now on.
    func useEnvelopes(_ id: ConnectionID) { enveloped.insert(id) }

    func cursor(_ id: ConnectionID, in channel: String) -> ChannelCursor? { members[channel]?.cursors[id] }

    /// A recovering subscriber's new cursor (it must be an enveloped subscriber of `channel`).
    func replaceCursor(_ id: ConnectionID, in channel: String, with cursor: ChannelCursor) {
        guard members[channel]?.cursors[id] != nil else { return }
        members[channel]!.cursors[id] = cursor
    }

    let registry: SharedRegistry
    let workerID: Int

    init(registry: SharedRegistry, workerID: Int) {
        self.registry = registry
        self.workerID = workerID
    }

    enum SubscribeError: Error {
        case perConnectionLimit
        case tableFull(SharedRegistry.ChannelTableFull)
    }

    /// Subscribes a session; false when it already was. `channel` must be a valid name.
    @discardableResult
    func subscribe(_ session: WebSocketSession, to channel: String) throws(SubscribeError) -> Bool {
        let id = session.id
        let current = channelsOf[id, default: []]
        guard !current.contains(channel) else { return false }
        guard current.count < ChannelName.maxPerConnection else { throw .perConnectionLimit }
        if members[channel] != nil {
            // This worker counts a subscriber in the slot already, so it cannot be freed or reused meanwhile.
            registry.channelCount(members[channel]!.slot, worker: workerID).wrappingIncrement(ordering: .sequentiallyConsistent)
        } else {
            do {
                let slot = try registry.joinChannel(SharedRegistry.ChannelKey(channel), worker: workerID)
                members[channel] = Members(slot: slot)
            } catch {
                throw .tableFull(error as! SharedRegistry.ChannelTableFull)
            }
        }
        members[channel]!.sessions[id] = session
        if enveloped.contains(id) { members[channel]!.cursors[id] = ChannelCursor(since: nil, maxBuffered: maxRecoveryBuffer) }
        channelsOf[id, default: []].append(channel)
        return true
    }

    /// Unsubscribes a connection; false when it was not subscribed.
    @discardableResult
    func unsubscribe(_ id: ConnectionID, from channel: String) -> Bool {
        guard var list = channelsOf[id], let position = list.firstIndex(of: channel) else { return false }
        list.remove(at: position)
        channelsOf[id] = list.isEmpty ? nil : list
        leave(id, channel)
        return true
    }

    /// A connection ended: it leaves every channel it was in.
    func leaveAll(_ id: ConnectionID) {
        enveloped.remove(id)
        guard let list = channelsOf.removeValue(forKey: id) else { return }
        for channel in list { leave(id, channel) }
    }

    /// The worker stops: every subscription ends now, even of connections that may outlive the grace period.
    func leaveEverything() {
        for id in Array(channelsOf.keys) { leaveAll(id) }
    }

    private func leave(_ id: ConnectionID, _ channel: String) {
        guard var entry = members[channel], entry.sessions.removeValue(forKey: id) != nil else { return }
        entry.cursors[id] = nil
        registry.leaveChannel(entry.slot, worker: workerID)
        members[channel] = entry.sessions.isEmpty ? nil : entry
    }

    func channels(of id: ConnectionID) -> [String] { channelsOf[id] ?? [] }

    /// Reload hand-over, retired side: the connection now belongs to the replacement, which took over this worker
    /// id's registry counts for its channels; it leaves this index without touching them.
    func forget(_ id: ConnectionID) {
        guard let list = channelsOf.removeValue(forKey: id) else { return }
        for channel in list {
            guard var entry = members[channel], entry.sessions.removeValue(forKey: id) != nil else { continue }
            members[channel] = entry.sessions.isEmpty ? nil : entry
        }
    }

    /// Reload hand-over, retired side: where an enveloped connection is in each of its channels that gave it a
    /// position (empty without envelopes); nil while one of its cursors reads history (no settled position yet).
    func handOverPositions(of id: ConnectionID) -> [String: HistoryPosition]? {
        guard enveloped.contains(id) else { return [:] }
        var positions: [String: HistoryPosition] = [:]
        for channel in channelsOf[id] ?? [] {
            guard let cursor = members[channel]?.cursors[id] else { continue }
            if cursor.fetching { return nil }
            positions[channel] = cursor.position
        }
        return positions
    }

    /// Reload hand-over, replacement side: a handed-over session joins its channels, whose registry counts the
    /// retired process of this worker id already holds for it (a channel it cannot find is joined afresh). An
    /// enveloped one gets a cursor per channel at the position it had reached, so what it is given next (the
    /// hand-over log's replay, then live messages) continues from there without a gap or a repeat.
    func adopt(_ session: WebSocketSession, channels: [String], envelopes: Bool = false,
               positions: [String: HistoryPosition] = [:]) {
        if envelopes { enveloped.insert(session.id) }
        for channel in channels where !(channelsOf[session.id]?.contains(channel) ?? false) {
            if members[channel] == nil {
                if let found = registry.findChannel(SharedRegistry.ChannelKey(channel)) {
                    members[channel] = Members(slot: found.index)
                } else if let slot = try? registry.joinChannel(SharedRegistry.ChannelKey(channel), worker: workerID) {
                    members[channel] = Members(slot: slot)
                } else {
                    continue
                }
            }
            members[channel]!.sessions[session.id] = session
            if envelopes {
                members[channel]!.cursors[session.id] = ChannelCursor(since: positions[channel], maxBuffered: maxRecoveryBuffer)
            }
            channelsOf[session.id, default: []].append(channel)
        }
    }

    /// Whether channel messages reach this connection in envelopes (`envelope=json`).
    func usesEnvelopes(_ id: ConnectionID) -> Bool { enveloped.contains(id) }
}

@available(*, unavailable)
extension ChannelIndex: Sendable {}
