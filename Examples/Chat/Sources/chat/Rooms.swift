import Hive

/// The room table of one worker: which of its connections are in which room (the rooms themselves are channels,
/// which span every worker). It is the `Context` of the Chat application, made by `workerStart` and handed to every
/// hook of that worker, which all run on the worker's event loop: a plain class, no lock, not `Sendable`.
final class Rooms {
    private var members: [String: Set<ConnectionID>] = [:]
    private var roomOf: [ConnectionID: String] = [:]

    /// Moves `id` into `room` (out of the room it was in).
    func join(_ id: ConnectionID, _ room: String) {
        leave(id)
        members[room, default: []].insert(id)
        roomOf[id] = room
    }

    /// Takes `id` out of its room; a room nobody is in is forgotten.
    func leave(_ id: ConnectionID) {
        guard let room = roomOf.removeValue(forKey: id) else { return }
        members[room]?.remove(id)
        if members[room]?.isEmpty == true { members[room] = nil }
    }

    func room(of id: ConnectionID) -> String? { roomOf[id] }

    /// The members of `room` on this worker, in a stable order.
    func members(of room: String) -> [ConnectionID] { (members[room] ?? []).sorted() }
}
